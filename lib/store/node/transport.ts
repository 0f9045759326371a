// Peer transport: sends Raft messages to other members over HTTP on the same port as the client
// API, under /raft/. One queue per peer, drained in batches by one request at a time (so messages
// to a peer stay in order); snapshots travel on their own request so a large transfer never
// delays heartbeats. Failures are reported to Raft (unreachable / snapshot failure) and the
// messages dropped: Raft retransmits what matters.
import type { Message, NodeId } from "../../raft/types.ts";
import { encodeMessage, messageSize } from "./message_codec.ts";
import type { EventLogger } from "./log.ts";
import { silentLogger } from "./log.ts";

/** Headers every peer request carries besides the Bearer token. */
export const CLUSTER_HEADER = "x-twill-cluster";
export const FROM_HEADER = "x-twill-from";

export interface PeerSink {
  /** Sends messages; never throws, never blocks. */
  send(msgs: Message[]): void;
}

export interface HttpTransportOptions {
  selfId: NodeId;
  clusterId: string;
  token: string;
  onUnreachable(id: NodeId): void;
  onSnapshotStatus(id: NodeId, ok: boolean): void;
  /** A peer answered that this member was removed from the cluster. */
  onRemoved?(by: NodeId): void;
  logger?: EventLogger;
  /** Per batch request timeout (ms). */
  requestTimeoutMs?: number;
  snapshotTimeoutMs?: number;
  maxBatchBytes?: number;
  maxQueue?: number;
}

interface PeerQueue {
  address: string;
  queue: Message[];
  busy: boolean;
  failing: boolean;
}

export class HttpTransport implements PeerSink {
  private readonly peers = new Map<NodeId, PeerQueue>();
  private readonly log: EventLogger;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(private readonly opts: HttpTransportOptions) {
    this.log = opts.logger ?? silentLogger;
  }

  setPeer(id: NodeId, address: string): void {
    if (id === this.opts.selfId) return;
    const p = this.peers.get(id);
    if (p) p.address = address;
    else this.peers.set(id, { address, queue: [], busy: false, failing: false });
  }

  removePeer(id: NodeId): void {
    this.peers.delete(id);
  }

  peerAddress(id: NodeId): string | undefined {
    return this.peers.get(id)?.address;
  }

  send(msgs: Message[]): void {
    if (this.closed) return;
    for (const m of msgs) {
      const p = this.peers.get(m.to);
      if (!p) {
        // Unknown address (not yet learned from the log): Raft will retry.
        this.opts.onUnreachable(m.to);
        continue;
      }
      if (m.type === "MsgSnap") {
        this.sendSnapshot(m, p);
        continue;
      }
      if (p.queue.length >= (this.opts.maxQueue ?? 4096)) {
        this.opts.onUnreachable(m.to);
        continue;
      }
      p.queue.push(m);
    }
    for (const [id, p] of this.peers) {
      if (p.queue.length > 0 && !p.busy) this.drain(id, p);
    }
  }

  close(): void {
    this.closed = true;
    this.abort.abort();
  }

  private headers(): Record<string, string> {
    return {
      "content-type": "application/json",
      authorization: `Bearer ${this.opts.token}`,
      [CLUSTER_HEADER]: this.opts.clusterId,
      [FROM_HEADER]: String(this.opts.selfId),
    };
  }

  private async post(
    address: string,
    path: string,
    body: string,
    timeoutMs: number,
    to: NodeId,
  ) {
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(timeoutMs)]);
    const res = await fetch(`http://${address}${path}`, {
      method: "POST",
      headers: this.headers(),
      body,
      signal,
    });
    const text = await res.text();
    if (res.status === 410) this.opts.onRemoved?.(to);
    if (!res.ok) {
      throw new Error(`${path} answered ${res.status}: ${text.slice(0, 200)}`);
    }
  }

  private async drain(id: NodeId, p: PeerQueue): Promise<void> {
    p.busy = true;
    try {
      while (!this.closed && p.queue.length > 0 && this.peers.get(id) === p) {
        const max = this.opts.maxBatchBytes ?? 1 << 20;
        let n = 0;
        let bytes = 0;
        while (n < p.queue.length && (n === 0 || bytes + messageSize(p.queue[n]) <= max)) {
          bytes += messageSize(p.queue[n]);
          n++;
        }
        const batch = p.queue.splice(0, n);
        const body = JSON.stringify({ msgs: batch.map(encodeMessage) });
        try {
          await this.post(p.address, "/raft/msg", body, this.opts.requestTimeoutMs ?? 1000, id);
          if (p.failing) {
            p.failing = false;
            this.log("info", "peer_reachable", { peer: id, address: p.address });
          }
        } catch (e) {
          if (this.closed) return;
          if (!p.failing) {
            p.failing = true;
            this.log("warn", "peer_unreachable", { peer: id, address: p.address, error: e });
          }
          this.opts.onUnreachable(id);
          // Drop what queued up while the peer was not answering except the newest few: Raft
          // resends; old heartbeats are worthless.
          if (p.queue.length > 64) p.queue.splice(0, p.queue.length - 64);
        }
      }
    } finally {
      p.busy = false;
    }
  }

  private async sendSnapshot(m: Message, p: PeerQueue): Promise<void> {
    const size = m.snapshot?.data.length ?? 0;
    this.log("info", "snapshot_sending", {
      peer: m.to,
      index: m.snapshot?.metadata.index,
      bytes: size,
    });
    try {
      await this.post(
        p.address,
        "/raft/snapshot",
        JSON.stringify({ msgs: [encodeMessage(m)] }),
        this.opts.snapshotTimeoutMs ?? 30_000,
        m.to,
      );
      this.log("info", "snapshot_sent", { peer: m.to, index: m.snapshot?.metadata.index });
      this.opts.onSnapshotStatus(m.to, true);
    } catch (e) {
      if (this.closed) return;
      this.log("warn", "snapshot_send_failed", { peer: m.to, error: e });
      this.opts.onSnapshotStatus(m.to, false);
    }
  }
}
