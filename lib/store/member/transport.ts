// Peer transport: sends Raft messages to other members on the same port as the client API, under
// /raft/. Each member keeps ONE long-lived WebSocket to each peer (GET /raft/stream, upgraded,
// with the same Bearer token and cluster headers as every peer request; the client end is
// peer_stream.ts, which sets TCP_NODELAY) and writes each Ready's
// messages for that peer as one frame the moment the Ready is sent: no request per batch, no
// waiting for an answer before the next batch, messages to a peer stay in order. Snapshots
// travel on their own POST /raft/snapshot so a large transfer never delays heartbeats, one at a
// time per peer.
// While a peer's stream is down, messages wait (bounded) for it to come back; when it cannot be
// opened (or drops) Raft is told the peer is unreachable and the queue is cut to its newest
// messages: Raft retransmits what matters. A peer that refuses us as removed (410, on the
// stream's handshake or in a frame it sends back) is reported through onRemoved.
import { HEARTBEAT_RTT } from "../../metrics.ts";
import type { Message, NodeId } from "../../raft/types.ts";
import { encodeMessage, messageSize } from "./message_codec.ts";
import { PeerStream } from "./peer_stream.ts";
import type { Logger } from "../../log.ts";
import { silentLogger } from "../../log.ts";
import { HttpClient, type TlsClientOptions } from "../../http/client.ts";

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
  tls?: TlsClientOptions;
  onUnreachable(id: NodeId): void;
  onSnapshotStatus(id: NodeId, ok: boolean): void;
  /** A peer answered that this member was removed from the cluster. */
  onRemoved?(by: NodeId): void;
  logger?: Logger;
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
  /** A stream whose write has not progressed for this long (ms) is replaced. */
  stallMs?: number;
}

interface Peer {
  address: string;
  queue: Message[];
  failing: boolean;
  stream: PeerStream | undefined;
  /** A stream is being opened. */
  opening: boolean;
  /** Counts stream attempts, so that a late answer to an abandoned one is ignored. */
  attempt: number;
  /** performance.now() before which no new stream is attempted. */
  retryAt: number;
  /** A snapshot is being sent: Raft asks again while it runs (it gives up waiting after two
   *  election timeouts), and a second full copy alongside the first would only slow both. */
  snapshotInFlight: boolean;
}

export class HttpTransport implements PeerSink {
  private readonly peers = new Map<NodeId, Peer>();
  private readonly log: Logger;
  private closed = false;
  private readonly abort = new AbortController();
  /** Every peer request carries the credential and the cluster headers. */
  private readonly http: HttpClient;

  constructor(private readonly opts: HttpTransportOptions) {
    this.log = opts.logger ?? silentLogger;
    this.http = new HttpClient({
      token: opts.token,
      tls: opts.tls,
      headers: { [CLUSTER_HEADER]: opts.clusterId, [FROM_HEADER]: String(opts.selfId) },
    });
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
        stream: undefined,
        opening: false,
        attempt: 0,
        retryAt: 0,
        snapshotInFlight: false,
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
    HEARTBEAT_RTT.sending(msgs);
    const touched = new Set<NodeId>();
    for (const m of msgs) {
      const p = this.peers.get(m.to);
      if (!p) {
        // Unknown address (not yet learned from the log): Raft will retry.
        this.opts.onUnreachable(m.to);
        continue;
      }
      if (m.type === "MsgSnap") {
        // The running transfer reports its outcome to Raft, which then asks again if need be.
        if (!p.snapshotInFlight) this.sendSnapshot(m, p);
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

  /** Writes the peer's queue to its stream, opening the stream first if need be. */
  private flush(id: NodeId, p: Peer): void {
    if (p.queue.length === 0 || this.closed) return;
    const stream = p.stream;
    if (!stream) {
      this.connect(id, p);
      return;
    }
    if (stream.stalledMs() > (this.opts.stallMs ?? 3000)) {
      // Nothing got through for a while: the connection may be dead without either end knowing
      // (a partition); open a new one rather than wait minutes for TCP to give up.
      this.lost(id, p, stream, `the peer took nothing for ${this.opts.stallMs ?? 3000} ms`);
      return;
    }
    if (stream.bufferedAmount > (this.opts.maxBufferedBytes ?? 8 << 20)) {
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
        stream.send(JSON.stringify({ msgs: batch.map(encodeMessage) }));
      } catch (e) {
        this.lost(id, p, stream, (e as Error).message);
        return;
      }
    }
  }

  private connect(id: NodeId, p: Peer): void {
    if (p.stream || p.opening || this.closed) return;
    if (performance.now() < p.retryAt) {
      this.trimQueue(p);
      return; // the next send after retryAt tries again (Raft sends at least every heartbeat)
    }
    p.opening = true;
    const attempt = ++p.attempt;
    const current = () => !this.closed && p.attempt === attempt && this.peers.get(id) === p;
    let opened: PeerStream | undefined;
    PeerStream.open(this.http, p.address, "/raft/stream", this.opts.connectTimeoutMs ?? 1000, {
      onText: (text) => {
        let notice: StreamNotice = {};
        try {
          notice = JSON.parse(text);
        } catch { /* not ours */ }
        if (notice.removed && current()) this.opts.onRemoved?.(id);
      },
      onClose: (why) => {
        if (opened && p.stream === opened) this.lost(id, p, opened, why);
      },
    }).then((stream) => {
      if (!current()) {
        stream.close();
        return;
      }
      p.opening = false;
      if (stream.isClosed) {
        this.failed(id, p, "the peer closed the stream at once");
        return;
      }
      opened = stream;
      p.stream = stream;
      if (p.failing) {
        p.failing = false;
        this.log("info", "peer_reachable", { peer: id, address: p.address });
      }
      this.flush(id, p);
    }, (e: Error) => {
      if (!current()) return;
      p.opening = false;
      // "peer stream refused: HTTP 410 …": this member was removed from the cluster.
      if (/HTTP 410\b/.test(e.message)) this.opts.onRemoved?.(id);
      this.failed(id, p, e.message);
    });
  }

  /** A stream failed or closed: forget it, tell Raft, try again after retryMs. */
  private lost(id: NodeId, p: Peer, stream: PeerStream, why: string): void {
    if (p.stream !== stream) return;
    this.dropStream(p);
    if (this.closed) return;
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

  /** Closes the peer's stream (and forgets any being opened). */
  private dropStream(p: Peer): void {
    const stream = p.stream;
    p.stream = undefined;
    p.opening = false;
    p.attempt++;
    stream?.close();
  }

  private async post(
    address: string,
    path: string,
    body: string,
    timeoutMs: number,
    to: NodeId,
  ) {
    const res = await this.http.request(address, path, {
      body,
      timeoutMs,
      signal: this.abort.signal,
    });
    const text = await res.text();
    if (res.status === 410) this.opts.onRemoved?.(to);
    if (!res.ok) {
      throw new Error(`${path} answered ${res.status}: ${text.slice(0, 200)}`);
    }
  }

  private async sendSnapshot(m: Message, p: Peer): Promise<void> {
    const size = m.snapshot?.data.length ?? 0;
    p.snapshotInFlight = true;
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
    } finally {
      p.snapshotInFlight = false;
    }
  }
}
