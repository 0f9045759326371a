// The server side of the store's HTTP: one function that listens and serves a fetch handler,
// used by every store member. Deno.serve sets TCP_NODELAY on accepted connections, which the
// peer streams' small frames need. TLS (a certificate and key) will be taken here.
// Deno.serve has no header-read or idle timeout, so it listens on a private unix socket behind
// a thin TCP front of ours that enforces them (accept_guard.ts).
import type { Logger } from "../log.ts";
import { type AcceptLimits, DEFAULT_ACCEPT_LIMITS, guardAccept } from "./accept_guard.ts";

export interface ServeOptions {
  hostname: string;
  /** 0: any free port (read it from the returned server's `addr`). */
  port: number;
  handler: (req: Request) => Response | Promise<Response>;
  /** Where a handler that throws is reported (the client gets a 500). */
  logger: Logger;
  /** Connection deadlines (tests shrink them). */
  limits?: AcceptLimits;
}

export interface Server {
  readonly addr: Deno.NetAddr;
  shutdown(): Promise<void>;
}

/** Resolves once the server listens; a port that cannot be bound rejects with one line. */
export async function serve(o: ServeOptions): Promise<Server> {
  const where = `${o.hostname.includes(":") ? `[${o.hostname}]` : o.hostname}:${o.port}`;
  const dir = await Deno.makeTempDir({ prefix: "twill-http-" }); // 0700: only we connect
  const path = `${dir}/http.sock`;
  let listening!: () => void;
  const listened = new Promise<void>((resolve) => listening = resolve);
  const inner = Deno.serve({
    path,
    onListen: () => listening(),
    onError: (e) => {
      o.logger("error", "http_handler_failed", { error: e });
      return new Response("internal error", { status: 500 });
    },
  }, o.handler);
  await listened;
  let front: ReturnType<typeof guardAccept>;
  try {
    front = guardAccept(
      { hostname: o.hostname, port: o.port },
      { path },
      o.limits ?? DEFAULT_ACCEPT_LIMITS,
    );
  } catch (e) {
    await inner.shutdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw new Error(`cannot listen on ${where}: ${(e as Error).message}`);
  }
  return {
    addr: front.addr,
    async shutdown() {
      front.close();
      await inner.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
