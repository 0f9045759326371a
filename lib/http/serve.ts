// The server side of the store's HTTP: one function that listens and serves a fetch handler,
// used by every store member. Deno.serve sets TCP_NODELAY on accepted connections, which the
// peer streams' small frames need. With `tls` the server speaks TLS only (lib/http/tls_server.ts:
// a plain-HTTP request gets no HTTP answer) and its certificate can be replaced without a restart.
// Deno.serve has no header-read or idle timeout, so the real server listens privately (a unix
// socket, or for TLS a loopback port) behind a thin TCP front of ours on the public address that
// enforces them (accept_guard.ts); TLS still ends in the real server, so the front sees no secret.
import type { Logger } from "../log.ts";
import {
  type AcceptLimits,
  DEFAULT_ACCEPT_LIMITS,
  guardAccept,
  type GuardTarget,
} from "./accept_guard.ts";
import { serveTls } from "./tls_server.ts";

export interface ServeOptions {
  hostname: string;
  /** 0 picks a free port (read it from the result). */
  port: number;
  handler: (req: Request) => Response | Promise<Response>;
  /** Where a handler that throws is reported (the client gets a 500). */
  logger: Logger;
  /** The serving certificate chain (leaf then CA) and its key, PEM. */
  tls?: { certPem: string; keyPem: string };
  /** Connection deadlines (tests shrink them). */
  limits?: AcceptLimits;
}

export interface StoreServer {
  /** The public port (the front's). */
  readonly port: number;
  /** Serves new connections with this certificate; rejects (old one kept) on bad PEM.
   *  Throws on a server started without TLS. */
  replaceCertificate(certPem: string, keyPem: string): Promise<void>;
  shutdown(): Promise<void>;
}

/** The real server, listening where only the front reaches it. */
interface InnerServer {
  target: GuardTarget;
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
  const inner = o.tls ? serveInnerTls(o, o.tls, onError) : await serveInnerPlain(o, onError);
  try {
    const front = guardAccept(
      { hostname: o.hostname, port: o.port },
      inner.target,
      o.limits ?? DEFAULT_ACCEPT_LIMITS,
    );
    return {
      port: front.addr.port,
      replaceCertificate: (c, k) => inner.replaceCertificate(c, k),
      async shutdown() {
        front.close();
        await inner.shutdown();
      },
    };
  } catch (e) {
    await inner.shutdown();
    throw new Error(`cannot listen on ${where}: ${(e as Error).message}`);
  }
}

function serveInnerTls(
  o: ServeOptions,
  tls: { certPem: string; keyPem: string },
  onError: (e: unknown) => Response,
): InnerServer {
  const loopback = o.hostname.includes(":") ? "::1" : "127.0.0.1";
  const s = serveTls({ hostname: loopback, port: 0, handler: o.handler, ...tls, onError });
  return {
    target: { hostname: loopback, port: s.port },
    replaceCertificate: (c, k) => s.replaceCertificate(c, k),
    shutdown: () => s.shutdown(),
  };
}

async function serveInnerPlain(
  o: ServeOptions,
  onError: (e: unknown) => Response,
): Promise<InnerServer> {
  const dir = await Deno.makeTempDir({ prefix: "twill-http-" }); // 0700: only we connect
  const path = `${dir}/http.sock`;
  let listening!: () => void;
  const listened = new Promise<void>((resolve) => listening = resolve);
  const server = Deno.serve({ path, onListen: () => listening(), onError }, o.handler);
  await listened;
  return {
    target: { path },
    replaceCertificate: () => Promise.reject(new Error("this server speaks plain HTTP")),
    async shutdown() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
