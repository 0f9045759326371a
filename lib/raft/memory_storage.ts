// An in-memory Storage, like etcd's MemoryStorage: ents[0] is a dummy entry that records the
// index and term of the latest snapshot, so term(firstIndex()-1) is always answerable.
import type { InitialState, Storage } from "./storage.ts";
import type { ConfState, Entry, HardState, Snapshot } from "./types.ts";
import { RaftError } from "./types.ts";
import { limitSize } from "./util.ts";

export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot = {
    data: new Uint8Array(),
    metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } },
  };
  private ents: Entry[] = [{ term: 0, index: 0, type: "normal", data: new Uint8Array() }];

  initialState(): InitialState {
    return {
      hardState: { ...this.hardState },
      confState: cloneConfState(this.snap.metadata.confState),
    };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.ents[0].index;
    if (lo <= offset) {
      throw new RaftError(
        "Compacted",
        `entry ${lo} is compacted (first available is ${offset + 1})`,
      );
    }
    if (hi > this.lastIndex() + 1) {
      throw new RaftError(
        "Unavailable",
        `entries up to ${hi - 1} requested but last index is ${this.lastIndex()}`,
      );
    }
    if (lo >= hi) return [];
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize);
  }

  term(i: number): number {
    const offset = this.ents[0].index;
    if (i < offset) {
      throw new RaftError("Compacted", `term of ${i} is compacted (snapshot is at ${offset})`);
    }
    if (i - offset >= this.ents.length) {
      throw new RaftError(
        "Unavailable",
        `term of ${i} requested but last index is ${this.lastIndex()}`,
      );
    }
    return this.ents[i - offset].term;
  }

  lastIndex(): number {
    return this.ents[0].index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0].index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replace the whole log with a snapshot (install from the leader, or etcd-style bootstrap). */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) {
      throw new RaftError(
        "SnapOutOfDate",
        `snapshot at ${snap.metadata.index} is not newer than the current one at ${this.snap.metadata.index}`,
      );
    }
    this.snap = cloneSnapshot(snap);
    this.ents = [{
      term: snap.metadata.term,
      index: snap.metadata.index,
      type: "normal",
      data: new Uint8Array(),
    }];
    if (this.hardState.commit < snap.metadata.index) {
      this.hardState = { ...this.hardState, commit: snap.metadata.index };
    }
    if (this.hardState.term < snap.metadata.term) {
      this.hardState = { ...this.hardState, term: snap.metadata.term };
    }
  }

  /**
   * Record a snapshot of the application state at `index` (which must be applied) so the log
   * before it can be compacted. Returns the new snapshot.
   */
  createSnapshot(index: number, confState: ConfState | undefined, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) {
      throw new RaftError(
        "SnapOutOfDate",
        `snapshot at ${index} is not newer than the current one at ${this.snap.metadata.index}`,
      );
    }
    if (index > this.lastIndex()) {
      throw new Error(
        `createSnapshot: index ${index} is beyond the last index ${this.lastIndex()}`,
      );
    }
    const offset = this.ents[0].index;
    this.snap = {
      data,
      metadata: {
        index,
        term: this.ents[index - offset].term,
        confState: cloneConfState(confState ?? this.snap.metadata.confState),
      },
    };
    return this.snap;
  }

  /** Discard entries up to and including `compactIndex` (keeping it as the dummy entry). */
  compact(compactIndex: number): void {
    const offset = this.ents[0].index;
    if (compactIndex <= offset) {
      throw new RaftError("Compacted", `log is already compacted up to ${offset}`);
    }
    if (compactIndex > this.lastIndex()) {
      throw new Error(
        `compact: index ${compactIndex} is beyond the last index ${this.lastIndex()}`,
      );
    }
    const i = compactIndex - offset;
    const dummy: Entry = {
      term: this.ents[i].term,
      index: this.ents[i].index,
      type: "normal",
      data: new Uint8Array(),
    };
    this.ents = [dummy, ...this.ents.slice(i + 1)];
  }

  /** Append entries, overwriting any conflicting suffix. Entries must be contiguous. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0].index + entries.length - 1;
    if (last < first) return; // all already compacted
    let ents = entries;
    if (first > ents[0].index) ents = ents.slice(first - ents[0].index);
    const offset = ents[0].index - this.ents[0].index;
    if (this.ents.length > offset) {
      this.ents = [...this.ents.slice(0, offset), ...ents];
    } else if (this.ents.length === offset) {
      this.ents.push(...ents);
    } else {
      throw new Error(
        `append: missing log entries (last index ${this.lastIndex()}, appending at ${
          ents[0].index
        })`,
      );
    }
  }
}

function cloneConfState(cs: ConfState): ConfState {
  return { voters: [...cs.voters], learners: [...cs.learners] };
}

function cloneSnapshot(s: Snapshot): Snapshot {
  return {
    data: s.data,
    metadata: { ...s.metadata, confState: cloneConfState(s.metadata.confState) },
  };
}
