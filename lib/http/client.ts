// The client side of every HTTP call to a store member (peer transport, peer stream, join,
// leader forwarding, ctl) and of the etcd client: the one place that knows the URL scheme, how
// the credential is sent, the per-request timeout, and where TLS settings go. Callers keep their
// own reading of answers (a 401 means different things to join and to ctl); this module only
// builds and sends requests and opens raw connections.
//
// TLS: `tls` is carried through every caller's options so that switching the scheme is a change
// here only (https URLs with `Deno.createHttpClient({ caCerts })`, and `Deno.startTls` over the
// dialled TCP connection so TCP_NODELAY stays set). Until that lands the store speaks plain HTTP,
// so a client asked for TLS refuses to start rather than send a credential in clear.

/** How servers are verified once the store serves TLS. */
export interface TlsClientOptions {
  /** PEM certificates of the CAs that may sign a server's certificate. */
  caCerts: string[];
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
}

import { bearerHeader } from "./bearer.ts";

const SCHEME = "http";

export class HttpClient {
  readonly #token: string | undefined;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number | undefined;

  constructor(opts: HttpClientOptions = {}) {
    if (opts.tls) {
      throw new Error("TLS is not available in this build of twill; the store speaks plain HTTP");
    }
    this.#token = opts.token || undefined;
    this.#headers = { ...opts.headers };
    this.#timeoutMs = opts.timeoutMs;
  }

  /** "host:port" → "<scheme>://host:port"; an address that already names its scheme (an etcd
   *  endpoint given as a URL) is kept as given, without trailing slashes. */
  baseUrl(address: string): string {
    const base = /^[a-z][a-z0-9+.-]*:\/\//i.test(address) ? address : `${SCHEME}://${address}`;
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
    const headers = this.headers();
    if (o.body !== undefined) headers["content-type"] = "application/json";
    const timeoutMs = o.timeoutMs ?? this.#timeoutMs;
    const signals = [o.signal, timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined]
      .filter((s): s is AbortSignal => s !== undefined);
    return fetch(this.url(address, path), {
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
  async dial(hostname: string, port: number): Promise<Deno.TcpConn> {
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    return conn;
  }
}
