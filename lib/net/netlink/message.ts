// Netlink message encoding and decoding, pure: bytes in, bytes out, no sockets. The socket adapter
// (socket.ts) and the rtnetlink operations (rtnl.ts) are built on these.
import {
  IFA_ADDRESS,
  IFA_FLAGS,
  IFA_LOCAL,
  IFLA_ADDRESS,
  IFLA_BRPORT_MODE,
  IFLA_IFNAME,
  IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_DATA,
  IFLA_INFO_SLAVE_KIND,
  IFLA_LINK,
  IFLA_LINKINFO,
  IFLA_MASTER,
  IFLA_MTU,
  NLA_F_NESTED,
  NLA_TYPE_MASK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSGERR_ATTR_MSG,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTA_PRIORITY,
  RTA_TABLE,
} from "./constants.ts";

export const NLMSG_HDRLEN = 16;

/** One netlink attribute: raw bytes, or nested attributes. */
export interface Attr {
  type: number;
  value: Uint8Array | Attr[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function align4(n: number): number {
  return (n + 3) & ~3;
}

export const attr = {
  bytes(type: number, value: Uint8Array): Attr {
    return { type, value };
  },
  u8(type: number, v: number): Attr {
    return { type, value: Uint8Array.of(v & 0xff) };
  },
  u32(type: number, v: number): Attr {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    return { type, value: b };
  },
  /** A NUL-terminated string, as the kernel expects for names and kinds. */
  str(type: number, s: string): Attr {
    const raw = enc.encode(s);
    const b = new Uint8Array(raw.length + 1);
    b.set(raw);
    return { type, value: b };
  },
  nest(type: number, children: Attr[]): Attr {
    return { type: type | NLA_F_NESTED, value: children };
  },
};

function attrsLength(attrs: Attr[]): number {
  let n = 0;
  for (const a of attrs) n += align4(4 + valueLength(a.value));
  return n;
}

function valueLength(v: Uint8Array | Attr[]): number {
  return v instanceof Uint8Array ? v.length : attrsLength(v);
}

function writeAttrs(out: Uint8Array, view: DataView, offset: number, attrs: Attr[]): number {
  let o = offset;
  for (const a of attrs) {
    const len = 4 + valueLength(a.value);
    view.setUint16(o, len, true);
    view.setUint16(o + 2, a.type, true);
    if (a.value instanceof Uint8Array) out.set(a.value, o + 4);
    else writeAttrs(out, view, o + 4, a.value);
    o += align4(len);
  }
  return o;
}

export function encodeAttrs(attrs: Attr[]): Uint8Array {
  const out = new Uint8Array(attrsLength(attrs));
  writeAttrs(out, new DataView(out.buffer), 0, attrs);
  return out;
}

/** A whole message: nlmsghdr, the fixed family header, then attributes. */
export function encodeMessage(
  type: number,
  flags: number,
  seq: number,
  header: Uint8Array,
  attrs: Attr[] = [],
): Uint8Array {
  const headerLen = align4(header.length);
  const total = NLMSG_HDRLEN + headerLen + attrsLength(attrs);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, total, true);
  view.setUint16(4, type, true);
  view.setUint16(6, flags, true);
  view.setUint32(8, seq >>> 0, true);
  view.setUint32(12, 0, true);
  out.set(header, NLMSG_HDRLEN);
  writeAttrs(out, view, NLMSG_HDRLEN + headerLen, attrs);
  return out;
}

export interface IfInfoMsg {
  family?: number;
  type?: number;
  index?: number;
  flags?: number;
  change?: number;
}

/** struct ifinfomsg (16 bytes). */
export function ifinfomsg(m: IfInfoMsg = {}): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint8(0, m.family ?? 0);
  v.setUint16(2, m.type ?? 0, true);
  v.setInt32(4, m.index ?? 0, true);
  v.setUint32(8, m.flags ?? 0, true);
  v.setUint32(12, m.change ?? 0, true);
  return b;
}

/** struct ifaddrmsg (8 bytes). */
export function ifaddrmsg(
  m: { family: number; prefixLen?: number; flags?: number; scope?: number; index?: number },
): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint8(0, m.family);
  v.setUint8(1, m.prefixLen ?? 0);
  v.setUint8(2, m.flags ?? 0);
  v.setUint8(3, m.scope ?? 0);
  v.setUint32(4, m.index ?? 0, true);
  return b;
}

/** struct rtmsg (12 bytes). */
export function rtmsg(
  m: {
    family: number;
    dstLen?: number;
    table?: number;
    protocol?: number;
    scope?: number;
    type?: number;
    flags?: number;
  },
): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setUint8(0, m.family);
  v.setUint8(1, m.dstLen ?? 0);
  v.setUint8(4, m.table ?? 0);
  v.setUint8(5, m.protocol ?? 0);
  v.setUint8(6, m.scope ?? 0);
  v.setUint8(7, m.type ?? 0);
  v.setUint32(8, m.flags ?? 0, true);
  return b;
}

export interface Message {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after nlmsghdr. */
  body: Uint8Array;
}

/** Splits a datagram into its messages. Truncated trailing bytes are an error. */
export function decodeMessages(buf: Uint8Array): Message[] {
  const out: Message[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  while (o + NLMSG_HDRLEN <= buf.length) {
    const len = view.getUint32(o, true);
    if (len < NLMSG_HDRLEN || o + len > buf.length) {
      throw new Error(`malformed netlink message: length ${len} at offset ${o} of ${buf.length}`);
    }
    out.push({
      type: view.getUint16(o + 4, true),
      flags: view.getUint16(o + 6, true),
      seq: view.getUint32(o + 8, true),
      pid: view.getUint32(o + 12, true),
      body: buf.subarray(o + NLMSG_HDRLEN, o + len),
    });
    o += align4(len);
  }
  return out;
}

/** Attributes by type (flags masked off); a repeated type keeps the last value. */
export function decodeAttrs(buf: Uint8Array): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let o = 0;
  while (o + 4 <= buf.length) {
    const len = view.getUint16(o, true);
    if (len < 4 || o + len > buf.length) break;
    out.set(view.getUint16(o + 2, true) & NLA_TYPE_MASK, buf.subarray(o + 4, o + len));
    o += align4(len);
  }
  return out;
}

function u32(b: Uint8Array | undefined): number | undefined {
  if (!b || b.length < 4) return undefined;
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
}

function str(b: Uint8Array | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return dec.decode(nul >= 0 ? b.subarray(0, nul) : b);
}

export function formatMAC(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":");
}

/** The errno (positive) and the kernel's extended-ack message of an NLMSG_ERROR body. */
export function decodeError(m: Message): { errno: number; msg?: string } {
  const view = new DataView(m.body.buffer, m.body.byteOffset, m.body.byteLength);
  const errno = -view.getInt32(0, true);
  let msg: string | undefined;
  if (m.flags & NLM_F_ACK_TLVS) {
    // After the error code comes the original request header (and, unless capped, its payload).
    const origLen = (m.flags & NLM_F_CAPPED) ? NLMSG_HDRLEN : view.getUint32(4, true);
    const tlvs = decodeAttrs(m.body.subarray(4 + align4(origLen)));
    msg = str(tlvs.get(NLMSGERR_ATTR_MSG));
  }
  return { errno, msg };
}

export interface Link {
  index: number;
  name: string;
  flags: number;
  mtu: number;
  mac: string;
  master?: number;
  /** The peer's ifindex for a veth (in the peer's namespace). */
  link?: number;
  kind?: string;
  slaveKind?: string;
  /** Bridge-port hairpin mode, when the link is a bridge port and the kernel reported it. */
  hairpin?: boolean;
}

export function decodeLink(body: Uint8Array): Link {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const attrs = decodeAttrs(body.subarray(16));
  const link: Link = {
    index: view.getInt32(4, true),
    flags: view.getUint32(8, true),
    name: str(attrs.get(IFLA_IFNAME)) ?? "",
    mtu: u32(attrs.get(IFLA_MTU)) ?? 0,
    mac: attrs.has(IFLA_ADDRESS) ? formatMAC(attrs.get(IFLA_ADDRESS)!) : "",
    master: u32(attrs.get(IFLA_MASTER)),
    link: u32(attrs.get(IFLA_LINK)),
  };
  const info = attrs.get(IFLA_LINKINFO);
  if (info) {
    const ia = decodeAttrs(info);
    link.kind = str(ia.get(IFLA_INFO_KIND));
    link.slaveKind = str(ia.get(IFLA_INFO_SLAVE_KIND));
    const slave = ia.get(IFLA_INFO_SLAVE_DATA);
    if (slave && link.slaveKind === "bridge") {
      const mode = decodeAttrs(slave).get(IFLA_BRPORT_MODE);
      if (mode) link.hairpin = mode[0] === 1;
    }
  }
  return link;
}

export interface Addr {
  family: number;
  prefixLen: number;
  index: number;
  scope: number;
  flags: number;
  /** The address bytes (IFA_LOCAL when present, else IFA_ADDRESS). */
  address: Uint8Array;
}

export function decodeAddr(body: Uint8Array): Addr {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const attrs = decodeAttrs(body.subarray(8));
  return {
    family: view.getUint8(0),
    prefixLen: view.getUint8(1),
    flags: u32(attrs.get(IFA_FLAGS)) ?? view.getUint8(2),
    scope: view.getUint8(3),
    index: view.getUint32(4, true),
    address: attrs.get(IFA_LOCAL) ?? attrs.get(IFA_ADDRESS) ?? new Uint8Array(),
  };
}

export interface Route {
  family: number;
  dstLen: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  dst?: Uint8Array;
  gateway?: Uint8Array;
  oif?: number;
  priority?: number;
}

export function decodeRoute(body: Uint8Array): Route {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const attrs = decodeAttrs(body.subarray(12));
  return {
    family: view.getUint8(0),
    dstLen: view.getUint8(1),
    table: u32(attrs.get(RTA_TABLE)) ?? view.getUint8(4),
    protocol: view.getUint8(5),
    scope: view.getUint8(6),
    type: view.getUint8(7),
    dst: attrs.get(RTA_DST),
    gateway: attrs.get(RTA_GATEWAY),
    oif: u32(attrs.get(RTA_OIF)),
    priority: u32(attrs.get(RTA_PRIORITY)),
  };
}
