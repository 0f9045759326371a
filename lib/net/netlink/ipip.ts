// The ipip backend's device: an IPv4-in-IPv4 tunnel `flannel.ipip` whose local end is the node's
// interface address (linux/if_tunnel.h IFLA_IPTUN_*), created with one RTM_NEWLINK. Kernels built
// without ipip refuse the kind with EOPNOTSUPP ("Unknown device type"); probeIpip tells the two
// apart without leaving anything behind.
import { formatIP, type IP, ipToBytes } from "../cidr.ts";
import {
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MTU,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  RTM_NEWLINK,
} from "./constants.ts";
import { type Attr, attr, encodeMessage, ifinfomsg } from "./message.ts";
import { deleteLink, getLink } from "./rtnl.ts";
import { NetlinkError, type NetlinkSocket } from "./socket.ts";

export const IPIP_DEVICE = "flannel.ipip";
export const IFLA_IPTUN_LINK = 1;
export const IFLA_IPTUN_LOCAL = 2;
export const IFLA_IPTUN_PMTUDISC = 10;
export const EOPNOTSUPP = 95;

export interface IpipSpec {
  /** Device name (default flannel.ipip). */
  name?: string;
  /** The tunnel's source: the node's interface address. */
  local: IP;
  mtu: number;
  /** ifindex of the underlay interface to bind the tunnel to (optional). */
  link?: number;
}

/** The RTM_NEWLINK attributes creating the tunnel (pure). */
export function ipipLinkAttrs(spec: IpipSpec): Attr[] {
  if (spec.local.family !== 4) throw new Error("ipip carries IPv4 only: local must be IPv4");
  if (!Number.isInteger(spec.mtu) || spec.mtu < 68 || spec.mtu > 65535) {
    throw new Error(`ipip MTU ${spec.mtu} out of range`);
  }
  const data: Attr[] = [attr.bytes(IFLA_IPTUN_LOCAL, ipToBytes(spec.local))];
  if (spec.link) data.push(attr.u32(IFLA_IPTUN_LINK, spec.link));
  // Path MTU discovery on: the outer header copies DF, so DF pings at the announced MTU hold.
  data.push(attr.u8(IFLA_IPTUN_PMTUDISC, 1));
  return [
    attr.str(IFLA_IFNAME, spec.name ?? IPIP_DEVICE),
    attr.u32(IFLA_MTU, spec.mtu),
    attr.nest(IFLA_LINKINFO, [attr.str(IFLA_INFO_KIND, "ipip"), attr.nest(IFLA_INFO_DATA, data)]),
  ];
}

/** The whole request message (for tests and logs). */
export function encodeCreateIpip(seq: number, spec: IpipSpec): Uint8Array {
  return encodeMessage(
    RTM_NEWLINK,
    NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    seq,
    ifinfomsg(),
    ipipLinkAttrs(spec),
  );
}

/** The kernel has no ipip: one line naming what is missing. */
export class IpipUnsupportedError extends Error {
  constructor(readonly kernelMsg?: string) {
    super(
      "the kernel has no ipip tunnel support (CONFIG_NET_IPIP, module ipip): " +
        `creating an ipip device was refused${kernelMsg ? ` (${kernelMsg})` : ""}`,
    );
  }
}

/** Creates the tunnel device (down); IpipUnsupportedError when the kernel lacks ipip. */
export function createIpip(s: NetlinkSocket, spec: IpipSpec): void {
  const name = spec.name ?? IPIP_DEVICE;
  try {
    s.request(
      `create ipip device ${name} local ${formatIP(spec.local)}`,
      RTM_NEWLINK,
      NLM_F_CREATE | NLM_F_EXCL,
      ifinfomsg(),
      ipipLinkAttrs(spec),
    );
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === EOPNOTSUPP) {
      throw new IpipUnsupportedError(e.kernelMsg);
    }
    throw e;
  }
}

/**
 * Whether the kernel of `s`'s namespace creates ipip devices: creates a probe device and removes
 * it at once. Loading the ipip module also makes the kernel add its fallback device tunl0, as any
 * first ipip device would.
 */
export function probeIpip(
  s: NetlinkSocket,
  probeName = "twill-ipprobe",
): { supported: boolean; detail: string } {
  try {
    createIpip(s, { name: probeName, local: { family: 4, value: 0n }, mtu: 1480 });
  } catch (e) {
    if (e instanceof IpipUnsupportedError) return { supported: false, detail: e.message };
    throw e;
  }
  const link = getLink(s, probeName);
  if (link) deleteLink(s, link.index);
  return { supported: true, detail: "ipip device created and removed" };
}
