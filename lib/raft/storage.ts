// The interface the application implements to give Raft its stable log (etcd's raft.Storage).
// The in-memory implementation lives in memory_storage.ts; the durable one in lib/store/.
import type { ConfState, Entry, HardState, Snapshot } from "./types.ts";

export interface InitialState {
  hardState: HardState;
  confState: ConfState;
}

export interface Storage {
  initialState(): InitialState;
  /**
   * Entries in [lo, hi), at most `maxSize` bytes of data (but always at least one entry).
   * Throws RaftError("Compacted") if lo <= snapshot index, RaftError("Unavailable") if hi > last+1.
   */
  entries(lo: number, hi: number, maxSize: number): Entry[];
  /** Term of entry i, for i in [firstIndex()-1, lastIndex()]. Throws Compacted/Unavailable otherwise. */
  term(i: number): number;
  lastIndex(): number;
  /** Index of the first entry available through entries() (snapshot index + 1). */
  firstIndex(): number;
  /** The most recent snapshot. May throw RaftError("SnapshotTemporarilyUnavailable"). */
  snapshot(): Snapshot;
}
