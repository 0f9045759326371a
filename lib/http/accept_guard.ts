// A thin TCP front for a Deno.serve server, which has no header-read or idle timeout of its own
// (measured in Deno 2.9.6: a connection that sent half a request header, or nothing, is held for
// as long as the client likes), and Deno cannot serve HTTP on connections accepted by our own
// listener. So the front accepts on the public address and forwards the bytes of each connection
// to the real server on a private unix socket, enforcing:
// - a first-byte deadline: a client that sends nothing is closed;
// - a head deadline: a plain-HTTP client must complete its first request's header block (the
//   blank line after the headers) in time; a TLS client (first byte 0x16) must have been
//   answered by the server (its handshake went through) in time;
// - an idle deadline: a connection on which no byte moved either way for that long is closed.
// Past the head, bytes are piped both ways without looking at them.

export interface AcceptLimits {
  firstByteMs: number;
  headMs: number;
  idleMs: number;
  /** Largest first-request header block (plain HTTP) before the connection is closed. */
  maxHeadBytes: number;
  /** Connections still in their first-byte/head phase; a new one beyond it closes the oldest
   *  (a client that completes its head in time is rarely the oldest). Every open connection
   *  costs the runtime memory it does not give back, so this bounds what a flood leaves. */
  maxPendingHeads: number;
}

export const DEFAULT_ACCEPT_LIMITS: AcceptLimits = {
  firstByteMs: 5_000,
  headMs: 10_000,
  idleMs: 15 * 60_000,
  maxHeadBytes: 64 * 1024,
  maxPendingHeads: 512,
};

export interface AcceptGuard {
  readonly addr: Deno.NetAddr;
  /** Connections currently open through the front. */
  readonly open: number;
  close(): void;
}

const BLANK_LINE = [13, 10, 13, 10];

/** Where the real server listens: a unix socket, or a loopback port (a TLS server). */
export type GuardTarget = { path: string } | { hostname: string; port: number };

/** Listens on hostname:port and forwards every connection to `target`. */
export function guardAccept(
  listenOn: { hostname: string; port: number },
  target: GuardTarget,
  limits: AcceptLimits = DEFAULT_ACCEPT_LIMITS,
): AcceptGuard {
  const listener = Deno.listen({ ...listenOn, transport: "tcp" });
  const conns = new Set<Deno.Conn>();
  /** In accept order: the first is the oldest. */
  const heads = new Set<Deno.Conn>();
  const guard = {
    addr: listener.addr as Deno.NetAddr,
    get open() {
      return conns.size;
    },
    close() {
      listener.close();
      for (const c of conns) closeQuietly(c);
    },
  };
  (async () => {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
        // Out of descriptors or a connection reset while queued: keep accepting.
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      conns.add(conn);
      if (heads.size >= limits.maxPendingHeads) {
        const oldest = heads.values().next().value!;
        heads.delete(oldest);
        closeQuietly(oldest);
      }
      heads.add(conn);
      forward(conn, target, limits, () => heads.delete(conn)).finally(() => {
        heads.delete(conn);
        conns.delete(conn);
        closeQuietly(conn);
      });
    }
  })();
  return guard;
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* already closed */ }
}

/** A timer that closes the connection unless it is pushed back or cleared first. */
class Deadline {
  #timer: ReturnType<typeof setTimeout> | undefined;
  constructor(private readonly onExpire: () => void) {}
  set(ms: number): void {
    this.clear();
    this.#timer = setTimeout(this.onExpire, ms);
  }
  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

async function forward(
  client: Deno.TcpConn,
  target: GuardTarget,
  l: AcceptLimits,
  headRead: () => void,
): Promise<void> {
  const accepted = performance.now();
  const head = new Deadline(() => closeQuietly(client));
  head.set(l.firstByteMs);
  const got = await readHead(client, l, () => head.set(l.headMs - (performance.now() - accepted)));
  if (!got) return head.clear();
  headRead();
  if (!got.tls) head.clear();
  client.setNoDelay(true);
  let server: Deno.Conn;
  try {
    server = "path" in target
      ? await Deno.connect({ transport: "unix", path: target.path })
      : await Deno.connect({ ...target, transport: "tcp" });
    if (!("path" in target)) (server as Deno.TcpConn).setNoDelay(true);
  } catch {
    return head.clear();
  }
  let lastMove = performance.now();
  const moved = () => lastMove = performance.now();
  const idle = setInterval(() => {
    if (performance.now() - lastMove <= l.idleMs) return;
    closeQuietly(client);
    closeQuietly(server);
  }, Math.min(l.idleMs, 1000));
  try {
    // The client's end of input is passed on (the server decides what a half-close means); the
    // server's end closes the client.
    const up = (async () => {
      for (const part of got.parts) await writeAll(server, part);
      await pump(client, server, moved);
      await server.closeWrite();
    })().catch(() => {});
    // TLS: the server answering the handshake is as far as the front can see.
    const down = pump(server, client, moved, got.tls ? () => head.clear() : undefined)
      .finally(() => closeQuietly(client));
    await Promise.all([up, down]);
  } finally {
    head.clear();
    clearInterval(idle);
    closeQuietly(server);
  }
}

/** Reads until a plain-HTTP request's header block is complete (or, for TLS, the first bytes):
 *  nothing is opened towards the server before that, so a stalled client costs a small buffer. */
async function readHead(
  client: Deno.Conn,
  l: AcceptLimits,
  firstByte: () => void,
): Promise<{ tls: boolean; parts: Uint8Array[] } | undefined> {
  const parts: Uint8Array[] = [];
  const scanner = new HeadScanner(l.maxHeadBytes);
  const small = new Uint8Array(512);
  for (;;) {
    const n = await client.read(small).catch(() => null);
    if (n === null) return undefined;
    const chunk = small.slice(0, n);
    if (parts.length === 0) firstByte();
    parts.push(chunk);
    if (parts[0][0] === 0x16) return { tls: true, parts };
    const done = scanner.feed(chunk);
    if (done === undefined) return undefined;
    if (done) return { tls: false, parts };
  }
}

/** Finds the end of the first request's header block in the bytes as they go by. */
class HeadScanner {
  #matched = 0;
  #seen = 0;
  constructor(private readonly max: number) {}
  /** true: complete; false: not yet; undefined: too large. */
  feed(b: Uint8Array): boolean | undefined {
    for (let i = 0; i < b.length; i++) {
      this.#matched = b[i] === BLANK_LINE[this.#matched]
        ? this.#matched + 1
        : b[i] === BLANK_LINE[0]
        ? 1
        : 0;
      if (this.#matched === 4) return true;
    }
    this.#seen += b.length;
    return this.#seen > this.max ? undefined : false;
  }
}

/** Copies `from` to `to` until either end closes. */
async function pump(
  from: Deno.Conn,
  to: Deno.Conn,
  moved: () => void,
  onFirst?: () => void,
): Promise<void> {
  const buf = new Uint8Array(32 * 1024);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      moved();
      onFirst?.();
      onFirst = undefined;
      await writeAll(to, buf.subarray(0, n));
    }
  } catch { /* either end went away */ }
}

async function writeAll(to: Deno.Conn, b: Uint8Array): Promise<void> {
  let at = 0;
  while (at < b.length) at += await to.write(b.subarray(at));
}
