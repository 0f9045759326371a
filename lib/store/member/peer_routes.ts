// The member-to-member HTTP routes, mounted under /raft/ next to the client API on the same port:
//   GET  /raft/stream     a WebSocket of Raft message batches (peers; transport.ts)
//   POST /raft/msg        a batch of Raft messages            (peers)
//   POST /raft/snapshot   one MsgSnap, on its own request      (peers)
//   POST /raft/join       a new node asks to join              (joining agents; forwarded to the leader)
//   POST /raft/status     this member's own view                (ctl, tests)
//   POST /raft/members    the leader's view of every member     (ctl; forwarded to the leader)
//   POST /raft/lease/keepalive, /raft/lease/timetolive          (followers forwarding to the leader)
//   POST /raft/sign              a learner's certificate renewal (member credential)
//   POST /raft/admin-credential  a voter registers its admin credential's hash (member, voter)
//   POST /raft/remove-node       revoke a node and remove it (admin)
// Every request but /raft/join carries a credential (Bearer; 401 without a live one); the Raft
// message routes take only member credentials and only messages from that member (403
// otherwise). /raft/join is authenticated by the join secret in its body. Peer messages also
// carry the cluster id and are refused when it is not ours, so two clusters never mix.
import { Hono } from "hono";
import type { Context } from "hono";
import type { Message, NodeId } from "../../raft/types.ts";
import { decodeMessage, type WireMessage } from "./message_codec.ts";
import { CLUSTER_HEADER, FROM_HEADER, type StreamNotice } from "./transport.ts";
import { StoreError } from "../errors.ts";
import {
  authorize,
  type Decision,
  PERMISSION_DENIED,
  UNAUTHENTICATED,
} from "../../pki/authorize.ts";
import type { Caller } from "../trust.ts";
import { joinFieldsProblem, limitPeerBodies } from "./peer_limits.ts";

export interface JoinRequest {
  /** The address the new node serves the store API on (its --advertise). */
  address: string;
  name: string;
  /** True when the node must be a store member (--store-only); else it may become a client. */
  wantMember: boolean;
  /** Makes a retried join idempotent. */
  joinId: string;
  /** The join secret (the part of the join token after `::`). */
  secret: string;
  /** A PKCS#10 request for the serving certificate (lib/pki createCertificateRequest). */
  csrPem: string;
}

export interface JoinResponse {
  clusterId: string;
  /** 0 when the node is to be a plain client. */
  nodeId: NodeId;
  role: "learner" | "client";
  /** credentialHash: the sha256 of each member's credential, so a new member can accept its
   *  peers before their records reach it through the log. */
  members: { id: NodeId; address: string; name: string; credentialHash?: string }[];
  /** The node's new credential (kind "member" for a learner, "node" for a client). */
  credential: string;
  /** The cluster CA certificate, PEM. */
  caPem: string;
  /** The serving certificate chain signed from csrPem ("" for a client). */
  certPem: string;
}

export interface RemoveNodeResult {
  credentials: number;
  leases: number;
  /** The removed member's id, 0 when the node was not a member. */
  member: NodeId;
}

export interface SelfStatus {
  id: NodeId;
  name: string;
  address: string;
  clusterId: string;
  role: string;
  term: number;
  leader: NodeId;
  commit: number;
  applied: number;
  revision: number;
  voters: NodeId[];
  learners: NodeId[];
  /** twill's version on this member (lib/version.ts). */
  version: string;
}

export interface MemberView {
  id: NodeId;
  name: string;
  address: string;
  /** "voter" | "learner" */
  kind: string;
  isLeader: boolean;
  /** Leader's replication progress for this member. */
  match: number;
  /** Milliseconds since the leader last heard from it (0 for the leader itself). */
  lastContactMs: number | null;
}

export interface MembersResponse {
  clusterId: string;
  leader: NodeId;
  term: number;
  commit: number;
  members: MemberView[];
}

export interface PeerHandler {
  clusterId(): string;
  /** The caller of a peer request; a member may speak for a forwarded caller. Null: none. */
  authenticate(req: Request): Caller | null;
  /** Calls `fn` once when `who`'s credential is revoked; returns an unsubscribe. */
  onRevoked(who: Caller, fn: () => void): () => void;
  /** Steps a batch from member `from`, whose credential carried it; returns why it was
   *  refused (the rest of the batch is dropped), if it was. */
  receive(from: NodeId, msgs: Message[]): string | undefined;
  /** A peer opened a message stream (to close it when this member stops). */
  streamOpened?(socket: WebSocket): void;
  /** True when `from` was a member once and has been removed (ids are never reused). */
  isRemoved(from: NodeId): boolean;
  join(req: JoinRequest): Promise<JoinResponse>;
  status(): SelfStatus;
  members(): Promise<MembersResponse>;
  keepAlive(id: string): Promise<{ ttl: number }>;
  timeToLive(id: string): Promise<{ ttl: number; grantedTtl: number } | null>;
  /** Signs a renewal of `who`'s serving certificate. */
  sign(who: Caller, csrPem: string): Promise<{ certPem: string }>;
  /** Records the admin credential hash of voter `who`. */
  registerAdmin(who: Caller, hash: string): Promise<void>;
  removeNode(name: string, who: Caller): Promise<RemoveNodeResult>;
}

/** Bound on a peer request body we parse whole (a join: addresses, a secret, a CSR). */
const MAX_PEER_JSON = 64 * 1024;

function etcdError(message: string, code: number) {
  return { error: message, code, message };
}

function refuse(c: Context, d: Decision & { allow: false }) {
  return c.json(etcdError(d.message, d.grpcCode), d.status);
}

async function boundedJson(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (text.length > MAX_PEER_JSON) throw new Error("request too large");
  const v = JSON.parse(text);
  if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("not a JSON object");
  return v;
}

/** A refusal a handler throws: its HTTP status and one line (never a secret). */
export class PeerRefusal extends Error {
  constructor(readonly status: 401 | 403 | 404 | 409, message: string) {
    super(message);
    this.name = "PeerRefusal";
  }
}

function errorResponse(c: Context, e: unknown) {
  if (e instanceof PeerRefusal) {
    return c.json({ error: e.message, code: e.status === 403 ? 7 : e.status }, e.status);
  }
  if (e instanceof StoreError) {
    const status = e.code === "unavailable" ? 503 : e.code === "leaseNotFound" ? 404 : 400;
    return c.json({ error: e.message, code: e.code }, status);
  }
  return c.json({ error: (e as Error).message ?? String(e), code: "internal" }, 500);
}

/** Routes only one kind of credential (or an admin) may use. */
const NOT_FOR: Record<string, "member" | "admin"> = {
  "/msg": "member",
  "/snapshot": "member",
  "/stream": "member",
  "/lease/keepalive": "member",
  "/lease/timetolive": "member",
  "/sign": "member",
  "/admin-credential": "member",
  "/remove-node": "admin",
};

export function createPeerApp(h: PeerHandler): Hono {
  const app = new Hono();
  const callers = new WeakMap<Request, Caller>();
  const caller = (c: Context) => callers.get(c.req.raw)!;
  app.use("*", async (c, next) => {
    const path = c.req.path.replace(/^\/raft/, "");
    if (path === "/join") return await next(); // the join secret authenticates it
    const who = h.authenticate(c.req.raw);
    if (!who) return c.json(etcdError(UNAUTHENTICATED, 16), 401);
    const need = NOT_FOR[path];
    if (need && who.kind !== need && who.kind !== "admin") {
      return c.json(etcdError(PERMISSION_DENIED, 7), 403);
    }
    callers.set(c.req.raw, who);
    await next();
  });
  app.use("*", limitPeerBodies());
  addMessageRoutes(app, h, caller);
  addStreamRoute(app, h, caller);
  addTrustRoutes(app, h, caller);
  addInfoRoutes(app, h);
  return app;
}

function addMessageRoutes(app: Hono, h: PeerHandler, caller: (c: Context) => Caller): void {
  const receive = async (c: Context) => {
    const cluster = c.req.header(CLUSTER_HEADER);
    if (cluster !== h.clusterId()) {
      return c.json(
        { error: `message for cluster ${cluster}, this member is in ${h.clusterId()}` },
        409,
      );
    }
    let msgs: Message[];
    try {
      const body = await c.req.json() as { msgs: WireMessage[] };
      msgs = body.msgs.map(decodeMessage);
    } catch (e) {
      return c.json({ error: `bad Raft message batch: ${(e as Error).message}` }, 400);
    }
    const who = caller(c);
    const d = senderCheck(who, Number(c.req.header(FROM_HEADER) ?? 0), msgs);
    if (!d.allow) return refuse(c, d);
    const from = who.memberId ?? Number(c.req.header(FROM_HEADER) ?? msgs[0]?.from ?? 0);
    if (h.isRemoved(from)) {
      return c.json(
        { error: `member ${from} was removed from this cluster`, code: "removed" },
        410,
      );
    }
    const refused = h.receive(from, msgs);
    if (refused) return c.json({ error: `refused Raft message: ${refused}` }, 400);
    return c.body(null, 204);
  };
  app.post("/msg", receive);
  app.post("/snapshot", receive);
}

function addStreamRoute(app: Hono, h: PeerHandler, caller: (c: Context) => Caller): void {
  // A peer's long-lived message stream (see transport.ts): one JSON frame per batch, no answer
  // unless the stream must end (a StreamNotice, then close).
  app.get("/stream", (c) => {
    const cluster = c.req.header(CLUSTER_HEADER);
    if (cluster !== h.clusterId()) {
      return c.json(
        { error: `stream for cluster ${cluster}, this member is in ${h.clusterId()}` },
        409,
      );
    }
    const who = caller(c);
    const claimed = Number(c.req.header(FROM_HEADER) ?? 0);
    const d = senderCheck(who, claimed, []);
    if (!d.allow) return refuse(c, d);
    const from = who.memberId ?? claimed;
    if (h.isRemoved(from)) {
      return c.json(
        { error: `member ${from} was removed from this cluster`, code: "removed" },
        410,
      );
    }
    if ((c.req.header("upgrade") ?? "").toLowerCase() !== "websocket") {
      return c.json({ error: "/raft/stream expects a WebSocket upgrade" }, 400);
    }
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    const end = (notice: StreamNotice) => {
      try {
        socket.send(JSON.stringify(notice));
        socket.close();
      } catch { /* already closed */ }
    };
    socket.onmessage = (ev) => {
      let msgs: Message[];
      try {
        const body = JSON.parse(String(ev.data)) as { msgs: WireMessage[] };
        msgs = body.msgs.map(decodeMessage);
      } catch (e) {
        end({ error: `bad Raft message batch: ${(e as Error).message}` });
        return;
      }
      if (!senderCheck(who, from, msgs).allow) {
        end({ error: PERMISSION_DENIED });
        return;
      }
      if (h.isRemoved(from)) {
        end({ removed: true, error: `member ${from} was removed from this cluster` });
        return;
      }
      const refused = h.receive(from, msgs);
      if (refused) end({ error: `refused Raft message: ${refused}` });
    };
    const off = h.onRevoked(who, () => end({ error: "credential revoked" }));
    socket.addEventListener("close", off);
    h.streamOpened?.(socket);
    return response;
  });
}

function addTrustRoutes(app: Hono, h: PeerHandler, caller: (c: Context) => Caller): void {
  app.post("/join", async (c) => {
    let req: JoinRequest;
    try {
      req = parseJoinRequest(await boundedJson(c));
    } catch (e) {
      return c.json({ error: `bad join request: ${(e as Error).message}` }, 400);
    }
    try {
      return c.json(await h.join(req));
    } catch (e) {
      return errorResponse(c, e);
    }
  });

  app.post("/sign", async (c) => {
    try {
      const { csrPem } = await boundedJson(c);
      if (typeof csrPem !== "string") throw new StoreError("invalidArgument", "csrPem is required");
      return c.json(await h.sign(caller(c), csrPem));
    } catch (e) {
      return errorResponse(c, e);
    }
  });

  app.post("/admin-credential", async (c) => {
    try {
      const { hash } = await boundedJson(c);
      if (typeof hash !== "string" || !/^[0-9a-f]{64}$/.test(hash)) {
        throw new StoreError("invalidArgument", "hash must be 64 lower-case hex digits");
      }
      await h.registerAdmin(caller(c), hash);
      return c.json({});
    } catch (e) {
      return errorResponse(c, e);
    }
  });

  app.post("/remove-node", async (c) => {
    try {
      const { name } = await boundedJson(c);
      if (typeof name !== "string" || name === "") {
        throw new StoreError("invalidArgument", "name is required");
      }
      return c.json({ removed: await h.removeNode(name, caller(c)) });
    } catch (e) {
      return errorResponse(c, e);
    }
  });
}

function addInfoRoutes(app: Hono, h: PeerHandler): void {
  app.post("/status", (c) => c.json(h.status()));

  app.post("/members", async (c) => {
    try {
      return c.json(await h.members());
    } catch (e) {
      return errorResponse(c, e);
    }
  });

  app.post("/lease/keepalive", async (c) => {
    try {
      const { id } = await c.req.json();
      return c.json(await h.keepAlive(String(id)));
    } catch (e) {
      return errorResponse(c, e);
    }
  });

  app.post("/lease/timetolive", async (c) => {
    try {
      const { id } = await c.req.json();
      return c.json({ lease: await h.timeToLive(String(id)) });
    } catch (e) {
      return errorResponse(c, e);
    }
  });
}

/** A join request as it arrives, checked field by field. */
function parseJoinRequest(b: Record<string, unknown>): JoinRequest {
  const str = (k: string, max: number) => {
    const v = b[k];
    if (typeof v !== "string" || v.length > max) throw new Error(`${k} must be a string`);
    return v;
  };
  const req: JoinRequest = {
    address: str("address", 300),
    name: str("name", 253),
    wantMember: b.wantMember !== false,
    joinId: str("joinId", 100),
    secret: str("secret", 1024),
    csrPem: typeof b.csrPem === "string" ? str("csrPem", 8192) : "",
  };
  if (!req.address || !req.joinId) throw new Error("address and joinId are required");
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/.test(req.name)) {
    throw new Error("name must be a node name (letters, digits, '.', '_', '-')");
  }
  const problem = joinFieldsProblem(req.address, req.name);
  if (problem) throw new Error(problem);
  return req;
}

/** Whether every sender a peer request names (header and messages) is the carrying member. */
function senderCheck(who: Caller, header: number, msgs: Message[]): Decision {
  const senders = [header, ...msgs.map((m) => m.from)];
  return authorize(who, { route: "/raft/msg", senders }, NO_OWNERSHIP, { prefix: "/" });
}

/** The Raft message routes never consult ownership. */
const NO_OWNERSHIP = { leaseOwner: () => undefined, keyLease: () => undefined };
