// An etcd v3 JSON API client (the grpc-gateway API), used by the agent and `twill ctl` against
// twill's embedded store or a real etcd 3.4 alike.
//
// Decisions:
// - keys and values are Uint8Array (strings are accepted as input and UTF-8 encoded; use
//   `text()` to read one back); every int64 (revisions, versions, lease ids, TTLs) is a decimal
//   string, exactly as on the wire.
// - Reads (range, timetolive, leases, status, keepalive, watch creation) fail over to the next
//   endpoint on a connection error or a 503, since repeating them is harmless.
// - Writes (put, deleteRange, txn with writes, lease grant/revoke, compact) are sent once, to one
//   endpoint, and never repeated by this client: they go out with a streaming request body,
//   which Deno's fetch does not transparently re-send after a connection reset (it only retries
//   requests whose body it can clone; see denoland/deno#35610). The only failover for a write is
//   a refused connection, where the request provably never arrived. A write whose connection
//   breaks after sending fails with an "unavailable" EtcdClientError: the outcome is unknown.
// - etcd's own user auth (`user`): the client trades the name and password for a token at
//   /v3/auth/authenticate and sends it as `Authorization: <token>` (etcd's form, no "Bearer").
//   etcd forgets idle tokens (--auth-token-ttl) and all of them on a restart, so a call that
//   etcd answers with "invalid auth token" (or "auth store is old") is authenticated again and
//   sent once more; etcd checks the token before it applies anything, so a write rejected that
//   way did not happen and repeating it is safe. The password is never part of an error.

import type { CompareResult, CompareTarget } from "../store/kv.ts";
import { decodeBase64 as unb64, encodeBase64 as b64 } from "../base64.ts";
import type { KeyValue } from "../store/kv.ts";
import { HttpClient, type TlsClientOptions } from "../http/client.ts";

export type Bytes = Uint8Array | string;

const te = new TextEncoder();
const td = new TextDecoder();

export function bytes(b: Bytes): Uint8Array {
  return typeof b === "string" ? te.encode(b) : b;
}

/** UTF-8 text of a key or value. */
export function text(b: Uint8Array): string {
  return td.decode(b);
}

/** The range_end that selects every key starting with `prefix`. */
export function prefixEnd(prefix: Bytes): Uint8Array {
  const p = bytes(prefix).slice();
  for (let i = p.length - 1; i >= 0; i--) {
    if (p[i] < 0xff) {
      p[i]++;
      return p.slice(0, i + 1);
    }
  }
  return new Uint8Array([0]); // every key
}

export interface ResponseHeader {
  clusterId: string;
  memberId: string;
  revision: string;
  raftTerm: string;
}

/** A key-value pair as the store and etcd report it (the same type the store's backend uses). */
export type { KeyValue };

export interface RangeOptions {
  /** Explicit end of range ([key, rangeEnd)); "\0" for every key >= key. */
  rangeEnd?: Bytes;
  /** Every key with this prefix (sets rangeEnd). */
  prefix?: boolean;
  limit?: number;
  revision?: string | number;
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: KeyValue[];
  more: boolean;
  count: string;
}

export interface PutOptions {
  lease?: string;
  prevKv?: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface PutResponse {
  header: ResponseHeader;
  prevKv?: KeyValue;
}

export interface DeleteOptions {
  rangeEnd?: Bytes;
  prefix?: boolean;
  prevKv?: boolean;
}

export interface DeleteRangeResponse {
  header: ResponseHeader;
  deleted: string;
  prevKvs: KeyValue[];
}

export interface TxnCompare {
  key: Bytes;
  rangeEnd?: Bytes;
  target: CompareTarget;
  result: CompareResult;
  /** Operand: a decimal string for VERSION, CREATE, MOD, LEASE; bytes for VALUE. */
  version?: string;
  createRevision?: string;
  modRevision?: string;
  lease?: string;
  value?: Bytes;
}

export type TxnOp =
  | { range: { key: Bytes } & RangeOptions }
  | { put: { key: Bytes; value: Bytes } & PutOptions }
  | { deleteRange: { key: Bytes } & DeleteOptions }
  | { txn: TxnRequest };

export interface TxnRequest {
  compare?: TxnCompare[];
  success?: TxnOp[];
  failure?: TxnOp[];
}

export type TxnResponseOp =
  | { range: RangeResponse }
  | { put: PutResponse }
  | { deleteRange: DeleteRangeResponse }
  | { txn: TxnResponse };

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: TxnResponseOp[];
}

export interface LeaseGrantResponse {
  header: ResponseHeader;
  id: string;
  ttl: string;
}

export interface LeaseKeepAliveResponse {
  header: ResponseHeader;
  id: string;
  /** "0" when the lease does not exist (any more). */
  ttl: string;
}

export interface LeaseTimeToLiveResponse {
  header: ResponseHeader;
  id: string;
  /** Seconds left; "-1" when the lease does not exist. */
  ttl: string;
  grantedTtl: string;
  keys: Uint8Array[];
}

export interface StatusResponse {
  header: ResponseHeader;
  version: string;
  dbSize: string;
  leader: string;
  raftIndex: string;
  raftTerm: string;
  raftAppliedIndex: string;
}

export interface WatchOptions {
  rangeEnd?: Bytes;
  prefix?: boolean;
  /** First revision to deliver (default: changes after now). */
  startRevision?: string | number;
  prevKv?: boolean;
  progressNotify?: boolean;
  /** Aborting ends the iteration quietly and closes the stream. */
  signal?: AbortSignal;
}

export interface WatchEvent {
  type: "PUT" | "DELETE";
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface WatchResponse {
  header: ResponseHeader;
  watchId: string;
  created: boolean;
  canceled: boolean;
  /** Set (non-"0") when the watch was canceled because its start revision was compacted. */
  compactRevision: string;
  cancelReason: string;
  events: WatchEvent[];
}

/** An error answered by the server (gRPC code and message as etcd sends them), or "unavailable"
 *  (code 14) when no endpoint could be reached or a write's outcome is unknown. */
export class EtcdClientError extends Error {
  readonly grpcCode: number;
  readonly httpStatus: number;
  /** `cause`: the network error when no endpoint could be reached. */
  constructor(grpcCode: number, httpStatus: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "EtcdClientError";
    this.grpcCode = grpcCode;
    this.httpStatus = httpStatus;
  }
  /** True when the request may or may not have taken effect. */
  get unknownOutcome(): boolean {
    return this.grpcCode === 14 || this.grpcCode === 4;
  }
}

export interface EtcdClientOptions {
  /** Base URLs, e.g. ["http://10.0.0.1:8473"]; "host:port" gets the store's scheme (lib/http). */
  endpoints: string[];
  /** Sent as `Authorization: Bearer <token>` (twill's cluster token). Leave it out for a real
   *  etcd without auth: etcd 3.4 refuses any token then ("etcdserver: invalid auth token"). */
  token?: string;
  /** Per unary request (default 30 s). A timed-out write has an unknown outcome. */
  requestTimeoutMs?: number;
  /** How servers are verified (see lib/http/client.ts). */
  tls?: TlsClientOptions;
  /** etcd's own user auth (a real etcd with `auth enable`); leave `token` unset with it. */
  user?: EtcdUser;
  /** Told of every answer's verdict on the credential: false on a 401 (no such credential, or
   *  revoked), true on any answer that got past authentication. The agent uses it to notice
   *  that its credential was revoked. */
  onAuthenticated?: (accepted: boolean) => void;
}

/** An etcd user; the password goes only into the authenticate request. */
export interface EtcdUser {
  name: string;
  password: string;
}

type Json = Record<string, unknown>;

export class EtcdClient {
  #endpoints: string[];
  readonly #http: HttpClient;
  readonly #timeoutMs: number;
  readonly #user: EtcdUser | undefined;
  /** etcd's auth token for #user, once authenticated. */
  #authToken: string | undefined;
  /** The authentication under way, shared by every call that needs a token meanwhile. */
  #authenticating: Promise<string> | undefined;
  readonly #onAuthenticated: ((accepted: boolean) => void) | undefined;
  #preferred = 0;

  constructor(opts: EtcdClientOptions) {
    if (opts.endpoints.length === 0) throw new Error("EtcdClient: give at least one endpoint");
    if (opts.user && opts.token) {
      throw new Error("EtcdClient: give either a Bearer token or an etcd user, not both");
    }
    if (opts.user && (!opts.user.name || !opts.user.password)) {
      throw new Error("EtcdClient: an etcd user needs both a name and a password");
    }
    this.#user = opts.user ? { ...opts.user } : undefined;
    this.#http = new HttpClient({ token: opts.token, tls: opts.tls });
    this.#endpoints = opts.endpoints.map((e) => this.#http.baseUrl(e));
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#onAuthenticated = opts.onAuthenticated;
  }

  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** Replaces the endpoints (a plain client's member list was refreshed); calls under way
   *  finish on the endpoint they chose, later ones use the new list. */
  setEndpoints(endpoints: string[]): void {
    if (endpoints.length === 0) throw new Error("EtcdClient: give at least one endpoint");
    this.#endpoints = endpoints.map((e) => this.#http.baseUrl(e));
    this.#preferred = 0;
  }

  async range(key: Bytes, opts: RangeOptions = {}): Promise<RangeResponse> {
    return decodeRange(await this.#read("/v3/kv/range", encodeRange(key, opts)));
  }

  async put(key: Bytes, value: Bytes, opts: PutOptions = {}): Promise<PutResponse> {
    return decodePut(await this.#write("/v3/kv/put", encodePut(key, value, opts)));
  }

  async deleteRange(key: Bytes, opts: DeleteOptions = {}): Promise<DeleteRangeResponse> {
    return decodeDelete(await this.#write("/v3/kv/deleterange", encodeDelete(key, opts)));
  }

  async txn(req: TxnRequest): Promise<TxnResponse> {
    const body = encodeTxn(req);
    const res = txnWrites(req)
      ? await this.#write("/v3/kv/txn", body)
      : await this.#read("/v3/kv/txn", body);
    return decodeTxn(res);
  }

  async compact(revision: string | number): Promise<{ header: ResponseHeader }> {
    const res = await this.#write("/v3/kv/compaction", { revision: String(revision) });
    return { header: decodeHeader(res.header) };
  }

  /** Grants a lease of `ttl` seconds; id "0"/omitted lets the server choose. */
  async leaseGrant(ttl: number, id = "0"): Promise<LeaseGrantResponse> {
    const res = await this.#write("/v3/lease/grant", { TTL: String(ttl), ID: id });
    return { header: decodeHeader(res.header), id: str(res.ID), ttl: str(res.TTL) };
  }

  async leaseRevoke(id: string): Promise<{ header: ResponseHeader }> {
    const res = await this.#write("/v3/lease/revoke", { ID: id });
    return { header: decodeHeader(res.header) };
  }

  /** One keep-alive round trip. */
  async leaseKeepAlive(id: string): Promise<LeaseKeepAliveResponse> {
    const res = await this.#read("/v3/lease/keepalive", { ID: id }, true);
    const r = (res.result ?? {}) as Json;
    return { header: decodeHeader(r.header), id: str(r.ID), ttl: str(r.TTL) };
  }

  async leaseTimeToLive(
    id: string,
    opts: { keys?: boolean } = {},
  ): Promise<LeaseTimeToLiveResponse> {
    const res = await this.#read("/v3/lease/timetolive", { ID: id, keys: !!opts.keys });
    return {
      header: decodeHeader(res.header),
      id: str(res.ID),
      ttl: str(res.TTL),
      grantedTtl: str(res.grantedTTL),
      keys: ((res.keys ?? []) as string[]).map(unb64),
    };
  }

  async leases(): Promise<{ header: ResponseHeader; ids: string[] }> {
    const res = await this.#read("/v3/lease/leases", {});
    return {
      header: decodeHeader(res.header),
      ids: ((res.leases ?? []) as Json[]).map((l) => str(l.ID)),
    };
  }

  async status(): Promise<StatusResponse> {
    const res = await this.#read("/v3/maintenance/status", {});
    return {
      header: decodeHeader(res.header),
      version: String(res.version ?? ""),
      dbSize: str(res.dbSize),
      leader: str(res.leader),
      raftIndex: str(res.raftIndex),
      raftTerm: str(res.raftTerm),
      raftAppliedIndex: str(res.raftAppliedIndex),
    };
  }

  /**
   * Watches a key or range. Yields the "created" response first, then event batches (and
   * progress notifications). A compacted start revision yields one response with canceled and
   * compactRevision set, then ends. Aborting `signal` ends the iteration quietly; a broken
   * connection throws EtcdClientError (code 14): resume from the last revision seen + 1.
   */
  async *watch(key: Bytes, opts: WatchOptions = {}): AsyncGenerator<WatchResponse> {
    const create: Json = { key: b64(bytes(key)) };
    const end = opts.prefix ? prefixEnd(key) : opts.rangeEnd ? bytes(opts.rangeEnd) : undefined;
    if (end) create.range_end = b64(end);
    if (opts.startRevision !== undefined) create.start_revision = String(opts.startRevision);
    if (opts.prevKv) create.prev_kv = true;
    if (opts.progressNotify) create.progress_notify = true;
    const body = JSON.stringify({ create_request: create });
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort();
    opts.signal?.addEventListener("abort", onAbort);
    let stream: AsyncGenerator<Json> | undefined;
    try {
      if (opts.signal?.aborted) return;
      const opened = await this.#authed((auth) => this.#openWatch(body, ctrl.signal, auth));
      stream = opened.stream;
      for (
        let msg = opened.first;
        msg !== undefined;
        msg = (await stream.next()).value ?? undefined
      ) {
        if (msg.error) throw streamError(msg.error);
        const w = decodeWatch((msg.result ?? {}) as Json);
        yield w;
        if (w.canceled) return;
      }
      if (!opts.signal?.aborted) {
        throw new EtcdClientError(14, 503, "etcd client: the watch stream ended");
      }
    } catch (e) {
      if (opts.signal?.aborted) return;
      if (e instanceof EtcdClientError) throw e;
      throw new EtcdClientError(14, 503, `etcd client: watch stream broke: ${errText(e)}`);
    } finally {
      opts.signal?.removeEventListener("abort", onAbort);
      ctrl.abort();
      await stream?.return(undefined);
    }
  }

  /** Opens a watch stream and reads its first message. etcd reports a stale token on a watch
   *  by cancelling it at creation with the token error as the reason; that is thrown, so the
   *  caller authenticates again. */
  async #openWatch(
    body: string,
    signal: AbortSignal,
    auth: string | undefined,
  ): Promise<{ stream: AsyncGenerator<Json>; first: Json | undefined }> {
    const res = await this.#send("/v3/watch", body, { failover: true, signal }, auth);
    const stream = ndjson(res, signal);
    const first = (await stream.next()).value ?? undefined;
    if (first?.error) {
      await stream.return(undefined);
      throw streamError(first.error);
    }
    const r = (first?.result ?? {}) as Json;
    const reason = String(r.cancel_reason ?? "");
    if (auth !== undefined && r.canceled === true && TOKEN_REJECTED.test(reason)) {
      await stream.return(undefined);
      throw new EtcdClientError(16, 401, `etcd client: watch refused (${reason})`);
    }
    return { stream, first };
  }

  // ------------------------------------------------------------------------------ transport

  async #read(path: string, body: Json, stream = false): Promise<Json> {
    return await this.#authed(async (auth) => {
      const res = await this.#send(path, JSON.stringify(body), {
        failover: true,
        timeout: true,
      }, auth);
      if (!stream) return await jsonOf(res, path, false);
      for await (const msg of ndjson(res)) {
        if (msg.error) throw streamError(msg.error);
        return msg;
      }
      throw new EtcdClientError(14, 503, `etcd client: ${path} answered nothing`);
    });
  }

  async #write(path: string, body: Json): Promise<Json> {
    return await this.#authed(async (auth) => {
      const res = await this.#send(path, JSON.stringify(body), {
        failover: false,
        timeout: true,
      }, auth);
      return await jsonOf(res, path, true);
    });
  }

  /** Runs `call` with etcd's auth token (none without a user); when etcd rejects the token,
   *  authenticates again and runs it once more (see the file header for why that is safe). */
  async #authed<T>(call: (auth: string | undefined) => Promise<T>): Promise<T> {
    if (!this.#user) return await call(undefined);
    const token = this.#authToken ?? await this.#authenticate(undefined);
    try {
      return await call(token);
    } catch (e) {
      if (!(e instanceof EtcdClientError && TOKEN_REJECTED.test(e.message))) throw e;
      return await call(await this.#authenticate(token));
    }
  }

  /** A fresh token, unless another call already replaced `stale` meanwhile. */
  #authenticate(stale: string | undefined): Promise<string> {
    if (this.#authToken !== undefined && this.#authToken !== stale) {
      return Promise.resolve(this.#authToken);
    }
    this.#authenticating ??= this.#fetchToken().finally(() => {
      this.#authenticating = undefined;
    });
    return this.#authenticating;
  }

  async #fetchToken(): Promise<string> {
    const user = this.#user!;
    const path = "/v3/auth/authenticate";
    this.#authToken = undefined;
    let j: Json;
    try {
      const body = JSON.stringify({ name: user.name, password: user.password });
      const res = await this.#send(path, body, { failover: true, timeout: true }, undefined);
      j = await jsonOf(res, path, false);
    } catch (e) {
      if (!(e instanceof EtcdClientError)) throw e;
      throw new EtcdClientError(
        e.grpcCode,
        e.httpStatus,
        `etcd client: authenticating as etcd user "${user.name}" failed: ${e.message}`,
      );
    }
    if (typeof j.token !== "string" || j.token === "") {
      throw new EtcdClientError(2, 502, `etcd client: ${path} answered no token`);
    }
    this.#authToken = j.token;
    return j.token;
  }

  /** Sends to the preferred endpoint, moving on per the read/write rules in the file header.
   *  Returns an OK response; throws EtcdClientError otherwise. */
  async #send(
    path: string,
    body: string,
    o: { failover: boolean; timeout?: boolean; signal?: AbortSignal },
    auth?: string,
  ): Promise<Response> {
    let last: unknown;
    for (let n = 0; n < this.#endpoints.length; n++) {
      const i = (this.#preferred + n) % this.#endpoints.length;
      let res: Response;
      try {
        res = await this.#http.request(this.#endpoints[i], path, {
          // A streaming body for writes: Deno's fetch never re-sends those on its own.
          body: o.failover ? body : onceStream(te.encode(body)),
          timeoutMs: o.timeout ? this.#timeoutMs : 0,
          signal: o.signal,
          headers: auth === undefined ? undefined : { authorization: auth },
        });
      } catch (e) {
        last = e;
        if (o.signal?.aborted) throw e;
        const refused = /refused|os error 111|are blocked/i.test(errText(e));
        if (o.failover || refused) continue;
        throw new EtcdClientError(
          14,
          503,
          `etcd client: ${path} to ${this.#endpoints[i]} failed after sending (${
            errText(e)
          }); the write may or may not have been applied`,
        );
      }
      this.#onAuthenticated?.(res.status !== 401);
      if (res.ok) {
        this.#preferred = i;
        return res;
      }
      const err = await errorOf(res);
      if (o.failover && res.status === 503) {
        last = err;
        continue;
      }
      throw err;
    }
    if (last instanceof EtcdClientError) throw last;
    throw new EtcdClientError(
      14,
      503,
      `etcd client: no endpoint reachable for ${path} (${this.#endpoints.join(", ")}): ${
        errText(last)
      }`,
      { cause: last },
    );
  }
}

// ------------------------------------------------------------------------------ helpers

/** etcd's answers that refuse a call for its auth token (expired, forgotten on a restart, or
 *  issued before a change to the auth store), not for what the call asked. */
const TOKEN_REJECTED = /invalid auth token|revision of auth store is old/;

/** The JSON body of an OK response; a failure while reading it is "unavailable" (and, for a
 *  write, of unknown outcome). */
async function jsonOf(res: Response, path: string, write: boolean): Promise<Json> {
  try {
    return await res.json() as Json;
  } catch (e) {
    throw new EtcdClientError(
      14,
      503,
      `etcd client: reading the answer to ${path} failed (${errText(e)})${
        write ? "; the write may or may not have been applied" : ""
      }`,
    );
  }
}

function onceStream(data: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(data);
      c.close();
    },
  });
}

/** The message of an error and of its causes (Deno's fetch puts the OS error in `cause`). */
function errText(e: unknown): string {
  const parts: string[] = [];
  for (let x: unknown = e, n = 0; x !== undefined && n < 5; n++) {
    parts.push(x instanceof Error ? x.message : String(x));
    x = x instanceof Error ? x.cause : undefined;
  }
  return parts.join(": ");
}

async function errorOf(res: Response): Promise<EtcdClientError> {
  const raw = await res.text().catch(() => "");
  try {
    const j = JSON.parse(raw) as { message?: string; error?: string; code?: number };
    return new EtcdClientError(j.code ?? 2, res.status, j.message ?? j.error ?? raw);
  } catch {
    return new EtcdClientError(2, res.status, `HTTP ${res.status}: ${raw.trim()}`);
  }
}

function streamError(e: unknown): EtcdClientError {
  const o = (e ?? {}) as { grpc_code?: number; http_code?: number; message?: string };
  return new EtcdClientError(o.grpc_code ?? 2, o.http_code ?? 500, o.message ?? "stream error");
}

/** Newline-delimited (or simply concatenated) JSON objects of a streaming response. */
export async function* ndjson(res: Response, signal?: AbortSignal): AsyncGenerator<Json> {
  if (!res.body) return;
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort);
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield JSON.parse(line) as Json;
      }
    }
    if (buf.trim()) yield JSON.parse(buf) as Json;
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.cancel().catch(() => {});
  }
}

function str(v: unknown): string {
  return v === undefined || v === null ? "0" : String(v);
}

function decodeHeader(v: unknown): ResponseHeader {
  const h = (v ?? {}) as Json;
  return {
    clusterId: str(h.cluster_id),
    memberId: str(h.member_id),
    revision: str(h.revision),
    raftTerm: str(h.raft_term),
  };
}

function decodeKv(v: unknown): KeyValue {
  const kv = (v ?? {}) as Json;
  return {
    key: unb64(String(kv.key ?? "")),
    value: unb64(String(kv.value ?? "")),
    createRevision: str(kv.create_revision),
    modRevision: str(kv.mod_revision),
    version: str(kv.version),
    lease: str(kv.lease),
  };
}

function rangeEndOf(key: Bytes, o: { rangeEnd?: Bytes; prefix?: boolean }): string | undefined {
  if (o.prefix) return b64(prefixEnd(key));
  if (o.rangeEnd !== undefined) return b64(bytes(o.rangeEnd));
  return undefined;
}

function encodeRange(key: Bytes, o: RangeOptions): Json {
  const j: Json = { key: b64(bytes(key)) };
  const end = rangeEndOf(key, o);
  if (end) j.range_end = end;
  if (o.limit) j.limit = String(o.limit);
  if (o.revision !== undefined) j.revision = String(o.revision);
  if (o.serializable) j.serializable = true;
  if (o.keysOnly) j.keys_only = true;
  if (o.countOnly) j.count_only = true;
  return j;
}

function encodePut(key: Bytes, value: Bytes, o: PutOptions): Json {
  const j: Json = { key: b64(bytes(key)), value: b64(bytes(value)) };
  if (o.lease && o.lease !== "0") j.lease = o.lease;
  if (o.prevKv) j.prev_kv = true;
  if (o.ignoreValue) j.ignore_value = true;
  if (o.ignoreLease) j.ignore_lease = true;
  return j;
}

function encodeDelete(key: Bytes, o: DeleteOptions): Json {
  const j: Json = { key: b64(bytes(key)) };
  const end = rangeEndOf(key, o);
  if (end) j.range_end = end;
  if (o.prevKv) j.prev_kv = true;
  return j;
}

function encodeCompare(c: TxnCompare): Json {
  const j: Json = { key: b64(bytes(c.key)), target: c.target, result: c.result };
  if (c.rangeEnd !== undefined) j.range_end = b64(bytes(c.rangeEnd));
  if (c.target === "VALUE") j.value = b64(bytes(c.value ?? ""));
  if (c.target === "VERSION") j.version = c.version ?? "0";
  if (c.target === "CREATE") j.create_revision = c.createRevision ?? "0";
  if (c.target === "MOD") j.mod_revision = c.modRevision ?? "0";
  if (c.target === "LEASE") j.lease = c.lease ?? "0";
  return j;
}

function encodeOp(op: TxnOp): Json {
  if ("range" in op) return { request_range: encodeRange(op.range.key, op.range) };
  if ("put" in op) return { request_put: encodePut(op.put.key, op.put.value, op.put) };
  if ("deleteRange" in op) {
    return { request_delete_range: encodeDelete(op.deleteRange.key, op.deleteRange) };
  }
  return { request_txn: encodeTxn(op.txn) };
}

function encodeTxn(t: TxnRequest): Json {
  return {
    compare: (t.compare ?? []).map(encodeCompare),
    success: (t.success ?? []).map(encodeOp),
    failure: (t.failure ?? []).map(encodeOp),
  };
}

function txnWrites(t: TxnRequest): boolean {
  return [...(t.success ?? []), ...(t.failure ?? [])].some((op) =>
    "put" in op || "deleteRange" in op || ("txn" in op && txnWrites(op.txn))
  );
}

function decodeRange(j: Json): RangeResponse {
  return {
    header: decodeHeader(j.header),
    kvs: ((j.kvs ?? []) as unknown[]).map(decodeKv),
    more: j.more === true,
    count: str(j.count),
  };
}

function decodePut(j: Json): PutResponse {
  const r: PutResponse = { header: decodeHeader(j.header) };
  if (j.prev_kv) r.prevKv = decodeKv(j.prev_kv);
  return r;
}

function decodeDelete(j: Json): DeleteRangeResponse {
  return {
    header: decodeHeader(j.header),
    deleted: str(j.deleted),
    prevKvs: ((j.prev_kvs ?? []) as unknown[]).map(decodeKv),
  };
}

function decodeTxn(j: Json): TxnResponse {
  return {
    header: decodeHeader(j.header),
    succeeded: j.succeeded === true,
    responses: ((j.responses ?? []) as Json[]).map((r): TxnResponseOp => {
      if (r.response_range) return { range: decodeRange(r.response_range as Json) };
      if (r.response_put) return { put: decodePut(r.response_put as Json) };
      if (r.response_delete_range) {
        return { deleteRange: decodeDelete(r.response_delete_range as Json) };
      }
      return { txn: decodeTxn((r.response_txn ?? {}) as Json) };
    }),
  };
}

function decodeWatch(j: Json): WatchResponse {
  return {
    header: decodeHeader(j.header),
    watchId: str(j.watch_id),
    created: j.created === true,
    canceled: j.canceled === true,
    compactRevision: str(j.compact_revision),
    cancelReason: String(j.cancel_reason ?? ""),
    events: ((j.events ?? []) as Json[]).map((e) => {
      const ev: WatchEvent = { type: e.type === "DELETE" ? "DELETE" : "PUT", kv: decodeKv(e.kv) };
      if (e.prev_kv) ev.prevKv = decodeKv(e.prev_kv);
      return ev;
    }),
  };
}
