// Burst batching of peer events between the lease watch and the backend. Watch events go
// straight to the kernel; while one batch is being applied the next ones accumulate (one event
// per peer, later ones merged into earlier) and go in the following batch.
import { mergePeerEvent, type PeerEvent } from "../subnet/watcher.ts";

/** A batch this big is a burst: wait for the rest of it until the watch is quiet this long. */
export const BURST_EVENTS = 64;
export const BURST_QUIET_MS = 2;
export const BURST_MAX_WAIT_MS = 30;

/** How a batch came together: watch responses (or listings) in it, first to last decoded. */
export interface BatchOrigin {
  responses: number;
  span: number;
}

/** Applies one batch; `since` is when its first event was decoded (performance.now()). */
export type ApplyBatch = (batch: PeerEvent[], since: number, got: BatchOrigin) => Promise<void>;

export class PeerEventBatcher {
  private pending = new Map<string, PeerEvent>();
  private firstAt: number | null = null;
  private lastAt = 0;
  private responses = 0;
  private draining: Promise<void> | null = null;

  /** `batchesSpawn`: whether one apply costs child processes (then bursts are waited for). */
  constructor(private apply: ApplyBatch, private batchesSpawn: () => boolean) {}

  /** Queues one watch response's (or listing's) events, decoded at `at`. */
  queue(evs: PeerEvent[], at: number): void {
    if (!evs.length) return;
    for (const e of evs) mergePeerEvent(this.pending, e);
    this.firstAt ??= at;
    this.lastAt = at;
    this.responses++;
    this.draining ??= this.drain();
  }

  /**
   * One event-loop turn first, so watch responses already buffered join this batch. What arrives
   * while a batch is being applied is the next batch. When a batch costs child processes (the
   * ip/bridge fallback), a big batch means a burst (a backlog after a pause, a bulk write) whose
   * responses follow each other within a millisecond or two: wait while they keep coming, as one
   * spawn beats two, the second of which waits for the first. Over rtnetlink a batch costs about
   * its entries alone, so applying the first responses while the next arrive is faster.
   */
  private async drain(): Promise<void> {
    await new Promise((r) => setTimeout(r, 0));
    if (this.batchesSpawn() && this.pending.size >= BURST_EVENTS) await this.waitForQuiet();
    while (this.pending.size) {
      const batch = [...this.pending.values()];
      const since = this.firstAt!;
      const got = { responses: this.responses, span: this.lastAt - since };
      this.pending.clear();
      this.firstAt = null;
      this.responses = 0;
      await this.apply(batch, since, got);
    }
    this.draining = null;
  }

  private async waitForQuiet(): Promise<void> {
    const t0 = performance.now();
    let seen = this.responses;
    while (performance.now() - t0 < BURST_MAX_WAIT_MS) {
      await new Promise((r) => setTimeout(r, BURST_QUIET_MS));
      if (this.responses === seen) break;
      seen = this.responses;
    }
  }
}
