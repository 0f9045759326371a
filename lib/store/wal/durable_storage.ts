// Raft's stable storage on disk: the in-memory log Raft reads (MemoryStorage) kept in step with a
// write-ahead log of CRC-checked records and snapshot files, so that a restarted member comes
// back with its term, vote, commit index, log and latest snapshot.
//
// Layout under `dir`:  wal/<seq>.wal  (segments)   snap/<index>-<term>.snap  (newest `keep`)
//
// Use: persist each Ready with `save(ready)` BEFORE sending its messages; after applying
// entries, `createSnapshot(index, confState, data)` then `compact(index)`. After a restart the
// state machine is rebuilt from `snapshot().data` (applied index = `snapshot().metadata.index`)
// and Raft re-delivers the committed entries after it.
import { join } from "node:path";
import { MemoryStorage } from "../../raft/memory_storage.ts";
import type { InitialState } from "../../raft/storage.ts";
import type { LogStore } from "../member/log_store.ts";
import {
  type ConfState,
  type Entry,
  type HardState,
  RaftError,
  type Snapshot,
} from "../../raft/types.ts";
import { encodeEntry, encodeHardState, encodeJson, type WalMetadata } from "./codec.ts";
import { WalInconsistentError } from "./errors.ts";
import { encodeRecord, RecordType } from "./record.ts";
import { concatBytes } from "../../bytes.ts";
import { entriesAfterSnapshot, replayLog } from "./replay.ts";
import { SegmentLog, type WalStats } from "./segments.ts";
import { SnapshotDir } from "./snapshot_files.ts";

export interface DurableStorageOptions {
  /** A segment is closed and a new one started once it reaches this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Snapshot files kept. Default 2 (the log always reaches back to the older one). */
  keepSnapshots?: number;
  /** Where warnings go (a torn tail was cut off, a damaged snapshot skipped). Default console.warn. */
  warn?: (line: string) => void;
}

/** The parts of a Raft Ready that must be made durable. */
export interface ReadyToPersist {
  hardState?: HardState;
  entries: readonly Entry[];
  snapshot?: Snapshot;
  /** fdatasync before resolving. Default true. */
  mustSync?: boolean;
}

interface QueuedSave {
  ready: ReadyToPersist;
  resolve(): void;
  reject(e: Error): void;
}

function snapshotOf(ready: ReadyToPersist): Snapshot | undefined {
  const s = ready.snapshot;
  return s && s.metadata.index > 0 ? s : undefined;
}

/** The durable LogStore (a Raft Storage that can also persist). */
export class DurableStorage implements LogStore {
  private tail: Promise<unknown> = Promise.resolve();
  private failure: Error | undefined;
  /** A commit-only hard state not yet written (see save). */
  private deferredHardState: HardState | undefined;
  /** Saves waiting for the write in progress to finish (see save). */
  private queued: QueuedSave[] = [];

  private constructor(
    readonly dir: string,
    private readonly mem: MemoryStorage,
    private readonly log: SegmentLog,
    private readonly snaps: SnapshotDir,
    private meta: WalMetadata | undefined,
    private readonly segmentBytes: number,
    private readonly keepSnapshots: number,
  ) {}

  /**
   * Open (or create) the storage in `dir` and rebuild the Raft state from the newest intact
   * snapshot and the log. Throws WalCorruptError / WalInconsistentError (one line, naming the
   * file and offset) rather than ever loading part of a damaged log.
   */
  static async open(dir: string, options: DurableStorageOptions = {}): Promise<DurableStorage> {
    const warn = options.warn ?? ((line: string) => console.warn(line));
    const segmentBytes = options.segmentBytes ?? 64 * 1024 * 1024;
    const keep = Math.max(1, options.keepSnapshots ?? 2);
    const walDir = join(dir, "wal");
    const snaps = new SnapshotDir(join(dir, "snap"));
    await snaps.init();
    const { snapshot } = await snaps.loadNewest(warn);
    const { log, scanned } = await SegmentLog.open(walDir, warn);
    const mem = new MemoryStorage();

    if (scanned.length === 0) {
      if ((await snaps.list()).length > 0) {
        throw new WalInconsistentError(
          walDir,
          `snapshots exist in ${snaps.dir} but the log is missing`,
        );
      }
      await log.roll(0, 0, { term: 0, vote: 0, commit: 0 }, undefined);
      return new DurableStorage(dir, mem, log, snaps, undefined, segmentBytes, keep);
    }

    try {
      const replayed = replayLog(scanned);
      log.setMaxIndexes(replayed.segmentMaxIndex);
      const entries = entriesAfterSnapshot(replayed, snapshot?.metadata, walDir);
      if (snapshot && snapshot.metadata.index > 0) mem.applySnapshot(snapshot);
      mem.append(entries);
      const hs = { ...replayed.hardState };
      const snapIndex = snapshot?.metadata.index ?? 0;
      hs.commit = Math.max(hs.commit, snapIndex);
      hs.term = Math.max(hs.term, snapshot?.metadata.term ?? 0);
      if (hs.commit > mem.lastIndex()) {
        throw new WalInconsistentError(
          walDir,
          `the hard state says index ${hs.commit} is committed but the log ends at ${mem.lastIndex()}`,
        );
      }
      mem.setHardState(hs);
      const storage = new DurableStorage(
        dir,
        mem,
        log,
        snaps,
        replayed.metadata,
        segmentBytes,
        keep,
      );
      await storage.rollIfFull();
      return storage;
    } catch (e) {
      log.close();
      throw e;
    }
  }

  // ---- Storage (what the Raft core reads) ----

  initialState(): InitialState {
    return this.mem.initialState();
  }
  entries(lo: number, hi: number, maxSize: number): Entry[] {
    return this.mem.entries(lo, hi, maxSize);
  }
  term(i: number): number {
    return this.mem.term(i);
  }
  lastIndex(): number {
    return this.mem.lastIndex();
  }
  firstIndex(): number {
    return this.mem.firstIndex();
  }
  /** The newest snapshot; its `data` is what the state machine is rebuilt from after a restart. */
  snapshot(): Snapshot {
    return this.mem.snapshot();
  }

  // ---- persistence ----

  /** The newest hard state saved (a commit-only change may not be on disk yet: see save). */
  hardState(): HardState {
    return this.mem.initialState().hardState;
  }

  /** The node-level metadata last written with setMetadata (node id, cluster id, …). */
  metadata(): WalMetadata | undefined {
    return this.meta ? structuredClone(this.meta) : undefined;
  }

  /** Durably record node-level metadata (kept across segment deletion). */
  setMetadata(meta: WalMetadata): Promise<void> {
    return this.exclusive(async () => {
      await this.io(() =>
        this.log.append(encodeRecord(RecordType.metadata, encodeJson(meta)), true, 0)
      );
      this.meta = structuredClone(meta);
    });
  }

  /**
   * Persist what a Ready asks for in ONE write and at most one fdatasync (group commit): an
   * incoming snapshot (its file is written and fsynced first), the new entries (overwriting any
   * conflicting suffix) and the hard state. Resolves once durable (when mustSync) and visible to
   * the Raft core through the Storage methods. Saves complete in the order they were made; saves
   * made while an earlier one is being written (asynchronous Raft writes hand out the next Ready
   * before the previous one is durable) are written together, with one fdatasync.
   */
  save(ready: ReadyToPersist): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ ready, resolve, reject });
      if (this.queued.length > 1) return; // the flush already scheduled takes this one too
      this.exclusive(() => this.flushQueued()).catch((e) => {
        // The flush never ran (an earlier write failed): refuse what waits.
        for (const q of this.queued.splice(0)) q.reject(e);
      });
    });
  }

  /** Writes every queued save, in order: runs of saves without a snapshot share one write. */
  private async flushQueued(): Promise<void> {
    const batch = this.queued.splice(0);
    try {
      for (let i = 0; i < batch.length;) {
        let j = i + 1;
        if (!snapshotOf(batch[i].ready)) {
          while (j < batch.length && !snapshotOf(batch[j].ready)) j++;
        }
        await this.writeBatch(batch.slice(i, j).map((q) => q.ready));
        i = j;
      }
    } catch (e) {
      for (const q of batch) q.reject(e as Error);
      throw e;
    }
    for (const q of batch) q.resolve();
  }

  /** One write (and at most one fdatasync) for `readies`; a snapshot only ever comes alone. */
  private async writeBatch(readies: ReadyToPersist[]): Promise<void> {
    const snap = snapshotOf(readies[0]);
    const hardStates = readies.flatMap((r) => r.hardState ? [r.hardState] : []);
    const mustSync = readies.some((r) => r.mustSync ?? true);
    if (!snap && !mustSync && readies.every((r) => r.entries.length === 0)) {
      // Only the commit index moved: Raft needs no fsync for that, and it need not even be
      // written now. It is kept and written ahead of the next write, so it becomes durable with
      // the next synced one (or at close, or when a segment rolls). Saves a disk write and an
      // event-loop round trip on every commit of every member.
      const hs = hardStates[hardStates.length - 1];
      if (hs) {
        this.mem.setHardState(hs);
        this.deferredHardState = hs;
      }
      return;
    }
    const current = this.mem.snapshot().metadata.index;
    if (snap && snap.metadata.index <= current) {
      throw new RaftError(
        "SnapOutOfDate",
        `snapshot at ${snap.metadata.index} is not newer than the current one at ${current}`,
      );
    }
    const maxIndex = this.checkContiguous(readies, snap);
    const parts: Uint8Array[] = [];
    // A deferred commit index goes first: it describes the log as it was before this write
    // (a commit index never covers entries that a later write could overwrite).
    const deferred = this.deferredHardState;
    if (deferred && hardStates.length === 0) {
      parts.push(encodeRecord(RecordType.hardState, encodeHardState(deferred)));
    }
    if (snap) {
      await this.io(() => this.snaps.write(snap));
      parts.push(encodeRecord(RecordType.snapshotReset, encodeJson(snap.metadata)));
    }
    for (const r of readies) {
      for (const e of r.entries) parts.push(encodeRecord(RecordType.entry, encodeEntry(e)));
      if (r.hardState) {
        parts.push(encodeRecord(RecordType.hardState, encodeHardState(r.hardState)));
      }
    }
    await this.io(() => this.log.append(concatBytes(parts), mustSync || !!snap, maxIndex));
    if (this.deferredHardState === deferred) this.deferredHardState = undefined;

    if (snap) this.mem.applySnapshot(snap);
    for (const r of readies) {
      this.mem.append(r.entries);
      if (r.hardState) this.mem.setHardState(r.hardState);
    }
    if (snap) await this.pruneSnapshotsAndSegments();
    await this.rollIfFull();
  }

  /** Refuses a gap before any entry; returns the highest index written. */
  private checkContiguous(readies: ReadyToPersist[], snap: Snapshot | undefined): number {
    let last = snap ? snap.metadata.index : this.mem.lastIndex();
    let maxIndex = snap ? snap.metadata.index : 0;
    for (const { entries } of readies) {
      if (entries.length === 0) continue;
      if (entries[0].index > last + 1) {
        throw new Error(
          `wal: entries start at ${entries[0].index} but the log ends at ${last}; ` +
            "nothing was written (Raft handed over a gap)",
        );
      }
      last = entries[entries.length - 1].index;
      maxIndex = Math.max(maxIndex, last);
    }
    return maxIndex;
  }

  /**
   * Record a snapshot of the applied state machine at `index` (≤ applied): written to its file
   * (temp, fsync, rename, directory fsync), older snapshot files beyond the newest `keep`
   * removed, and log segments wholly at or below the oldest kept snapshot deleted.
   */
  createSnapshot(
    index: number,
    confState: ConfState | undefined,
    data: Uint8Array,
  ): Promise<void> {
    return this.exclusive(async () => {
      const snap = this.mem.createSnapshot(index, confState, data);
      await this.io(() => this.snaps.write(snap));
      await this.pruneSnapshotsAndSegments();
    });
  }

  /**
   * Drop entries up to and including `index` from memory (keep some entries after the snapshot
   * for slow followers, as etcd does). The files are trimmed by createSnapshot, not here.
   */
  compact(index: number): Promise<void> {
    return this.exclusive(() => {
      this.mem.compact(index);
      return Promise.resolve();
    });
  }

  /** Counters of the durable writes (fsync count and total time, bytes). */
  stats(): WalStats & { segments: number } {
    return { ...this.log.stats, segments: this.log.segments.length };
  }

  /** Paths of the log segments, oldest first (for tests and diagnostics). */
  segmentPaths(): string[] {
    return this.log.segments.map((s) => s.path);
  }

  /** Wait for pending writes (writing a deferred commit index) and close the segment file. */
  async close(): Promise<void> {
    await this.flushDeferred().catch(() => {});
    await this.tail.catch(() => {});
    this.log.close();
  }

  /** Make a deferred commit-only hard state durable now. */
  flushDeferred(): Promise<void> {
    return this.exclusive(async () => {
      const hs = this.deferredHardState;
      if (!hs) return;
      await this.io(() =>
        this.log.append(encodeRecord(RecordType.hardState, encodeHardState(hs)), true, 0)
      );
      if (this.deferredHardState === hs) this.deferredHardState = undefined;
    });
  }

  private async pruneSnapshotsAndSegments(): Promise<void> {
    const kept = await this.io(() => this.snaps.prune(this.keepSnapshots));
    if (kept.length === 0) return;
    const oldest = Math.min(...kept.map((f) => f.index));
    await this.io(() => this.log.removeThrough(oldest));
  }

  private async rollIfFull(): Promise<void> {
    if (this.log.currentBytes < this.segmentBytes) return;
    const last = this.mem.lastIndex();
    const term = this.mem.term(last);
    await this.io(() => this.log.roll(last, term, this.hardState(), this.meta));
    this.deferredHardState = undefined; // the new segment's header records it, durably
  }

  /** Run `f` after every earlier write; after a failed disk write, refuse all further ones. */
  private exclusive<T>(f: () => Promise<T>): Promise<T> {
    const run = this.tail.then(() => {
      if (this.failure) {
        throw new Error(
          `wal: an earlier write failed (${this.failure.message}); restart the member`,
        );
      }
      return f();
    });
    this.tail = run.catch(() => {});
    return run;
  }

  /** A disk operation: if it fails, memory and disk may disagree, so no later write may run. */
  private async io<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (e) {
      this.failure = e as Error;
      throw e;
    }
  }
}
