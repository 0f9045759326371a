// The etcd v3 JSON client API (the grpc-gateway subset Flannel and twill use) over a
// Kv, as a Hono app. The caller serves it (lib/http/serve.ts) and may add routes under /raft/
// (the peer routes, which authenticate on their own); every other route authenticates the
// caller's `Authorization: Bearer <credential>` (401 otherwise) and asks lib/pki/authorize.ts
// before each operation (403, etcd's `permission denied`, nothing changed).

import { type Context, Hono } from "hono";
import type {
  Command,
  CompactResult,
  DeleteRangeResult,
  Kv,
  LeaseGrantResult,
  LeaseRevokeResult,
  PutResult,
  RequestOp,
  TxnResult,
} from "../kv.ts";
import { ETCD_MESSAGES, StoreError } from "../errors.ts";
import { checkKey, checkPut, checkTxn, isReadOnlyTxn } from "../mvcc_validate.ts";
import { MAX_LEASE_TTL } from "../state_machine.ts";
import {
  ApiError,
  errorBody,
  GrpcCode,
  httpStatusOf,
  invalidArgument,
  streamErrorBody,
  toApiError,
} from "./errors.ts";
import {
  boolField,
  bytesField,
  decodeDeleteRange,
  decodePut,
  decodeRange,
  decodeTxn,
  encodeBase64,
  encodeDeleteRange,
  encodeHeader,
  encodePut,
  encodeRange,
  encodeTxn,
  int64Field,
  type JsonObject,
  parseRequestObject,
} from "./json_codec.ts";
import { jsonTexts, SlowConsumerGuard } from "./json_stream.ts";
import { WatchSession } from "./watch_session.ts";
import type { AuthRequest } from "../../pki/authorize.ts";
import type { Caller } from "../trust.ts";
import { type ApiAuth, permissionDenied, tokenAuth, unauthenticated } from "./auth.ts";

/** etcd's default --max-request-bytes: the size of a decoded write (keys, values...). */
export const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** JSON carries bytes as base64 (4/3 larger) plus field names: the body may be this much
 *  larger than the request it encodes before we refuse to read further. */
const BODY_ALLOWANCE = 4 / 3;
const BODY_SLACK = 64 * 1024;

export interface ApiOptions {
  /** Who may do what (a member: credentials from the replicated trust data). */
  auth?: ApiAuth;
  /** Without `auth`: one credential that may do everything (tests, bare APIs). */
  token?: string;
  /** Version reported by /v3/maintenance/status (etcd's API level we speak). */
  version?: string;
  /** How often watchers with progress_notify get a progress response (etcd: 10 minutes). */
  progressNotifyMs?: number;
  /** Largest decoded write accepted (default etcd's 1.5 MiB); larger: "request is too large". */
  maxRequestBytes?: number;
}

const encoder = new TextEncoder();

/** What every route handler shares: the store, its limits and the unary request wrapper. */
interface Routes {
  app: Hono;
  kv: Kv;
  sm: Kv["sm"];
  opts: ApiOptions;
  maxRequest: number;
  maxBytes: number;
  head: (revision: string | number) => JsonObject;
  current: () => JsonObject;
  unary: (
    fn: (body: JsonObject, who: Caller) => Promise<JsonObject>,
  ) => (c: Context) => Promise<Response>;
  auth: ApiAuth;
  /** The request's authenticated caller (set by the app's first middleware). */
  caller: (c: Context) => Caller;
  /** Throws 403 (or 401) unless `who` may make `request`; `write`: decide on a fresh view. */
  allow: (who: Caller, request: AuthRequest, write?: boolean) => Promise<void>;
  write: <T>(cmd: Command) => Promise<T>;
  rid: () => string;
}

export function createApiApp(kv: Kv, opts: ApiOptions): Hono {
  const app = new Hono();
  const maxRequest = opts.maxRequestBytes ?? MAX_REQUEST_BYTES;
  const maxBytes = Math.ceil(maxRequest * BODY_ALLOWANCE) + BODY_SLACK;
  const sm = kv.sm;
  const head = (revision: string | number) => encodeHeader(kv.header(), revision);
  const current = () => head(sm.revision);

  const auth = opts.auth ?? tokenAuth(opts.token ?? "");
  const callers = new WeakMap<Request, Caller>();
  const caller = (c: Context) => callers.get(c.req.raw)!;
  const allow = async (who: Caller, request: AuthRequest, write = false) => {
    if (write && auth.needsFreshView(who)) await kv.readBarrier();
    const d = auth.decide(who, request);
    if (d.allow) return;
    auth.refused?.(who, "path" in request ? request.path : request.route, d.reason);
    throw d.status === 401 ? unauthenticated() : permissionDenied();
  };
  app.use("*", async (c, next) => {
    if (c.req.path.startsWith("/raft/")) return await next(); // the peer routes' own checks
    const who = auth.authenticate(c.req.raw);
    if (!who) {
      auth.refused?.(null, c.req.path, "no valid credential");
      return c.json(errorBody(unauthenticated()), 401);
    }
    if (!c.req.path.startsWith("/v3/")) {
      const d = auth.decide(who, { route: "other", path: c.req.path });
      if (!d.allow) return c.json(errorBody(permissionDenied()), 403);
    }
    callers.set(c.req.raw, who);
    await next();
  });

  const unary =
    (fn: (body: JsonObject, who: Caller) => Promise<JsonObject>) => async (c: Context) => {
      try {
        const body = parseRequestObject(await readBody(c.req.raw, maxBytes));
        return c.json(await fn(body, caller(c)));
      } catch (e) {
        const err = toApiError(e);
        if (err.grpcCode === GrpcCode.Internal) console.error(`store api: ${c.req.path}:`, e);
        return c.json(errorBody(err), httpStatusOf(err.grpcCode) as 400);
      }
    };

  const write = async <T>(cmd: Command): Promise<T> => {
    if (requestSize(cmd) > maxRequest) throw invalidArgument(ETCD_MESSAGES.requestTooLarge);
    return (await kv.write(cmd)) as T;
  };
  const rid = () => crypto.randomUUID();

  const r: Routes = {
    app,
    kv,
    sm,
    opts,
    maxRequest,
    maxBytes,
    head,
    current,
    unary,
    write,
    rid,
    auth,
    caller,
    allow,
  };
  addKvRoutes(r);
  addLeaseRoutes(r);
  addMaintenanceRoutes(r);
  addLeaseKeepAliveRoute(r);
  addWatchRoute(r);
  return app;
}

function addKvRoutes({ app, kv, sm, head, unary, write, rid, allow }: Routes): void {
  app.post(
    "/v3/kv/range",
    unary(async (o, who) => {
      const req = decodeRange(o);
      checkKey(req.key);
      await allow(who, { route: "/v3/kv/range", range: req });
      if (!req.serializable) await kv.readBarrier();
      return encodeRange(kv.header(), sm.range(req));
    }),
  );

  app.post(
    "/v3/kv/put",
    unary(async (o, who) => {
      const req = decodePut(o);
      checkPut(req);
      await allow(who, { route: "/v3/kv/put", put: req }, true);
      const r = await write<PutResult>({ op: "put", requestId: rid(), ...req });
      return encodePut(kv.header(), r);
    }),
  );

  app.post(
    "/v3/kv/deleterange",
    unary(async (o, who) => {
      const req = decodeDeleteRange(o);
      checkKey(req.key);
      await allow(who, { route: "/v3/kv/deleterange", range: req }, true);
      const r = await write<DeleteRangeResult>({ op: "deleteRange", requestId: rid(), ...req });
      return encodeDeleteRange(kv.header(), r);
    }),
  );

  app.post(
    "/v3/kv/txn",
    unary(async (o, who) => {
      const req = decodeTxn(o);
      checkTxn(req);
      await allow(who, { route: "/v3/kv/txn", txn: req }, !isReadOnlyTxn(req));
      if (isReadOnlyTxn(req)) {
        const serializable = allRangesSerializable(req.success) &&
          allRangesSerializable(req.failure);
        if (!serializable) await kv.readBarrier();
        return encodeTxn(kv.header(), sm.readTxn(req));
      }
      const r = await write<TxnResult>({ op: "txn", requestId: rid(), ...req });
      return encodeTxn(kv.header(), r);
    }),
  );

  app.post(
    "/v3/kv/compaction",
    unary(async (o, who) => {
      await allow(who, { route: "/v3/kv/compaction" });
      const revision = int64Field(o, "revision");
      const r = await write<CompactResult>({ op: "compact", requestId: rid(), revision });
      return { header: head(r.revision) };
    }),
  );
}

function addLeaseRoutes(r: Routes): void {
  const { app, kv, sm, head, current, unary, write, rid, allow } = r;
  app.post(
    "/v3/lease/grant",
    unary(async (o, who) => {
      await allow(who, { route: "/v3/lease/grant" });
      const ttl = Number(int64Field(o, "TTL"));
      let id = int64Field(o, "ID");
      if (ttl > MAX_LEASE_TTL) {
        throw new StoreError("leaseTtlTooLarge", ETCD_MESSAGES.leaseTtlTooLarge);
      }
      if (id === "0") id = randomLeaseId();
      // The owner is the authenticated caller, never something the request says.
      const g = await write<LeaseGrantResult>({
        op: "leaseGrant",
        requestId: rid(),
        id,
        ttl,
        owner: who.nodeName,
      });
      return { header: head(g.revision), ID: g.id, TTL: String(g.ttl) };
    }),
  );

  const revoke = unary(async (o, who) => {
    const id = int64Field(o, "ID");
    await allow(who, { route: "/v3/lease/revoke", leaseId: id });
    const rv = await write<LeaseRevokeResult>({ op: "leaseRevoke", requestId: rid(), id });
    return { header: head(rv.revision) };
  });
  app.post("/v3/lease/revoke", revoke);
  app.post("/v3/kv/lease/revoke", revoke);

  const timeToLive = unary(async (o, who) => {
    const id = int64Field(o, "ID");
    await allow(who, { route: "/v3/lease/timetolive", leaseId: id });
    const withKeys = boolField(o, "keys");
    await kv.readBarrier();
    const t = await kv.leaseTimeToLive(id);
    if (!t) return { header: current(), ID: id, TTL: "-1" };
    const out: JsonObject = { header: current(), ID: id, TTL: String(t.ttl) };
    if (t.grantedTtl) out.grantedTTL = String(t.grantedTtl);
    const keys = withKeys ? sm.lease(id)?.keys ?? [] : [];
    if (keys.length) out.keys = keys.map(encodeBase64);
    return out;
  });
  app.post("/v3/lease/timetolive", timeToLive);
  app.post("/v3/kv/lease/timetolive", timeToLive);

  const leases = unary(async (_o, who) => {
    await allow(who, { route: "/v3/lease/leases" });
    await kv.readBarrier();
    const list = sm.leases().map((l) => ({ ID: l.id }));
    return list.length ? { header: current(), leases: list } : { header: current() };
  });
  app.post("/v3/lease/leases", leases);
  app.post("/v3/kv/lease/leases", leases);
}

function addMaintenanceRoutes({ app, kv, sm, opts, current, unary }: Routes): void {
  app.post(
    "/v3/maintenance/status",
    unary(() => {
      const h = kv.header();
      const raft = kv.raftStatus();
      const size = String(sm.sizeEstimate());
      const applied = String(sm.appliedIndex);
      return Promise.resolve({
        header: current(),
        version: opts.version ?? "3.4.0",
        dbSize: size,
        leader: raft.leader,
        raftIndex: raft.commitIndex,
        raftTerm: h.raftTerm,
        raftAppliedIndex: applied,
        dbSizeInUse: size,
      });
    }),
  );
}

function addLeaseKeepAliveRoute({ app, kv, maxBytes, current, caller, allow, auth }: Routes): void {
  app.post("/v3/lease/keepalive", async (c) => {
    const who = caller(c);
    const texts = jsonTexts(c.req.raw.body, maxBytes);
    let first: IteratorResult<string>;
    try {
      first = await texts.next();
    } catch (e) {
      return streamOpenError(c, e);
    }
    try {
      // A refused first request is refused as a whole (403), before the stream starts.
      if (!first.done) {
        const id = int64Field(parseRequestObject(first.value), "ID");
        await allow(who, { route: "/v3/lease/keepalive", leaseId: id });
      }
    } catch (e) {
      return refusedStream(c, e);
    }
    let off = () => {};
    return streamResponse(async (send, flow) => {
      off = auth.onRevoked(who, flow.end);
      const one = async (text: string) => {
        const id = int64Field(parseRequestObject(text), "ID");
        await allow(who, { route: "/v3/lease/keepalive", leaseId: id });
        try {
          const { ttl } = await kv.leaseKeepAlive(id);
          send({ result: { header: current(), ID: id, TTL: String(ttl) } });
        } catch (e) {
          if (!(e instanceof StoreError) || e.code !== "leaseNotFound") throw e;
          send({ result: { header: current(), ID: id } });
        }
      };
      if (!first.done) await one(first.value);
      for await (const text of texts) await one(text);
      return true;
    }, () => off());
  });
}

function addWatchRoute({ app, kv, sm, opts, maxBytes, caller, allow, auth }: Routes): void {
  app.post("/v3/watch", async (c) => {
    const who = caller(c);
    const handle = async (req: JsonObject, run = true) => {
      const create = req.create_request ?? req.createRequest;
      if (create && typeof create === "object") {
        const o = create as JsonObject;
        const range = { key: bytesField(o, "key"), rangeEnd: bytesField(o, "range_end") };
        await allow(who, { route: "/v3/watch", range });
      }
      if (run) session?.handle(req);
    };
    let off = () => {};
    const texts = jsonTexts(c.req.raw.body, maxBytes);
    let first: IteratorResult<string>;
    try {
      first = await texts.next();
    } catch (e) {
      return streamOpenError(c, e);
    }
    try {
      if (!first.done) await handle(parseRequestObject(first.value), false);
    } catch (e) {
      return refusedStream(c, e);
    }
    let session: WatchSession | undefined;
    let timer: ReturnType<typeof setInterval> | undefined;
    return streamResponse(
      async (send, flow) => {
        session = new WatchSession(
          sm,
          () => kv.header(),
          (result) => send(result instanceof Uint8Array ? result : { result }),
          flow.canSend,
        );
        flow.onDrain(() => session?.resume());
        off = auth.onRevoked(who, flow.end);
        timer = setInterval(() => session?.tick(), opts.progressNotifyMs ?? 600_000);
        if (!first.done) await handle(parseRequestObject(first.value));
        for await (const text of texts) await handle(parseRequestObject(text));
        return false; // the client closed its side; watches stay open until it goes away
      },
      () => {
        off();
        session?.close();
        if (timer !== undefined) clearInterval(timer);
      },
    );
  });
}

/** A stream whose first request is refused: 401/403 with etcd's body; anything else as a
 *  first message that does not parse. */
function refusedStream(c: Context, e: unknown): Response {
  const err = toApiError(e);
  if (err.grpcCode === GrpcCode.PermissionDenied || err.grpcCode === GrpcCode.Unauthenticated) {
    return c.json(errorBody(err), httpStatusOf(err.grpcCode) as 403);
  }
  return streamOpenError(c, e);
}

/** etcd answers a stream whose first message does not parse with 500 and gRPC code 2. */
function streamOpenError(c: Context, e: unknown): Response {
  const err = toApiError(e);
  const unknown = new ApiError(GrpcCode.Unknown, err.message);
  return c.json(errorBody(unknown), 500);
}

/** How much a streaming response may hold unread before watchers stop being fed live events
 *  (they catch up from history once the client has read; see WatchSession). */
const STREAM_HIGH_WATER_BYTES = 1024 * 1024;

/** Flow control of a streaming response. */
interface StreamFlow {
  /** False while the client has more than STREAM_HIGH_WATER_BYTES unread. */
  canSend(): boolean;
  /** Called whenever the client has read and there is room again. */
  onDrain(fn: () => void): void;
  /** Ends the response now (the caller's credential was revoked). */
  end(): void;
}

/**
 * A newline-delimited JSON streaming response. `run` sends messages (objects, or lines already
 * encoded as bytes); when it resolves true the
 * response ends, false keeps it open until the client goes away; when it throws, an in-stream
 * error is sent and the response ends. `cleanup` runs exactly once at the end, including when
 * the client goes away (Deno.serve cancels the body stream).
 */
function streamResponse(
  run: (send: (msg: unknown) => void, flow: StreamFlow) => Promise<boolean>,
  cleanup: () => void = () => {},
): Response {
  let closed = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let drained: () => void = () => {};
  let guard: SlowConsumerGuard | undefined;
  const finish = () => {
    if (closed) return;
    closed = true;
    guard?.stop();
    cleanup();
    try {
      controller.close();
    } catch { /* already closed or cancelled */ }
  };
  const send = (msg: unknown) => {
    if (closed) return;
    // A Uint8Array is a line already encoded (possibly shared with other streams: queued by
    // reference, never modified).
    controller.enqueue(
      msg instanceof Uint8Array ? msg : encoder.encode(JSON.stringify(msg) + "\n"),
    );
    guard?.sent();
  };
  const flow: StreamFlow = {
    canSend: () => !closed && (controller.desiredSize ?? 0) > 0,
    onDrain: (fn) => drained = fn,
    end: () => finish(),
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        guard = new SlowConsumerGuard(c, STREAM_HIGH_WATER_BYTES, (why) => {
          c.error(new Error(why)); // drops what is queued; the connection ends
          finish();
        });
        run(send, flow).then(
          (end) => end && finish(),
          (e) => {
            if (!closed) send(streamErrorBody(toApiError(e)));
            finish();
          },
        );
      },
      pull() {
        guard?.drained();
        if (!closed) drained();
      },
      cancel() {
        finish();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: STREAM_HIGH_WATER_BYTES }),
  );
  return new Response(stream, { headers: { "content-type": "application/json" } });
}

async function readBody(req: Request, maxBytes: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw invalidArgument(ETCD_MESSAGES.requestTooLarge);
  if (!req.body) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw invalidArgument(ETCD_MESSAGES.requestTooLarge);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const ch of chunks) {
    all.set(ch, at);
    at += ch.length;
  }
  return new TextDecoder().decode(all);
}

/** Roughly the protobuf size of a request: its byte strings plus a little per field. */
function requestSize(v: unknown): number {
  if (v instanceof Uint8Array) return v.length + 4;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + requestSize(x), 0);
  if (v && typeof v === "object") {
    return Object.values(v).reduce((n: number, x) => n + requestSize(x), 0);
  }
  return typeof v === "string" ? v.length + 2 : 2;
}

function allRangesSerializable(ops: RequestOp[]): boolean {
  return ops.every((op) =>
    "range" in op
      ? op.range.serializable
      : "txn" in op
      ? allRangesSerializable(op.txn.success) && allRangesSerializable(op.txn.failure)
      : true
  );
}

/** A random positive int63 lease id (chosen before proposing, so every member agrees). */
function randomLeaseId(): string {
  const b = new BigUint64Array(1);
  crypto.getRandomValues(b);
  const id = b[0] & 0x7fffffffffffffffn;
  return String(id === 0n ? 1n : id);
}
