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
  let startIndex = 0;
  let startTerm = 0;
  let entries: Entry[] = [];
  let hardState: HardState = { term: 0, vote: 0, commit: 0 };
  let metadata: WalMetadata | undefined;
  const segmentMaxIndex: number[] = [];
  const lastIndex = () => startIndex + entries.length;
  const termAt = (i: number) => i === startIndex ? startTerm : entries[i - startIndex - 1].term;

  segments.forEach((seg, n) => {
    let maxIndex = 0;
    seg.records.forEach((rec, r) => {
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
      if ((r === 0) !== (rec.type === RecordType.segmentHeader)) {
        fail(r === 0 ? "segment does not start with a header" : "segment header in mid-segment");
      }
      switch (rec.type) {
        case RecordType.segmentHeader: {
          const h = decode(decodeSegmentHeader);
          if (h.seq !== seg.seq) fail(`header says segment ${h.seq}, file name says ${seg.seq}`);
          if (n === 0) {
            startIndex = h.prevIndex;
            startTerm = h.prevTerm;
          } else if (h.prevIndex !== lastIndex() || h.prevTerm !== termAt(lastIndex())) {
            throw new WalInconsistentError(
              seg.path,
              `segment continues the log at index ${h.prevIndex} term ${h.prevTerm} but the ` +
                `previous segments end at index ${lastIndex()} term ${termAt(lastIndex())}` +
                " (a segment is missing)",
            );
          }
          break;
        }
        case RecordType.entry: {
          const e = decode(decodeEntry);
          if (e.index > lastIndex() + 1) {
            fail(`entry ${e.index} leaves a gap after the last index ${lastIndex()}`);
          }
          if (e.index <= startIndex) {
            // Truncation below everything still known: the log restarts just before e, at an
            // index whose term is unknown (NaN never matches a snapshot or header).
            startIndex = e.index - 1;
            startTerm = NaN;
            entries = [e];
          } else {
            entries.length = e.index - startIndex - 1;
            entries.push(e);
          }
          maxIndex = Math.max(maxIndex, e.index);
          break;
        }
        case RecordType.hardState:
          hardState = decode(decodeHardState);
          break;
        case RecordType.snapshotReset: {
          const m = decode(decodeSnapshotMetadata);
          startIndex = m.index;
          startTerm = m.term;
          entries = [];
          maxIndex = Math.max(maxIndex, m.index);
          break;
        }
        case RecordType.metadata:
          metadata = decode(decodeMetadata);
          break;
      }
    });
    segmentMaxIndex.push(maxIndex);
  });
  return { startIndex, startTerm, entries, hardState, metadata, segmentMaxIndex };
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
