// The member-to-member HTTP routes, mounted under /raft/ next to the client API on the same port:
//   GET  /raft/stream     a WebSocket of Raft message batches (peers; transport.ts)
//   POST /raft/msg        a batch of Raft messages            (peers)
//   POST /raft/snapshot   one MsgSnap, on its own request      (peers)
//   POST /raft/join       a new node asks to join              (joining agents; forwarded to the leader)
//   POST /raft/status     this member's own view                (ctl, tests)
//   POST /raft/members    the leader's view of every member     (ctl; forwarded to the leader)
//   POST /raft/lease/keepalive, /raft/lease/timetolive          (followers forwarding to the leader)
// Every request carries the cluster token (Bearer); peer messages also carry the cluster id and
// are refused when it is not ours, so two clusters never mix.
import { Hono } from "hono";
import type { Context } from "hono";
import type { Message, NodeId } from "../../raft/types.ts";
import { decodeMessage, type WireMessage } from "./message_codec.ts";
import { CLUSTER_HEADER, FROM_HEADER, type StreamNotice } from "./transport.ts";
import { StoreError } from "../errors.ts";
import { bearerMatches } from "../../http/bearer.ts";

export interface JoinRequest {
  /** The address the new node serves the store API on (its --advertise). */
  address: string;
  name: string;
  /** True when the node must be a store member (--store-only); else it may become a client. */
  wantMember: boolean;
  /** Makes a retried join idempotent. */
  joinId: string;
}

export interface JoinResponse {
  clusterId: string;
  /** 0 when the node is to be a plain client. */
  nodeId: NodeId;
  role: "learner" | "client";
  members: { id: NodeId; address: string; name: string }[];
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
  token(): string;
  receive(from: NodeId, msgs: Message[]): void;
  /** A peer opened a message stream (to close it when this member stops). */
  streamOpened?(socket: WebSocket): void;
  /** True when `from` was a member once and has been removed (ids are never reused). */
  isRemoved(from: NodeId): boolean;
  join(req: JoinRequest): Promise<JoinResponse>;
  status(): SelfStatus;
  members(): Promise<MembersResponse>;
  keepAlive(id: string): Promise<{ ttl: number }>;
  timeToLive(id: string): Promise<{ ttl: number; grantedTtl: number } | null>;
}

function errorResponse(c: Context, e: unknown) {
  if (e instanceof StoreError) {
    const status = e.code === "unavailable" ? 503 : e.code === "leaseNotFound" ? 404 : 400;
    return c.json({ error: e.message, code: e.code }, status);
  }
  return c.json({ error: (e as Error).message ?? String(e), code: "internal" }, 500);
}

export function createPeerApp(h: PeerHandler): Hono {
  const app = new Hono();
  app.use("*", async (c, next) => {
    if (!bearerMatches(c.req.header("authorization"), h.token())) {
      return c.json(
        { error: "missing or wrong cluster token (Authorization: Bearer <token>)" },
        401,
      );
    }
    await next();
  });

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
    const from = Number(c.req.header(FROM_HEADER) ?? msgs[0]?.from ?? 0);
    if (h.isRemoved(from)) {
      return c.json(
        { error: `member ${from} was removed from this cluster`, code: "removed" },
        410,
      );
    }
    h.receive(from, msgs);
    return c.body(null, 204);
  };
  app.post("/msg", receive);
  app.post("/snapshot", receive);

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
    const from = Number(c.req.header(FROM_HEADER) ?? 0);
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
      if (h.isRemoved(from)) {
        end({ removed: true, error: `member ${from} was removed from this cluster` });
        return;
      }
      h.receive(from, msgs);
    };
    h.streamOpened?.(socket);
    return response;
  });

  app.post("/join", async (c) => {
    let req: JoinRequest;
    try {
      const b = await c.req.json();
      if (typeof b?.address !== "string" || typeof b?.joinId !== "string") {
        throw new Error("address and joinId are required");
      }
      req = {
        address: b.address,
        name: String(b.name ?? ""),
        wantMember: b.wantMember !== false,
        joinId: b.joinId,
      };
    } catch (e) {
      return c.json({ error: `bad join request: ${(e as Error).message}` }, 400);
    }
    try {
      return c.json(await h.join(req));
    } catch (e) {
      return errorResponse(c, e);
    }
  });

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
  return app;
}
