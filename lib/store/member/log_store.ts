// What the Raft driver needs from its log storage beyond Raft's read-only Storage interface:
// persisting a Ready (one sync per Ready), snapshots and compaction. MemoryLogStore adapts the
// core's MemoryStorage (nothing survives a restart); the durable one is lib/store/wal/.
import type { Storage } from "../../raft/storage.ts";
import type { ConfState, Entry, HardState, Snapshot } from "../../raft/types.ts";
import { MemoryStorage } from "../../raft/memory_storage.ts";

export interface PersistRequest {
  hardState?: HardState;
  entries: Entry[];
  snapshot?: Snapshot;
  mustSync: boolean;
}

export interface LogStore extends Storage {
  /** Persists a Ready's snapshot, entries and hard state; one sync when mustSync. */
  save(rd: PersistRequest): Promise<void>;
  /** Records a snapshot of the applied state at `index` and makes it durable. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<void>;
  /** Drops log entries up to and including `index` (must be <= the latest snapshot's index). */
  compact(index: number): Promise<void>;
  close(): Promise<void> | void;
}

export class MemoryLogStore implements LogStore {
  readonly mem: MemoryStorage;
  constructor(mem = new MemoryStorage()) {
    this.mem = mem;
  }
  initialState() {
    return this.mem.initialState();
  }
  entries(lo: number, hi: number, maxSize: number) {
    return this.mem.entries(lo, hi, maxSize);
  }
  term(i: number) {
    return this.mem.term(i);
  }
  lastIndex() {
    return this.mem.lastIndex();
  }
  firstIndex() {
    return this.mem.firstIndex();
  }
  snapshot() {
    return this.mem.snapshot();
  }
  save(rd: PersistRequest): Promise<void> {
    if (rd.snapshot && rd.snapshot.metadata.index > 0) this.mem.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) this.mem.append(rd.entries);
    if (rd.hardState) this.mem.setHardState(rd.hardState);
    return Promise.resolve();
  }
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<void> {
    this.mem.createSnapshot(index, confState, data);
    return Promise.resolve();
  }
  compact(index: number): Promise<void> {
    this.mem.compact(index);
    return Promise.resolve();
  }
  close() {}
}
