// An HTTPS server whose certificate can be replaced without a restart. Deno.serve takes its
// certificate once, at start, and Deno 2.9.6 has no way to serve HTTP over connections accepted
// by a listener of our own, so a renewal starts a second Deno.serve on the same address with
// SO_REUSEPORT and the new certificate, and only then shuts the old one down gracefully: new
// connections go to the new server, requests in flight (and long watches or peer streams) finish
// on the old one, whose certificate was checked at their handshake. No instant is left without
// a listener, and the new listener is bound before the old one closes, so a certificate that
// cannot be loaded leaves the old one serving.
//
// Requirements and limits (measured in Deno 2.9.6 on Linux):
// - `reusePort` with TLS is unstable: the process needs `--unstable-net` ("unstable": ["net"]).
// - SO_REUSEPORT would let a second process of the same user bind the same port silently, so
//   the first start probes the address with a plain listener first and refuses if it is taken.
// - A connection the kernel hashed to the old listener in the milliseconds before it closes is
//   reset during TCP connect (measured: zero to four of ~250 fresh connections across ten
//   renewals). It fails before any request byte is sent (fetch: "client error (Connect)"), so a
//   client may treat it like a refused connection and retry it, writes included.
import { isIP } from "node:net";

export interface TlsServerOptions {
  hostname: string;
  /** 0 picks a free port (read it from `port` on the result). */
  port: number;
  handler: Deno.ServeHandler;
  /** The serving certificate followed by the CA certificate, PEM. */
  certPem: string;
  keyPem: string;
  onError?: (error: unknown) => Response | Promise<Response>;
}

export interface TlsServer {
  readonly hostname: string;
  readonly port: number;
  /** Resolves once new connections get this certificate; in-flight ones finish on the old one
   *  (see `finished`). Rejects, leaving the old certificate serving, when the PEM is bad. */
  replaceCertificate(certPem: string, keyPem: string): Promise<void>;
  /** Stops accepting and waits for in-flight requests to finish. */
  shutdown(): Promise<void>;
  /** Resolves when every server generation has finished. */
  readonly finished: Promise<void>;
}

/** Refuses early (Deno.errors.AddrInUse) when any socket already holds hostname:port. */
function probeAddressFree(hostname: string, port: number): number {
  const probe = Deno.listen({ hostname, port, transport: "tcp" });
  const picked = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return picked;
}

export function serveTls(o: TlsServerOptions): TlsServer {
  if (isIP(o.hostname) === 0 && o.hostname !== "localhost") {
    throw new Error(`serveTls: hostname must be an IP address: ${o.hostname}`);
  }
  const port = probeAddressFree(o.hostname, o.port);
  const generations: Promise<void>[] = [];
  let current: Deno.HttpServer<Deno.NetAddr> | null = null;
  let closed = false;
  let endAll!: () => void;
  const allDone = new Promise<void>((r) => (endAll = r));

  const start = (certPem: string, keyPem: string) => {
    const s = Deno.serve({
      hostname: o.hostname,
      port,
      reusePort: true,
      cert: certPem,
      key: keyPem,
      onListen: () => {},
      onError: o.onError,
    }, o.handler);
    generations.push(s.finished);
    return s;
  };
  current = start(o.certPem, o.keyPem);

  const server: TlsServer = {
    hostname: o.hostname,
    port,
    // deno-lint-ignore require-await
    async replaceCertificate(certPem: string, keyPem: string): Promise<void> {
      if (closed) throw new Error("serveTls: server is shut down");
      // A bad certificate or key throws here, and the old server keeps serving.
      const next = start(certPem, keyPem);
      const old = current!;
      current = next;
      // Not awaited: the old generation may carry watches and peer streams for a long time.
      old.shutdown().catch(() => {});
    },
    async shutdown(): Promise<void> {
      if (closed) return await server.finished;
      closed = true;
      await current!.shutdown();
      await Promise.all(generations);
      endAll();
    },
    finished: allDone,
  };
  return server;
}
