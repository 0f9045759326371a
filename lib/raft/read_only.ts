// ReadIndex bookkeeping on the leader: each request remembers the commit index at the time it
// arrived and collects heartbeat acknowledgements carrying its context until a quorum confirms
// the leader is still the leader.
import type { Message, NodeId } from "./types.ts";
import { ctxKey } from "./util.ts";

export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Map<NodeId, boolean>;
}

export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  /** Register a read request (m.entries[0].data is its context) at commit index `index`. */
  addRequest(index: number, m: Message): void {
    const key = ctxKey(m.entries[0].data);
    if (this.pending.has(key)) return;
    this.pending.set(key, { index, req: m, acks: new Map() });
    this.queue.push(key);
  }

  /** Record a heartbeat acknowledgement from `id` for context `ctx`; returns the acks so far. */
  recvAck(id: NodeId, ctx: Uint8Array): Map<NodeId, boolean> {
    const rs = this.pending.get(ctxKey(ctx));
    if (!rs) return new Map();
    rs.acks.set(id, true);
    return rs.acks;
  }

  /** Release the request with context `ctx` and every request queued before it. */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = ctxKey(ctx);
    const i = this.queue.indexOf(key);
    if (i < 0) return [];
    const released = this.queue.slice(0, i + 1);
    this.queue = this.queue.slice(i + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of released) {
      const rs = this.pending.get(k);
      if (!rs) throw new Error("raft invariant violated: read index queue out of sync");
      this.pending.delete(k);
      out.push(rs);
    }
    return out;
  }

  /** Context of the newest pending request, to piggyback on heartbeats. */
  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1])!.req.entries[0].data;
  }

  pendingCount(): number {
    return this.queue.length;
  }
}
