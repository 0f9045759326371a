// The client side of every HTTP call to a store member (peer transport, peer stream, join,
// leader forwarding, ctl) and of the etcd client: the one place that knows the URL scheme, how
// the credential is sent, the per-request timeout, and where TLS settings go. Callers keep their
// own reading of answers (a 401 means different things to join and to ctl); this module only
// builds and sends requests and opens raw connections.
//
// TLS: with `tls` set, URLs are https and servers are verified against `caCerts` (the cluster CA,
// or an external etcd's CA), through `Deno.createHttpClient`; raw connections are TCP with Nagle
// off, upgraded with `Deno.startTls`, so TCP_NODELAY stays set under TLS. A client certificate
// (external etcd with --client-cert-auth) rides along when given. Deno adds `caCerts` to its
// built-in public roots rather than replacing them (measured in 2.9.6), so a server could also
// pass with a public CA's certificate for the exact address dialled; members are dialled by IP,
// for which public CAs issue nothing on private networks (README "Security model").

/** How servers are verified, and the client certificate to present if the server asks. */
export interface TlsClientOptions {
  /** PEM certificates of the CAs that may sign a server's certificate. */
  caCerts: string[];
  /** PEM client certificate chain and its PEM private key (both or neither). */
  cert?: string;
  key?: string;
}

export interface HttpClientOptions {
  /** Sent as `Authorization: Bearer <token>` on every request; nothing is sent when unset. */
  token?: string;
  /** Headers every request carries besides the credential (e.g. the peer cluster headers). */
  headers?: Record<string, string>;
  /** Per-request timeout (ms) when a call gives none; unset: no timeout. */
  timeoutMs?: number;
  tls?: TlsClientOptions;
}

export interface RequestOptions {
  /** Default POST: every store and etcd JSON route is a POST. */
  method?: string;
  /** A JSON text, or a stream (a streaming body is never re-sent by Deno's fetch on its own
   *  after a connection reset, denoland/deno#35610; writes rely on that). */
  body?: string | ReadableStream<Uint8Array>;
  /** Overrides the client's timeout for this call; 0: none. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Headers for this call only: an external etcd's own auth token (not a Bearer), or the
   *  caller a member forwards for. */
  headers?: Record<string, string>;
}

import { bearerHeader } from "./bearer.ts";

export class HttpClient {
  readonly #token: string | undefined;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number | undefined;
  readonly #tls: TlsClientOptions | undefined;
  readonly #client: Deno.HttpClient | undefined;
  readonly #scheme: "http" | "https";

  constructor(opts: HttpClientOptions = {}) {
    this.#token = opts.token || undefined;
    this.#headers = { ...opts.headers };
    this.#timeoutMs = opts.timeoutMs;
    this.#tls = opts.tls;
    this.#scheme = opts.tls ? "https" : "http";
    if (opts.tls) {
      if (opts.tls.caCerts.length === 0) throw new Error("TLS needs at least one CA certificate");
      if (Boolean(opts.tls.cert) !== Boolean(opts.tls.key)) {
        throw new Error("a client certificate needs both its certificate and its key");
      }
      this.#client = Deno.createHttpClient({
        caCerts: opts.tls.caCerts,
        ...(opts.tls.cert ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
      });
    }
  }

  /** True when this client speaks TLS (https URLs, verified servers). */
  get secure(): boolean {
    return this.#tls !== undefined;
  }

  /** Releases the connection pool of a TLS client; the client must not be used afterwards. */
  close(): void {
    this.#client?.close();
  }

  /** "host:port" → "<scheme>://host:port"; an address that already names its scheme (an etcd
   *  endpoint given as a URL) is kept as given, without trailing slashes. */
  baseUrl(address: string): string {
    const base = /^[a-z][a-z0-9+.-]*:\/\//i.test(address)
      ? address
      : `${this.#scheme}://${address}`;
    return base.replace(/\/+$/, "");
  }

  url(address: string, path: string): string {
    return this.baseUrl(address) + path;
  }

  /** The credential and the client's fixed headers, e.g. for a WebSocket handshake. */
  headers(): Record<string, string> {
    const h: Record<string, string> = { ...this.#headers };
    if (this.#token) h.authorization = bearerHeader(this.#token);
    return h;
  }

  /** Sends one request to `address` (host:port or a base URL). Network errors, timeouts and
   *  aborts are thrown as fetch throws them; any HTTP status is returned. */
  request(address: string, path: string, o: RequestOptions = {}): Promise<Response> {
    const headers = { ...this.headers(), ...o.headers };
    if (o.body !== undefined) headers["content-type"] = "application/json";
    const timeoutMs = o.timeoutMs ?? this.#timeoutMs;
    const signals = [o.signal, timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined]
      .filter((s): s is AbortSignal => s !== undefined);
    return fetch(this.url(address, path), {
      client: this.#client,
      method: o.method ?? "POST",
      headers,
      body: o.body,
      signal: signals.length === 0
        ? undefined
        : signals.length === 1
        ? signals[0]
        : AbortSignal.any(signals),
    });
  }

  /** POSTs `body` as JSON and reads the whole answer as text. */
  async postJson(
    address: string,
    path: string,
    body: unknown,
    o: Omit<RequestOptions, "body"> = {},
  ): Promise<{ status: number; ok: boolean; text: string }> {
    const res = await this.request(address, path, { ...o, body: JSON.stringify(body) });
    return { status: res.status, ok: res.ok, text: await res.text() };
  }

  /** A raw connection to hostname:port with Nagle's algorithm off, for protocols spoken by hand
   *  (the peer stream): small frames must not wait for the peer's delayed ACK. */
  async dial(hostname: string, port: number): Promise<Deno.Conn> {
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    if (!this.#tls) return conn;
    return await Deno.startTls(conn, { hostname, caCerts: this.#tls.caCerts });
  }
}
