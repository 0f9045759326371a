// Peer transport: sends Raft messages to other members on the same port as the client API, under
// /raft/. Each member keeps ONE long-lived WebSocket to each peer (GET /raft/stream, upgraded,
// with the same Bearer token and cluster headers as every peer request) and writes each Ready's
// messages for that peer as one frame the moment the Ready is sent: no request per batch, no
// waiting for an answer before the next batch, messages to a peer stay in order. Snapshots
// travel on their own POST /raft/snapshot so a large transfer never delays heartbeats.
// While a peer's stream is down, messages wait (bounded) for it to come back; when it cannot be
// opened (or drops) Raft is told the peer is unreachable and the queue is cut to its newest
// messages: Raft retransmits what matters. A peer that refuses us as removed (410, on the
// stream's handshake or in a frame it sends back) is reported through onRemoved.
import type { Message, NodeId } from "../../raft/types.ts";
import { encodeMessage, messageSize } from "./message_codec.ts";
import type { EventLogger } from "./log.ts";
import { silentLogger } from "./log.ts";

/** Headers every peer request carries besides the Bearer token. */
export const CLUSTER_HEADER = "x-twill-cluster";
export const FROM_HEADER = "x-twill-from";

/** What a member answers on a peer stream (one JSON text frame) before closing it. */
export interface StreamNotice {
  /** The sender was removed from the cluster (the same meaning as HTTP 410). */
  removed?: true;
  error?: string;
}

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
  /** How long opening a peer stream may take (ms). */
  connectTimeoutMs?: number;
  /** After a stream failed, how long before the next attempt (ms). */
  retryMs?: number;
  snapshotTimeoutMs?: number;
  /** Largest frame (approximate bytes of messages). */
  maxBatchBytes?: number;
  /** Messages kept per peer while its stream is being opened. */
  maxQueue?: number;
  /** Bytes a stream may hold unsent before the peer counts as unreachable. */
  maxBufferedBytes?: number;
}

interface Peer {
  address: string;
  queue: Message[];
  failing: boolean;
  ws: WebSocket | undefined;
  open: boolean;
  /** performance.now() before which no new stream is attempted. */
  retryAt: number;
  connectTimer: ReturnType<typeof setTimeout> | undefined;
}

export class HttpTransport implements PeerSink {
  private readonly peers = new Map<NodeId, Peer>();
  private readonly log: EventLogger;
  private closed = false;
  private readonly abort = new AbortController();

  constructor(private readonly opts: HttpTransportOptions) {
    this.log = opts.logger ?? silentLogger;
  }

  setPeer(id: NodeId, address: string): void {
    if (id === this.opts.selfId) return;
    const p = this.peers.get(id);
    if (p) {
      if (p.address !== address) {
        p.address = address;
        this.dropStream(p);
      }
    } else {
      this.peers.set(id, {
        address,
        queue: [],
        failing: false,
        ws: undefined,
        open: false,
        retryAt: 0,
        connectTimer: undefined,
      });
    }
  }

  removePeer(id: NodeId): void {
    const p = this.peers.get(id);
    if (!p) return;
    this.peers.delete(id);
    this.dropStream(p);
  }

  peerAddress(id: NodeId): string | undefined {
    return this.peers.get(id)?.address;
  }

  send(msgs: Message[]): void {
    if (this.closed) return;
    const touched = new Set<NodeId>();
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
      touched.add(m.to);
    }
    for (const id of touched) this.flush(id, this.peers.get(id)!);
  }

  close(): void {
    this.closed = true;
    this.abort.abort();
    for (const p of this.peers.values()) this.dropStream(p);
  }

  private headers(): Record<string, string> {
    return {
      authorization: `Bearer ${this.opts.token}`,
      [CLUSTER_HEADER]: this.opts.clusterId,
      [FROM_HEADER]: String(this.opts.selfId),
    };
  }

  /** Writes the peer's queue to its stream, opening the stream first if need be. */
  private flush(id: NodeId, p: Peer): void {
    if (p.queue.length === 0 || this.closed) return;
    if (!p.open) {
      this.connect(id, p);
      return;
    }
    const ws = p.ws!;
    if (ws.bufferedAmount > (this.opts.maxBufferedBytes ?? 8 << 20)) {
      // The peer is not reading (frozen, or far too slow): drop, and let Raft slow down.
      p.queue.length = 0;
      this.opts.onUnreachable(id);
      return;
    }
    const max = this.opts.maxBatchBytes ?? 1 << 20;
    while (p.queue.length > 0) {
      let n = 0;
      let bytes = 0;
      while (n < p.queue.length && (n === 0 || bytes + messageSize(p.queue[n]) <= max)) {
        bytes += messageSize(p.queue[n]);
        n++;
      }
      const batch = p.queue.splice(0, n);
      try {
        ws.send(JSON.stringify({ msgs: batch.map(encodeMessage) }));
      } catch (e) {
        this.lost(id, p, ws, (e as Error).message);
        return;
      }
    }
  }

  private connect(id: NodeId, p: Peer): void {
    if (p.ws || this.closed) return; // already opening
    if (performance.now() < p.retryAt) {
      this.trimQueue(p);
      return; // the next send after retryAt tries again (Raft sends at least every heartbeat)
    }
    let ws: WebSocket;
    try {
      ws = new WebSocket(`ws://${p.address}/raft/stream`, { headers: this.headers() });
    } catch (e) {
      this.failed(id, p, (e as Error).message);
      return;
    }
    p.ws = ws;
    p.open = false;
    p.connectTimer = setTimeout(() => {
      p.connectTimer = undefined;
      if (p.ws === ws && !p.open) this.lost(id, p, ws, "timed out opening the peer stream");
    }, this.opts.connectTimeoutMs ?? 1000);
    ws.onopen = () => {
      if (p.ws !== ws) return;
      clearTimeout(p.connectTimer);
      p.connectTimer = undefined;
      p.open = true;
      if (p.failing) {
        p.failing = false;
        this.log("info", "peer_reachable", { peer: id, address: p.address });
      }
      this.flush(id, p);
    };
    ws.onmessage = (ev) => {
      let notice: StreamNotice = {};
      try {
        notice = JSON.parse(String(ev.data));
      } catch { /* not ours */ }
      if (notice.removed) this.opts.onRemoved?.(id);
    };
    ws.onerror = (ev) => this.lost(id, p, ws, (ev as ErrorEvent).message ?? "stream error");
    ws.onclose = () => this.lost(id, p, ws, "stream closed");
  }

  /** A stream failed or closed: forget it, tell Raft, try again after retryMs. */
  private lost(id: NodeId, p: Peer, ws: WebSocket, why: string): void {
    if (p.ws !== ws) return;
    this.dropStream(p);
    if (this.closed) return;
    // The handshake's status is only in the error text ("Invalid status code: 410").
    if (/\b410\b/.test(why)) this.opts.onRemoved?.(id);
    this.failed(id, p, why);
  }

  private failed(id: NodeId, p: Peer, why: string): void {
    p.retryAt = performance.now() + (this.opts.retryMs ?? 100);
    if (!p.failing) {
      p.failing = true;
      this.log("warn", "peer_unreachable", { peer: id, address: p.address, error: why });
    }
    this.opts.onUnreachable(id);
    this.trimQueue(p);
  }

  /** Old heartbeats and appends are worthless once a peer went away: keep the newest few. */
  private trimQueue(p: Peer): void {
    if (p.queue.length > 64) p.queue.splice(0, p.queue.length - 64);
  }

  private dropStream(p: Peer): void {
    const ws = p.ws;
    p.ws = undefined;
    p.open = false;
    if (p.connectTimer !== undefined) clearTimeout(p.connectTimer);
    p.connectTimer = undefined;
    if (!ws) return;
    ws.onopen =
      ws.onmessage =
      ws.onerror =
      ws.onclose =
        null;
    try {
      ws.close();
    } catch { /* already closed */ }
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
      headers: { ...this.headers(), "content-type": "application/json" },
      body,
      signal,
    });
    const text = await res.text();
    if (res.status === 410) this.opts.onRemoved?.(to);
    if (!res.ok) {
      throw new Error(`${path} answered ${res.status}: ${text.slice(0, 200)}`);
    }
  }

  private async sendSnapshot(m: Message, p: Peer): Promise<void> {
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
