// The server side of the store's HTTP: one function that listens and serves a fetch handler,
// used by every store member. Deno.serve sets TCP_NODELAY on accepted connections, which the
// peer streams' small frames need. With `tls` the server speaks TLS only (lib/http/tls_server.ts:
// a plain-HTTP request gets no HTTP answer) and its certificate can be replaced without a restart.
import type { Logger } from "../log.ts";
import { serveTls } from "./tls_server.ts";

export interface ServeOptions {
  hostname: string;
  /** 0: any free port (read it from the returned server's `port`). */
  port: number;
  handler: (req: Request) => Response | Promise<Response>;
  /** Where a handler that throws is reported (the client gets a 500). */
  logger: Logger;
  /** The serving certificate chain (leaf then CA) and its key, PEM. */
  tls?: { certPem: string; keyPem: string };
}

export interface StoreServer {
  readonly port: number;
  /** Serves new connections with this certificate; rejects (old one kept) on bad PEM.
   *  Throws on a server started without TLS. */
  replaceCertificate(certPem: string, keyPem: string): Promise<void>;
  shutdown(): Promise<void>;
}

/** Resolves once the server listens; a port that cannot be bound rejects with one line. */
export async function serve(o: ServeOptions): Promise<StoreServer> {
  const where = `${o.hostname.includes(":") ? `[${o.hostname}]` : o.hostname}:${o.port}`;
  const onError = (e: unknown) => {
    o.logger("error", "http_handler_failed", { error: e });
    return new Response("internal error", { status: 500 });
  };
  if (o.tls) {
    try {
      const s = serveTls({
        hostname: o.hostname,
        port: o.port,
        handler: o.handler,
        certPem: o.tls.certPem,
        keyPem: o.tls.keyPem,
        onError,
      });
      return s;
    } catch (e) {
      throw new Error(`cannot listen on ${where}: ${(e as Error).message}`);
    }
  }
  return await servePlain(o, where, onError);
}

async function servePlain(
  o: ServeOptions,
  where: string,
  onError: (e: unknown) => Response,
): Promise<StoreServer> {
  let listening!: () => void;
  const listened = new Promise<void>((resolve) => listening = resolve);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: o.hostname,
      port: o.port,
      onListen: () => listening(),
      onError,
    }, o.handler);
  } catch (e) {
    throw new Error(`cannot listen on ${where}: ${(e as Error).message}`);
  }
  await listened;
  return {
    port: server.addr.port,
    replaceCertificate: () => Promise.reject(new Error("this server speaks plain HTTP")),
    shutdown: () => server.shutdown(),
  };
}
