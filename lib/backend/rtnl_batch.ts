// Applies the per-peer lines a Plan holds (the subset of `ip -batch` / `bridge -batch` syntax
// that dataplane.ts writes) over one rtnetlink socket in this process: no child process, no text
// parsing by ip(8), many requests per datagram. The same lines stay valid `ip`/`bridge` input, so
// kernel.ts falls back to ip_batch.ts whenever this path is unavailable (no FFI permission)
// or a line is outside the subset.
//
// Semantics follow `-force -batch`: every line is tried; each refused line is reported as
// "<line>: <reason>" and the rest still apply. Requests go in datagrams of up to DATAGRAM bytes;
// only the last request of a datagram asks for an acknowledgement (the kernel answers a refused
// request even without one), so thousands of entries do not fill our receive buffer with acks.
import { formatIP, ipFromBytes, ipToBytes, parseIP } from "../net/cidr.ts";
import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  NLMSG_ERROR,
  RT_SCOPE_UNIVERSE,
  RT_TABLE_MAIN,
  RTA_DST,
  RTA_GATEWAY,
  RTA_OIF,
  RTM_DELROUTE,
  RTM_NEWROUTE,
  RTN_UNICAST,
  RTPROT_BOOT,
  SOCK_CLOEXEC,
  SOCK_RAW,
} from "../net/netlink/constants.ts";
import { errno, libc, strerror } from "../net/netlink/libc.ts";
import {
  type Attr,
  attr,
  decodeAttrs,
  decodeError,
  decodeMessages,
  decodeRoute,
  encodeMessage,
  rtmsg,
} from "../net/netlink/message.ts";
import { getLink } from "../net/netlink/rtnl.ts";
import { NetlinkSocket } from "../net/netlink/socket.ts";

// linux/rtnetlink.h, linux/neighbour.h
const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_NOARP = 0x40;
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x02;
const RTNH_F_ONLINK = 4;
const RT_SCOPE_NOWHERE = 255;
const ENOBUFS = 105;
const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;

/** Bytes of requests per datagram (the default socket buffers are ~208 KiB). */
const DATAGRAM = 48 * 1024;

/** One request, before its sequence number is known. */
export interface RtnlRequest {
  type: number;
  flags: number;
  header: Uint8Array;
  attrs: Attr[];
}

/** struct ndmsg (12 bytes). */
export function ndmsg(family: number, ifindex: number, state: number, flags = 0): Uint8Array {
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setUint8(0, family);
  v.setInt32(4, ifindex, true);
  v.setUint16(8, state, true);
  v.setUint8(10, flags);
  return b;
}

function macBytes(text: string): Uint8Array {
  const parts = text.split(":");
  const b = new Uint8Array(6);
  if (parts.length !== 6) throw new Error(`"${text}" is not a MAC address`);
  for (let i = 0; i < 6; i++) {
    const n = parseInt(parts[i], 16);
    if (!(n >= 0 && n <= 255) || parts[i].length > 2) {
      throw new Error(`"${text}" is not a MAC address`);
    }
    b[i] = n;
  }
  return b;
}

/** An address's bytes; IPv4 without the bigint round trip (this runs thousands of times). */
function addrBytes(text: string): Uint8Array {
  const p = text.split(".");
  if (p.length === 4) {
    const b = new Uint8Array(4);
    for (let i = 0; i < 4; i++) {
      const n = Number(p[i]);
      if (!/^\d{1,3}$/.test(p[i]) || n > 255) throw new Error(`"${text}" is not an IP address`);
      b[i] = n;
    }
    return b;
  }
  return ipToBytes(parseIP(text));
}

function cidrBytes(text: string): { bytes: Uint8Array; prefix: number } {
  const slash = text.indexOf("/");
  if (slash < 0) throw new Error(`"${text}" has no prefix length`);
  const bytes = addrBytes(text.slice(0, slash));
  const prefix = Number(text.slice(slash + 1));
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bytes.length * 8) {
    throw new Error(`"${text}" has a bad prefix length`);
  }
  // the network address, as ip(8) sends it
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] &= (0xff << (8 - keep)) & 0xff;
  }
  return { bytes, prefix };
}

function af(b: Uint8Array): number {
  return b.length === 4 ? AF_INET : AF_INET6;
}

/**
 * Pure: the request a plan line stands for, with `ifindex` resolving device names; null when the
 * line is not one dataplane.ts writes (the caller then uses ip/bridge instead). Throws a one-line
 * Error for a line of the right shape that cannot apply (unknown device, bad address).
 */
export function requestOf(
  line: string,
  ifindex: (dev: string) => number,
): RtnlRequest | null {
  const w = line.trim().split(/\s+/);
  const [obj, verb] = w;
  if (verb !== "replace" && verb !== "del") return null;
  const add = verb === "replace";
  if (obj === "route") return routeRequest(w, add, ifindex);
  if (obj === "neigh") return add ? neighAddRequest(w, ifindex) : neighDelRequest(w, ifindex);
  if (obj === "fdb") return fdbRequest(w, add, ifindex);
  return null;
}

const REPLACE = NLM_F_CREATE | NLM_F_REPLACE;

/** route replace|del DST via GW dev DEV [onlink] */
function routeRequest(
  w: string[],
  add: boolean,
  ifindex: (dev: string) => number,
): RtnlRequest | null {
  const onlink = w.length === 8 && w[7] === "onlink";
  if (!(w.length === 7 || onlink) || w[3] !== "via" || w[5] !== "dev") return null;
  const dst = cidrBytes(w[2]);
  const gw = addrBytes(w[4]);
  if (gw.length !== dst.bytes.length) throw new Error("gateway and destination families differ");
  const attrs = [
    attr.bytes(RTA_DST, dst.bytes),
    attr.bytes(RTA_GATEWAY, gw),
    attr.u32(RTA_OIF, ifindex(w[6])),
  ];
  return {
    type: add ? RTM_NEWROUTE : RTM_DELROUTE,
    flags: add ? REPLACE : 0,
    header: rtmsg({
      family: af(dst.bytes),
      dstLen: dst.prefix,
      table: RT_TABLE_MAIN,
      protocol: add ? RTPROT_BOOT : 0,
      scope: add ? RT_SCOPE_UNIVERSE : RT_SCOPE_NOWHERE,
      type: add ? RTN_UNICAST : 0,
      flags: onlink ? RTNH_F_ONLINK : 0,
    }),
    attrs,
  };
}

/** neigh replace IP lladdr MAC dev DEV nud permanent */
function neighAddRequest(w: string[], ifindex: (dev: string) => number): RtnlRequest | null {
  if (w.length !== 9 || w[3] !== "lladdr" || w[5] !== "dev" || w[7] !== "nud") return null;
  if (w[8] !== "permanent") return null;
  const ip = addrBytes(w[2]);
  return {
    type: RTM_NEWNEIGH,
    flags: REPLACE,
    header: ndmsg(af(ip), ifindex(w[6]), NUD_PERMANENT),
    attrs: [attr.bytes(NDA_DST, ip), attr.bytes(NDA_LLADDR, macBytes(w[4]))],
  };
}

/** neigh del IP dev DEV */
function neighDelRequest(w: string[], ifindex: (dev: string) => number): RtnlRequest | null {
  if (w.length !== 5 || w[3] !== "dev") return null;
  const ip = addrBytes(w[2]);
  return {
    type: RTM_DELNEIGH,
    flags: 0,
    header: ndmsg(af(ip), ifindex(w[4]), NUD_PERMANENT),
    attrs: [attr.bytes(NDA_DST, ip)],
  };
}

/** fdb replace MAC dev DEV dst IP self permanent | fdb del MAC dev DEV dst IP self */
function fdbRequest(
  w: string[],
  add: boolean,
  ifindex: (dev: string) => number,
): RtnlRequest | null {
  if (w.length !== (add ? 9 : 8) || w[3] !== "dev" || w[5] !== "dst" || w[7] !== "self") {
    return null;
  }
  if (add && w[8] !== "permanent") return null;
  return {
    type: add ? RTM_NEWNEIGH : RTM_DELNEIGH,
    flags: add ? REPLACE : 0,
    header: ndmsg(AF_BRIDGE, ifindex(w[4]), add ? NUD_PERMANENT : NUD_NOARP, NTF_SELF),
    attrs: [
      attr.bytes(NDA_LLADDR, macBytes(w[2])),
      attr.bytes(NDA_DST, addrBytes(w[6])),
    ],
  };
}

/** A refused line: its number in the batch and "<line>: <reason>". */
interface Failure {
  at: number;
  text: string;
}

/** One rtnetlink socket for the agent's kernel batches. */
export class RtnlBatcher {
  #sock: NetlinkSocket;
  #fd: number;
  #seq = 1;
  #buf = new Uint8Array(64 * 1024);

  private constructor(sock: NetlinkSocket, fd: number) {
    this.#sock = sock;
    this.#fd = fd;
  }

  /**
   * Opens the socket (and a second one, the batch socket, whose answers we read ourselves), or
   * returns null when this process cannot (no FFI permission, no libc): callers use ip/bridge.
   */
  static open(): RtnlBatcher | null {
    try {
      const sock = NetlinkSocket.open();
      const c = libc();
      const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
      if (fd < 0) {
        sock.close();
        return null;
      }
      const sa = new Uint8Array(12);
      new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
      if (c.bind(fd, sa, 12) < 0) {
        c.close(fd);
        sock.close();
        return null;
      }
      // room for the answers of a large batch in which many lines fail
      const size = new Uint8Array(4);
      new DataView(size.buffer).setUint32(0, 4 << 20, true);
      c.setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, size, 4);
      return new RtnlBatcher(sock, fd);
    } catch {
      return null;
    }
  }

  /** Reads the kernel's per-peer entries over the same namespace's socket. */
  reader(): RtnlReader {
    return new RtnlReader(this.#sock);
  }

  close(): void {
    this.#sock.close();
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
  }

  /**
   * Applies `lines` in order. Returns null when some line is outside the subset (nothing was
   * applied: use ip/bridge for this batch), else the refused lines, "" when all applied.
   */
  apply(lines: string[]): string | null {
    if (!lines.length) return "";
    const failures: Failure[] = []; // by line number, reported in order
    const reqs = this.#encode(lines, failures);
    if (!reqs) return null;
    let i = 0;
    while (i < reqs.length) i = this.#sendFrom(reqs, i, lines, failures);
    return failures.sort((a, b) => a.at - b.at).map((f) => f.text).join("\n");
  }

  /** Each line's message (null: the line cannot apply); null when a line is outside the subset. */
  #encode(lines: string[], failures: Failure[]): (Uint8Array | null)[] | null {
    const indexes = new Map<string, number>();
    const ifindex = (dev: string): number => {
      let i = indexes.get(dev);
      if (i === undefined) {
        i = getLink(this.#sock, dev)?.index ?? 0;
        indexes.set(dev, i);
      }
      if (!i) throw new Error(`Cannot find device "${dev}"`);
      return i;
    };
    const reqs: (Uint8Array | null)[] = [];
    for (const [at, line] of lines.entries()) {
      let r: RtnlRequest | null;
      try {
        r = requestOf(line, ifindex);
      } catch (e) {
        failures.push({ at, text: `${line}: ${(e as Error).message}` });
        reqs.push(null);
        continue;
      }
      if (!r) return null;
      reqs.push(encodeMessage(r.type, r.flags | NLM_F_REQUEST, 0, r.header, r.attrs));
    }
    return reqs;
  }

  /**
   * Sends one datagram: consecutive requests from `i` up to DATAGRAM bytes, the last one
   * acknowledged. Returns the index after the last request it took.
   */
  #sendFrom(
    reqs: (Uint8Array | null)[],
    i: number,
    lines: string[],
    failures: Failure[],
  ): number {
    const bySeq = new Map<number, number>(); // sequence number → line number
    const parts: Uint8Array[] = [];
    let size = 0;
    let lastSeq = 0;
    for (; i < reqs.length && (size === 0 || size + (reqs[i]?.length ?? 0) <= DATAGRAM); i++) {
      const m = reqs[i];
      if (!m) continue;
      const seq = this.#seq = (this.#seq + 1) >>> 0 || 1;
      new DataView(m.buffer, m.byteOffset).setUint32(8, seq, true);
      bySeq.set(seq, i);
      parts.push(m);
      size += m.length;
      lastSeq = seq;
    }
    const lastPart = parts.at(-1);
    if (!lastPart) return i;
    const v = new DataView(lastPart.buffer, lastPart.byteOffset);
    v.setUint16(6, v.getUint16(6, true) | NLM_F_ACK, true);
    const dgram = new Uint8Array(size);
    let o = 0;
    for (const p of parts) {
      dgram.set(p, o);
      o += p.length;
    }
    const lost = this.#transact(dgram, lastSeq, (seq, why) => {
      const at = bySeq.get(seq);
      if (at !== undefined) failures.push({ at, text: `${lines[at]}: ${why}` });
    });
    if (lost) {
      failures.push({
        at: i,
        text: `rtnetlink: ${lost}; the outcome of ${bySeq.size} lines is unknown`,
      });
    }
    return i;
  }

  /** Sends one datagram and reads answers up to the ack of `lastSeq`; a problem, or "". */
  #transact(
    dgram: Uint8Array,
    lastSeq: number,
    refused: (seq: number, why: string) => void,
  ): string {
    const c = libc();
    if (Number(c.send(this.#fd, dgram, BigInt(dgram.length), 0)) < 0) {
      return `send failed: ${strerror(errno())}`;
    }
    for (;;) {
      const n = Number(c.recv(this.#fd, this.#buf, BigInt(this.#buf.length), 0));
      if (n < 0) {
        const e = errno();
        return e === ENOBUFS ? "answers were lost (receive buffer full)" : strerror(e);
      }
      for (const m of decodeMessages(this.#buf.subarray(0, n))) {
        if (m.type !== NLMSG_ERROR) continue;
        const { errno: code, msg } = decodeError(m);
        if (code !== 0) refused(m.seq, `${strerror(code)}${msg ? ` (${msg})` : ""}`);
        if (m.seq === lastSeq) return "";
      }
    }
  }
}

// ------------------------------------------------------------------------------- reading back

/** A route as `ip -j route show dev D` gives it (the fields routes.ts reads). */
export interface RouteRead {
  dst: string;
  gateway?: string;
  dev: string;
  flags: string[];
}
/** A neighbour as `ip -j neigh show dev D` gives it. */
export interface NeighRead {
  dst: string;
  lladdr?: string;
  state: string[];
}
/** An FDB entry as `bridge -j fdb show dev D` gives it. */
export interface FdbRead {
  mac: string;
  dst?: string;
}

const RTM_GETNEIGH = 30;
const RTM_GETROUTE = 26;
const RTN_UNICAST_TYPE = 1;

function formatAddr(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return formatIP(ipFromBytes(b));
}

function formatMac(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += (i ? ":" : "") + b[i].toString(16).padStart(2, "0");
  return s;
}

/** Reads what `ip`/`bridge -j … show dev D` would, over rtnetlink dumps; null: no such device. */
export class RtnlReader {
  constructor(private sock: NetlinkSocket) {}

  private index(dev: string): number | null {
    return getLink(this.sock, dev)?.index ?? null;
  }

  /** Unicast routes of the main table through `dev`. */
  routes(family: 4 | 6, dev: string): RouteRead[] | null {
    const oif = this.index(dev);
    if (oif === null) return null;
    const out: RouteRead[] = [];
    const ms = this.sock.query(
      `list routes of ${dev}`,
      RTM_GETROUTE,
      rtmsg({ family: family === 4 ? AF_INET : AF_INET6 }),
    );
    for (const m of ms) {
      const r = decodeRoute(m.body);
      if (r.table !== RT_TABLE_MAIN || r.type !== RTN_UNICAST_TYPE || r.oif !== oif) continue;
      const flags = new DataView(m.body.buffer, m.body.byteOffset).getUint32(8, true);
      const full = family === 4 ? 32 : 128;
      const dst = r.dst ? formatAddr(r.dst) : "default";
      out.push({
        dst: r.dst && r.dstLen !== full ? `${dst}/${r.dstLen}` : dst,
        ...(r.gateway ? { gateway: formatAddr(r.gateway) } : {}),
        dev,
        flags: flags & RTNH_F_ONLINK ? ["onlink"] : [],
      });
    }
    return out;
  }

  /** Neighbours (family 4/6) or FDB entries (bridge) of `dev`. */
  private neighbours(
    af: number,
    dev: string,
  ): { ndm: DataView; attrs: Map<number, Uint8Array> }[] | null {
    const ifindex = this.index(dev);
    if (ifindex === null) return null;
    const out = [];
    for (const m of this.sock.query(`list neighbours of ${dev}`, RTM_GETNEIGH, ndmsg(af, 0, 0))) {
      const ndm = new DataView(m.body.buffer, m.body.byteOffset, 12);
      if (ndm.getInt32(4, true) !== ifindex) continue;
      out.push({ ndm, attrs: decodeAttrs(m.body.subarray(12)) });
    }
    return out;
  }

  neighs(family: 4 | 6, dev: string): NeighRead[] | null {
    const ns = this.neighbours(family === 4 ? AF_INET : AF_INET6, dev);
    if (!ns) return null;
    return ns.flatMap(({ ndm, attrs }) => {
      const dst = attrs.get(NDA_DST);
      if (!dst) return [];
      const ll = attrs.get(NDA_LLADDR);
      const state = ndm.getUint16(8, true);
      if (!(state & 0xff & ~NUD_NOARP)) return []; // hidden by `ip neigh show` too
      return [{
        dst: formatAddr(dst),
        ...(ll ? { lladdr: formatMac(ll) } : {}),
        state: state & NUD_PERMANENT ? ["PERMANENT"] : [],
      }];
    });
  }

  fdbs(dev: string): FdbRead[] | null {
    const ns = this.neighbours(AF_BRIDGE, dev);
    if (!ns) return null;
    return ns.flatMap(({ attrs }) => {
      const mac = attrs.get(NDA_LLADDR);
      if (!mac) return [];
      const dst = attrs.get(NDA_DST);
      return [{ mac: formatMac(mac), ...(dst ? { dst: formatAddr(dst) } : {}) }];
    });
  }
}
