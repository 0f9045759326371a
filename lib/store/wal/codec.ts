// Payload encodings of the log's record types. Entries and hard states are binary (they are the
// hot path); the rare records are JSON. Decoders throw a plain Error with a short reason; the
// caller names the file and offset.
import type { ConfState, Entry, EntryType, HardState, SnapshotMetadata } from "../../raft/types.ts";

/** First record of every segment: where the log stood when the segment was started. */
export interface SegmentHeader {
  seq: number;
  /** Last index and its term of the log just before this segment's first record. */
  prevIndex: number;
  prevTerm: number;
}

/** Node-level facts the log carries (node id, cluster id, …); the last one written wins. */
export type WalMetadata = Record<string, unknown>;

const ENTRY_FIXED = 17;
const TYPE_CODE: Record<EntryType, number> = { normal: 0, confChange: 1 };

export function encodeEntry(e: Entry): Uint8Array {
  const out = new Uint8Array(ENTRY_FIXED + e.data.length);
  const view = new DataView(out.buffer);
  view.setFloat64(0, e.index, true);
  view.setFloat64(8, e.term, true);
  out[16] = TYPE_CODE[e.type];
  out.set(e.data, ENTRY_FIXED);
  return out;
}

export function decodeEntry(p: Uint8Array): Entry {
  if (p.length < ENTRY_FIXED) throw new Error("entry record too short");
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const index = view.getFloat64(0, true);
  const term = view.getFloat64(8, true);
  const code = p[16];
  if (!isCount(index) || index < 1 || !isCount(term) || (code !== 0 && code !== 1)) {
    throw new Error("entry record has impossible fields");
  }
  return {
    index,
    term,
    type: code === 0 ? "normal" : "confChange",
    data: p.slice(ENTRY_FIXED),
  };
}

export function encodeHardState(hs: HardState): Uint8Array {
  const out = new Uint8Array(24);
  const view = new DataView(out.buffer);
  view.setFloat64(0, hs.term, true);
  view.setFloat64(8, hs.vote, true);
  view.setFloat64(16, hs.commit, true);
  return out;
}

export function decodeHardState(p: Uint8Array): HardState {
  if (p.length !== 24) throw new Error("hard state record has the wrong size");
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const hs = {
    term: view.getFloat64(0, true),
    vote: view.getFloat64(8, true),
    commit: view.getFloat64(16, true),
  };
  if (!isCount(hs.term) || !isCount(hs.vote) || !isCount(hs.commit)) {
    throw new Error("hard state record has impossible fields");
  }
  return hs;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export function encodeJson(value: unknown): Uint8Array {
  return enc.encode(JSON.stringify(value));
}

function parseJson(p: Uint8Array): unknown {
  return JSON.parse(dec.decode(p));
}

export function decodeSegmentHeader(p: Uint8Array): SegmentHeader {
  const v = parseJson(p) as SegmentHeader;
  if (!isCount(v?.seq) || !isCount(v.prevIndex) || !isCount(v.prevTerm)) {
    throw new Error("segment header has impossible fields");
  }
  return { seq: v.seq, prevIndex: v.prevIndex, prevTerm: v.prevTerm };
}

export function decodeSnapshotMetadata(p: Uint8Array): SnapshotMetadata {
  const v = parseJson(p) as SnapshotMetadata;
  if (!isCount(v?.index) || !isCount(v.term) || !isConfState(v.confState)) {
    throw new Error("snapshot metadata has impossible fields");
  }
  return { index: v.index, term: v.term, confState: v.confState };
}

export function decodeMetadata(p: Uint8Array): WalMetadata {
  const v = parseJson(p);
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new Error("metadata record is not an object");
  }
  return v as WalMetadata;
}

function isCount(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

function isConfState(c: unknown): c is ConfState {
  const cs = c as ConfState;
  return typeof cs === "object" && cs !== null && Array.isArray(cs.voters) &&
    Array.isArray(cs.learners) && cs.voters.every(isCount) && cs.learners.every(isCount);
}
