// The server side of the store's HTTP: one function that listens and serves a fetch handler,
// used by every store member. Deno.serve sets TCP_NODELAY on accepted connections, which the
// peer streams' small frames need. TLS (a certificate and key) will be taken here.
import type { Logger } from "../log.ts";

export interface ServeOptions {
  hostname: string;
  /** 0: any free port (read it from the returned server's `addr`). */
  port: number;
  handler: (req: Request) => Response | Promise<Response>;
  /** Where a handler that throws is reported (the client gets a 500). */
  logger: Logger;
}

/** Resolves once the server listens; a port that cannot be bound rejects with one line. */
export async function serve(o: ServeOptions): Promise<Deno.HttpServer<Deno.NetAddr>> {
  const where = `${o.hostname.includes(":") ? `[${o.hostname}]` : o.hostname}:${o.port}`;
  let listening!: () => void;
  const listened = new Promise<void>((resolve) => listening = resolve);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: o.hostname,
      port: o.port,
      onListen: () => listening(),
      onError: (e) => {
        o.logger("error", "http_handler_failed", { error: e });
        return new Response("internal error", { status: 500 });
      },
    }, o.handler);
  } catch (e) {
    throw new Error(`cannot listen on ${where}: ${(e as Error).message}`);
  }
  await listened;
  return server;
}
