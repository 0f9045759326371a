// The kernel's WireGuard configuration over its generic netlink family "wireguard" (attribute
// layout of include/uapi/linux/wireguard.h): WG_CMD_SET_DEVICE with the device's key, port and
// flags and a nested list of peers, each with its keys, endpoint (a struct sockaddr), keepalive and
// nested allowed IPs. The same settings as the userspace API (uapi.ts), in binary. Request
// building is pure; setDevice sends one over a NETLINK_GENERIC socket.
import { type CIDR, ipToBytes } from "../cidr.ts";
import { AF_INET, AF_INET6, NLM_F_ACK, NLM_F_REQUEST } from "../netlink/constants.ts";
import { genlHeader, u16Attr } from "../netlink/genl.ts";
import { type Attr, attr, encodeMessage } from "../netlink/message.ts";
import type { NetlinkSocket } from "../netlink/socket.ts";
import { KEY_LENGTH } from "./keys.ts";
import type { Endpoint } from "./uapi.ts";

export const WG_GENL_NAME = "wireguard";
export const WG_GENL_VERSION = 1;
export const WG_CMD_GET_DEVICE = 0;
export const WG_CMD_SET_DEVICE = 1;

export const WGDEVICE_F_REPLACE_PEERS = 1 << 0;
export const WGDEVICE_A_IFINDEX = 1;
export const WGDEVICE_A_IFNAME = 2;
export const WGDEVICE_A_PRIVATE_KEY = 3;
export const WGDEVICE_A_PUBLIC_KEY = 4;
export const WGDEVICE_A_FLAGS = 5;
export const WGDEVICE_A_LISTEN_PORT = 6;
export const WGDEVICE_A_FWMARK = 7;
export const WGDEVICE_A_PEERS = 8;

export const WGPEER_F_REMOVE_ME = 1 << 0;
export const WGPEER_F_REPLACE_ALLOWEDIPS = 1 << 1;
export const WGPEER_A_PUBLIC_KEY = 1;
export const WGPEER_A_PRESHARED_KEY = 2;
export const WGPEER_A_FLAGS = 3;
export const WGPEER_A_ENDPOINT = 4;
export const WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL = 5;
export const WGPEER_A_ALLOWEDIPS = 9;

export const WGALLOWEDIP_A_FAMILY = 1;
export const WGALLOWEDIP_A_IPADDR = 2;
export const WGALLOWEDIP_A_CIDR_MASK = 3;

export interface WgPeerSet {
  publicKey: Uint8Array;
  /** Remove this peer; every other field is then ignored. */
  remove?: boolean;
  presharedKey?: Uint8Array;
  endpoint?: Endpoint;
  persistentKeepalive?: number;
  /** Replaces the peer's allowed IPs with exactly these (absent: left as they are). */
  allowedIPs?: CIDR[];
}

export interface WgDeviceSet {
  ifname: string;
  privateKey?: Uint8Array;
  listenPort?: number;
  /** Drop every peer not listed here. */
  replacePeers?: boolean;
  peers?: WgPeerSet[];
}

function key(type: number, k: Uint8Array, what: string): Attr {
  if (k.length !== KEY_LENGTH) throw new Error(`${what} must be ${KEY_LENGTH} bytes`);
  return attr.bytes(type, k);
}

/** struct sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes): family host order, port big-endian. */
export function sockaddrBytes(e: Endpoint): Uint8Array {
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 65535) {
    throw new Error(`endpoint port ${e.port} out of range`);
  }
  const v4 = e.ip.family === 4;
  const b = new Uint8Array(v4 ? 16 : 28);
  const view = new DataView(b.buffer);
  view.setUint16(0, v4 ? AF_INET : AF_INET6, true);
  view.setUint16(2, e.port, false);
  b.set(ipToBytes(e.ip), v4 ? 4 : 8); // sin6_flowinfo (4 bytes) precedes the v6 address
  return b;
}

function allowedIPAttr(c: CIDR): Attr {
  return attr.nest(0, [
    u16Attr(WGALLOWEDIP_A_FAMILY, c.ip.family === 4 ? AF_INET : AF_INET6),
    attr.bytes(WGALLOWEDIP_A_IPADDR, ipToBytes(c.ip)),
    attr.u8(WGALLOWEDIP_A_CIDR_MASK, c.prefix),
  ]);
}

function peerAttr(p: WgPeerSet): Attr {
  const a: Attr[] = [key(WGPEER_A_PUBLIC_KEY, p.publicKey, "peer public key")];
  if (p.remove) {
    a.push(attr.u32(WGPEER_A_FLAGS, WGPEER_F_REMOVE_ME));
    return attr.nest(0, a);
  }
  if (p.allowedIPs) a.push(attr.u32(WGPEER_A_FLAGS, WGPEER_F_REPLACE_ALLOWEDIPS));
  if (p.presharedKey) a.push(key(WGPEER_A_PRESHARED_KEY, p.presharedKey, "preshared key"));
  if (p.endpoint) a.push(attr.bytes(WGPEER_A_ENDPOINT, sockaddrBytes(p.endpoint)));
  if (p.persistentKeepalive !== undefined) {
    a.push(u16Attr(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, p.persistentKeepalive));
  }
  if (p.allowedIPs) a.push(attr.nest(WGPEER_A_ALLOWEDIPS, p.allowedIPs.map(allowedIPAttr)));
  return attr.nest(0, a);
}

/** The attributes of a WG_CMD_SET_DEVICE request (pure). */
export function setDeviceAttrs(d: WgDeviceSet): Attr[] {
  if (!/^[^\s/:]{1,15}$/.test(d.ifname)) throw new Error(`invalid device name ${d.ifname}`);
  const a: Attr[] = [attr.str(WGDEVICE_A_IFNAME, d.ifname)];
  if (d.privateKey) a.push(key(WGDEVICE_A_PRIVATE_KEY, d.privateKey, "private key"));
  if (d.listenPort !== undefined) a.push(u16Attr(WGDEVICE_A_LISTEN_PORT, d.listenPort));
  if (d.replacePeers) a.push(attr.u32(WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS));
  if (d.peers?.length) a.push(attr.nest(WGDEVICE_A_PEERS, d.peers.map(peerAttr)));
  return a;
}

/** The whole request message, for the family id the kernel gave "wireguard" (pure). */
export function encodeSetDevice(familyId: number, seq: number, d: WgDeviceSet): Uint8Array {
  return encodeMessage(
    familyId,
    NLM_F_REQUEST | NLM_F_ACK,
    seq,
    genlHeader(WG_CMD_SET_DEVICE, WG_GENL_VERSION),
    setDeviceAttrs(d),
  );
}

/** Applies `d` to the kernel device; `s` is a NETLINK_GENERIC socket in the device's namespace. */
export function setDevice(s: NetlinkSocket, familyId: number, d: WgDeviceSet): void {
  s.request(
    `configure wireguard device ${d.ifname}`,
    familyId,
    0,
    genlHeader(WG_CMD_SET_DEVICE, WG_GENL_VERSION),
    setDeviceAttrs(d),
  );
}
