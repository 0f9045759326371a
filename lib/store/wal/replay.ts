// Rebuilding the durable Raft state from scanned log segments and the chosen snapshot. Pure.
//
// Segments are replayed oldest first. The first surviving segment's header says where the log
// stood when it was started (older segments may have been deleted after a snapshot); each entry
// record overwrites any conflicting suffix, as Raft truncation requires; a snapshot-reset record
// (a snapshot received from the leader) empties the log down to the snapshot. The last hard
// state and metadata records win.
import type { Entry, HardState, SnapshotMetadata } from "../../raft/types.ts";
import {
  decodeEntry,
  decodeHardState,
  decodeMetadata,
  decodeSegmentHeader,
  decodeSnapshotMetadata,
  type WalMetadata,
} from "./codec.ts";
import { WalCorruptError, WalInconsistentError } from "./errors.ts";
import { RecordType, type WalRecord } from "./record.ts";

export interface ScannedSegment {
  path: string;
  seq: number;
  records: WalRecord[];
}

/** The log as the records describe it: entries follow (startIndex, startTerm) contiguously. */
export interface ReplayedLog {
  startIndex: number;
  startTerm: number;
  entries: Entry[];
  hardState: HardState;
  metadata?: WalMetadata;
  /** Per segment (same order): the highest log index it mentions, 0 if none. */
  segmentMaxIndex: number[];
}

export function replayLog(segments: readonly ScannedSegment[]): ReplayedLog {
  const log = new LogReplay();
  segments.forEach((seg, n) => {
    let maxIndex = 0;
    seg.records.forEach((rec, r) => {
      if ((r === 0) !== (rec.type === RecordType.segmentHeader)) {
        throw new WalCorruptError(
          seg.path,
          rec.offset,
          r === 0 ? "segment does not start with a header" : "segment header in mid-segment",
        );
      }
      maxIndex = Math.max(maxIndex, log.apply(seg, n, rec));
    });
    log.segmentMaxIndex.push(maxIndex);
  });
  const { startIndex, startTerm, entries, hardState, metadata, segmentMaxIndex } = log;
  return { startIndex, startTerm, entries, hardState, metadata, segmentMaxIndex };
}

/** The log as the records replayed so far describe it. */
class LogReplay {
  startIndex = 0;
  startTerm = 0;
  entries: Entry[] = [];
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  metadata: WalMetadata | undefined;
  readonly segmentMaxIndex: number[] = [];

  lastIndex(): number {
    return this.startIndex + this.entries.length;
  }

  termAt(i: number): number {
    return i === this.startIndex ? this.startTerm : this.entries[i - this.startIndex - 1].term;
  }

  /** Applies record `rec` of segment number `n`; returns the highest log index it names, or 0. */
  apply(seg: ScannedSegment, n: number, rec: ScannedSegment["records"][number]): number {
    const fail = (reason: string): never => {
      throw new WalCorruptError(seg.path, rec.offset, reason);
    };
    const decode = <T>(f: (p: Uint8Array) => T): T => {
      try {
        return f(rec.payload);
      } catch (e) {
        return fail((e as Error).message);
      }
    };
    switch (rec.type) {
      case RecordType.segmentHeader:
        this.#header(seg, n, decode(decodeSegmentHeader), fail);
        return 0;
      case RecordType.entry:
        return this.#entry(decode(decodeEntry), fail);
      case RecordType.hardState:
        this.hardState = decode(decodeHardState);
        return 0;
      case RecordType.snapshotReset: {
        const m = decode(decodeSnapshotMetadata);
        this.startIndex = m.index;
        this.startTerm = m.term;
        this.entries = [];
        return m.index;
      }
      case RecordType.metadata:
        this.metadata = decode(decodeMetadata);
        return 0;
    }
    return 0;
  }

  #header(
    seg: ScannedSegment,
    n: number,
    h: ReturnType<typeof decodeSegmentHeader>,
    fail: (reason: string) => never,
  ): void {
    if (h.seq !== seg.seq) fail(`header says segment ${h.seq}, file name says ${seg.seq}`);
    if (n === 0) {
      this.startIndex = h.prevIndex;
      this.startTerm = h.prevTerm;
    } else if (h.prevIndex !== this.lastIndex() || h.prevTerm !== this.termAt(this.lastIndex())) {
      throw new WalInconsistentError(
        seg.path,
        `segment continues the log at index ${h.prevIndex} term ${h.prevTerm} but the ` +
          `previous segments end at index ${this.lastIndex()} term ${
            this.termAt(this.lastIndex())
          }` +
          " (a segment is missing)",
      );
    }
  }

  #entry(e: Entry, fail: (reason: string) => never): number {
    if (e.index > this.lastIndex() + 1) {
      fail(`entry ${e.index} leaves a gap after the last index ${this.lastIndex()}`);
    }
    if (e.index <= this.startIndex) {
      // Truncation below everything still known: the log restarts just before e, at an
      // index whose term is unknown (NaN never matches a snapshot or header).
      this.startIndex = e.index - 1;
      this.startTerm = NaN;
      this.entries = [e];
    } else {
      this.entries.length = e.index - this.startIndex - 1;
      this.entries.push(e);
    }
    return e.index;
  }
}

/**
 * Join the replayed log to the snapshot the state machine will be rebuilt from: the entries
 * after the snapshot if the log agrees with it at the snapshot's index, none if it does not
 * (the snapshot replaced the log, as when one was received from the leader).
 */
export function entriesAfterSnapshot(
  log: ReplayedLog,
  snap: SnapshotMetadata | undefined,
  walPath: string,
): Entry[] {
  const s = snap ?? { index: 0, term: 0, confState: { voters: [], learners: [] } };
  const last = log.startIndex + log.entries.length;
  if (s.index < log.startIndex) {
    throw new WalInconsistentError(
      walPath,
      `the log begins after index ${log.startIndex} but the newest readable snapshot is at ` +
        `index ${s.index}, so entries ${s.index + 1}..${log.startIndex} are missing`,
    );
  }
  if (s.index > last) return [];
  const termAtS = s.index === log.startIndex
    ? log.startTerm
    : log.entries[s.index - log.startIndex - 1].term;
  if (termAtS !== s.term) return [];
  return log.entries.slice(s.index - log.startIndex);
}
