// A blocking NETLINK_ROUTE socket over libc: send a request, read until its ack or the end of
// its dump. The kernel answers a request before send() returns control to us in practice, and
// recv() blocks only for the microseconds the kernel needs, so blocking calls on the main thread
// are fine for a short-lived CNI process.
import {
  AF_NETLINK,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_NETLINK,
} from "./constants.ts";
import { errno, libc, strerror, SyscallError } from "./libc.ts";
import { type Attr, decodeError, decodeMessages, encodeMessage, type Message } from "./message.ts";

/** A request the kernel refused: errno plus the kernel's own explanation when it gave one. */
export class NetlinkError extends Error {
  constructor(readonly errno: number, readonly op: string, readonly kernelMsg?: string) {
    super(`${op}: ${strerror(errno)}${kernelMsg ? ` (${kernelMsg})` : ""}`);
  }
}

const RECV_SIZE = 64 * 1024;

export class NetlinkSocket {
  #fd: number;
  #seq = Math.floor(Date.now() / 1000) & 0xffff;
  #buf = new Uint8Array(RECV_SIZE);

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Opens a socket in the calling thread's current network namespace. */
  static open(protocol = NETLINK_ROUTE): NetlinkSocket {
    const c = libc();
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw new SyscallError("socket(AF_NETLINK)", errno());
    const one = new Uint8Array(4);
    new DataView(one.buffer).setUint32(0, 1, true);
    // Best effort: kernel error messages, and acks that do not echo the whole request.
    c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4);
    c.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4);
    const sa = new Uint8Array(12); // sockaddr_nl: family, pad, pid 0 (kernel assigns), groups 0
    new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
    if (c.bind(fd, sa, 12) < 0) {
      const e = errno();
      c.close(fd);
      throw new SyscallError("bind(AF_NETLINK)", e);
    }
    return new NetlinkSocket(fd);
  }

  close(): void {
    if (this.#fd >= 0) libc().close(this.#fd);
    this.#fd = -1;
  }

  #send(type: number, flags: number, header: Uint8Array, attrs: Attr[]): number {
    const seq = ++this.#seq;
    const msg = encodeMessage(type, flags | NLM_F_REQUEST, seq, header, attrs);
    const n = Number(libc().send(this.#fd, msg, BigInt(msg.length), 0));
    if (n < 0) throw new SyscallError("send(netlink)", errno());
    return seq;
  }

  #recv(): Message[] {
    const n = Number(libc().recv(this.#fd, this.#buf, BigInt(this.#buf.length), 0));
    if (n < 0) throw new SyscallError("recv(netlink)", errno());
    return decodeMessages(this.#buf.slice(0, n));
  }

  /** A change request; resolves on the kernel's ack, throws NetlinkError on refusal. */
  request(op: string, type: number, flags: number, header: Uint8Array, attrs: Attr[] = []): void {
    const seq = this.#send(type, flags | NLM_F_ACK, header, attrs);
    for (;;) {
      for (const m of this.#recv()) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_ERROR) {
          const { errno, msg } = decodeError(m);
          if (errno === 0) return;
          throw new NetlinkError(errno, op, msg);
        }
      }
    }
  }

  /** Sequence numbers for messages built by the caller (see transact). */
  nextSeq(): number {
    return ++this.#seq;
  }

  /**
   * Sends pre-built messages in one datagram (an nfnetlink batch, say) and waits for the answer
   * to `lastSeq`, which must carry NLM_F_ACK. The first refusal among the answers is thrown.
   */
  transact(op: string, datagram: Uint8Array, lastSeq: number): void {
    const n = Number(libc().send(this.#fd, datagram, BigInt(datagram.length), 0));
    if (n < 0) throw new SyscallError("send(netlink)", errno());
    let failure: NetlinkError | undefined;
    for (;;) {
      for (const m of this.#recv()) {
        if (m.type !== NLMSG_ERROR) continue;
        const { errno, msg } = decodeError(m);
        if (errno !== 0 && !failure) failure = new NetlinkError(errno, op, msg);
        if (m.seq === lastSeq) {
          if (failure) throw failure;
          return;
        }
      }
    }
  }

  /** A dump (or a single get when dump is false); returns the bodies of the reply messages. */
  query(
    op: string,
    type: number,
    header: Uint8Array,
    attrs: Attr[] = [],
    dump = true,
  ): Message[] {
    const seq = this.#send(type, dump ? NLM_F_DUMP : 0, header, attrs);
    const out: Message[] = [];
    for (;;) {
      for (const m of this.#recv()) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_DONE) return out;
        if (m.type === NLMSG_ERROR) {
          const { errno, msg } = decodeError(m);
          if (errno === 0) return out;
          throw new NetlinkError(errno, op, msg);
        }
        out.push(m);
        if (!dump) return out;
      }
    }
  }
}
