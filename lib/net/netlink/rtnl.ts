// rtnetlink operations on links, addresses and routes, over one NetlinkSocket. Each function is
// one request (or one dump) and says in its error what it was doing.
import { type CIDR, formatCIDR, type IP, ipFromBytes, ipToBytes, lastIP } from "../cidr.ts";
import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  ENODEV,
  IFA_ADDRESS,
  IFA_BROADCAST,
  IFA_F_NODAD,
  IFA_FLAGS,
  IFA_LOCAL,
  IFF_UP,
  IFLA_ADDRESS,
  IFLA_BRPORT_MODE,
  IFLA_EXT_MASK,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_PROTINFO,
  NLM_F_CREATE,
  NLM_F_EXCL,
  RT_SCOPE_LINK,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_TABLE,
  RTEXT_FILTER_SKIP_STATS,
  RTM_DELLINK,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTM_SETLINK,
  RTN_UNICAST,
  RTPROT_BOOT,
  VETH_INFO_PEER,
} from "./constants.ts";
import {
  type Addr,
  attr,
  decodeAddr,
  decodeLink,
  decodeRoute,
  encodeAttrs,
  ifaddrmsg,
  ifinfomsg,
  type Link,
  type Route,
  rtmsg,
} from "./message.ts";
import { NetlinkError, type NetlinkSocket } from "./socket.ts";

export type { Addr, Link, Route };

/** Asks the kernel to leave the (large, unused) statistics out of link replies. */
const NO_STATS = attr.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);

function afOf(ip: IP): number {
  return ip.family === 4 ? AF_INET : AF_INET6;
}

/** The link called `name`, or null when there is none. */
export function getLink(s: NetlinkSocket, name: string): Link | null {
  try {
    const [m] = s.query(
      `look up link ${name}`,
      RTM_GETLINK,
      ifinfomsg(),
      [attr.str(IFLA_IFNAME, name), NO_STATS],
      false,
    );
    return m ? decodeLink(m.body) : null;
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === ENODEV) return null;
    throw e;
  }
}

export function getLinkByIndex(s: NetlinkSocket, index: number): Link | null {
  try {
    const [m] = s.query(
      `look up link #${index}`,
      RTM_GETLINK,
      ifinfomsg({ index }),
      [NO_STATS],
      false,
    );
    return m ? decodeLink(m.body) : null;
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === ENODEV) return null;
    throw e;
  }
}

export function listLinks(s: NetlinkSocket): Link[] {
  return s.query("list links", RTM_GETLINK, ifinfomsg(), [NO_STATS]).map((m) => decodeLink(m.body));
}

export function createBridge(s: NetlinkSocket, name: string, mtu?: number): void {
  const attrs = [attr.str(IFLA_IFNAME, name)];
  if (mtu) attrs.push(attr.u32(IFLA_MTU, mtu));
  attrs.push(attr.nest(IFLA_LINKINFO, [attr.str(IFLA_INFO_KIND, "bridge")]));
  s.request(
    `create bridge ${name}`,
    RTM_NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    ifinfomsg({ flags: IFF_UP, change: IFF_UP }),
    attrs,
  );
}

export interface VethSpec {
  /** The end that stays in this socket's namespace. */
  name: string;
  /** The other end, created directly in the namespace `peerNetnsFd` refers to. */
  peerName: string;
  peerNetnsFd: number;
  mtu?: number;
  /** ifindex of a bridge to enslave this end to, at creation. */
  master?: number;
  /** Bring this end up at creation. (The peer cannot be: the kernel configures it before the
   * pair is linked, and opening an unlinked veth fails with ENOTCONN.) */
  up?: boolean;
}

/** One request creates the pair, puts the peer in its namespace, sets MTU, master and up. */
export function createVeth(s: NetlinkSocket, v: VethSpec): void {
  const up = v.up ? { flags: IFF_UP, change: IFF_UP } : {};
  const peerAttrs = [attr.str(IFLA_IFNAME, v.peerName), attr.u32(IFLA_NET_NS_FD, v.peerNetnsFd)];
  if (v.mtu) peerAttrs.push(attr.u32(IFLA_MTU, v.mtu));
  const peer = new Uint8Array([...ifinfomsg(), ...encodeAttrs(peerAttrs)]);
  const attrs = [attr.str(IFLA_IFNAME, v.name)];
  if (v.mtu) attrs.push(attr.u32(IFLA_MTU, v.mtu));
  if (v.master) attrs.push(attr.u32(IFLA_MASTER, v.master));
  attrs.push(attr.nest(IFLA_LINKINFO, [
    attr.str(IFLA_INFO_KIND, "veth"),
    attr.nest(IFLA_INFO_DATA, [attr.bytes(VETH_INFO_PEER, peer)]),
  ]));
  s.request(
    `create veth ${v.name} with peer ${v.peerName}`,
    RTM_NEWLINK,
    NLM_F_CREATE | NLM_F_EXCL,
    ifinfomsg(up),
    attrs,
  );
}

export function setLink(
  s: NetlinkSocket,
  index: number,
  change: { up?: boolean; mtu?: number; master?: number; mac?: string },
): void {
  const attrs = [];
  if (change.mac) {
    attrs.push(
      attr.bytes(IFLA_ADDRESS, Uint8Array.from(change.mac.split(":"), (h) => parseInt(h, 16))),
    );
  }
  if (change.mtu) attrs.push(attr.u32(IFLA_MTU, change.mtu));
  if (change.master !== undefined) attrs.push(attr.u32(IFLA_MASTER, change.master));
  const hdr = change.up === undefined
    ? ifinfomsg({ index })
    : ifinfomsg({ index, flags: change.up ? IFF_UP : 0, change: IFF_UP });
  s.request(`change link #${index}`, RTM_NEWLINK, 0, hdr, attrs);
}

/** Hairpin (reflective relay) on a bridge port, through IFLA_PROTINFO of the AF_BRIDGE family. */
export function setHairpin(s: NetlinkSocket, index: number, on: boolean): void {
  s.request(
    `set hairpin on link #${index}`,
    RTM_SETLINK,
    0,
    ifinfomsg({ family: AF_BRIDGE, index }),
    [attr.nest(IFLA_PROTINFO, [attr.u8(IFLA_BRPORT_MODE, on ? 1 : 0)])],
  );
}

export function deleteLink(s: NetlinkSocket, index: number): void {
  s.request(`delete link #${index}`, RTM_DELLINK, 0, ifinfomsg({ index }));
}

/** Adds `cidr` (host bits kept: the address itself) to link `index`. */
export function addAddress(
  s: NetlinkSocket,
  index: number,
  cidr: CIDR,
  opts: { noDad?: boolean } = {},
): void {
  const ip = ipToBytes(cidr.ip);
  const attrs = [attr.bytes(IFA_LOCAL, ip), attr.bytes(IFA_ADDRESS, ip)];
  if (cidr.ip.family === 4 && cidr.prefix < 31) {
    attrs.push(attr.bytes(IFA_BROADCAST, ipToBytes(lastIP(cidr))));
  }
  if (opts.noDad) attrs.push(attr.u32(IFA_FLAGS, IFA_F_NODAD));
  s.request(
    `add address ${formatCIDR(cidr)} to link #${index}`,
    RTM_NEWADDR,
    NLM_F_CREATE | NLM_F_EXCL,
    ifaddrmsg({
      family: afOf(cidr.ip),
      prefixLen: cidr.prefix,
      index,
      flags: opts.noDad ? IFA_F_NODAD : 0,
    }),
    attrs,
  );
}

export interface LinkAddress {
  index: number;
  /** The address with its prefix length, host bits kept. */
  cidr: CIDR;
  scope: number;
}

export function listAddresses(s: NetlinkSocket, family: 4 | 6 | 0 = 0): LinkAddress[] {
  const af = family === 4 ? AF_INET : family === 6 ? AF_INET6 : AF_UNSPEC;
  return s.query("list addresses", RTM_GETADDR, ifaddrmsg({ family: af }))
    .map((m) => decodeAddr(m.body))
    .filter((a) => a.address.length === 4 || a.address.length === 16)
    .map((a) => ({
      index: a.index,
      scope: a.scope,
      cidr: { ip: ipFromBytes(a.address), prefix: a.prefixLen },
    }));
}

export interface RouteSpec {
  dst: CIDR;
  gw?: IP;
  oif: number;
}

export function addRoute(s: NetlinkSocket, r: RouteSpec): void {
  const attrs = [
    attr.u32(RTA_TABLE, RT_TABLE_MAIN),
    attr.u32(RTA_OIF, r.oif),
  ];
  if (r.dst.prefix > 0) attrs.push(attr.bytes(RTA_DST, ipToBytes(r.dst.ip)));
  if (r.gw) attrs.push(attr.bytes(RTA_GATEWAY, ipToBytes(r.gw)));
  s.request(
    `add route ${formatCIDR(r.dst)}`,
    RTM_NEWROUTE,
    NLM_F_CREATE | NLM_F_EXCL,
    rtmsg({
      family: afOf(r.dst.ip),
      dstLen: r.dst.prefix,
      table: RT_TABLE_MAIN,
      protocol: RTPROT_BOOT,
      scope: r.gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK,
      type: RTN_UNICAST,
    }),
    attrs,
  );
}

export interface RouteEntry {
  dst: CIDR;
  gw?: IP;
  oif?: number;
  protocol: number;
  scope: number;
}

/** Unicast routes of the main table. */
export function listRoutes(s: NetlinkSocket, family: 4 | 6): RouteEntry[] {
  const af = family === 4 ? AF_INET : AF_INET6;
  const zero = new Uint8Array(family === 4 ? 4 : 16);
  return s.query("list routes", RTM_GETROUTE, rtmsg({ family: af }))
    .map((m) => decodeRoute(m.body))
    .filter((r) => r.table === RT_TABLE_MAIN && r.type === RTN_UNICAST)
    .map((r) => ({
      dst: { ip: ipFromBytes(r.dst ?? zero), prefix: r.dstLen },
      gw: r.gateway ? ipFromBytes(r.gateway) : undefined,
      oif: r.oif,
      protocol: r.protocol,
      scope: r.scope,
    }));
}

export { RT_SCOPE_UNIVERSE };
