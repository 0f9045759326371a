// Raft messages on the wire between members: JSON with byte fields in base64. Pure functions.
import { Buffer } from "node:buffer";
import type { Entry, Message, Snapshot } from "../../raft/types.ts";

export interface WireEntry {
  t: number;
  i: number;
  c?: 1;
  d?: string;
}
export interface WireSnapshot {
  d: string;
  i: number;
  t: number;
  v: number[];
  l: number[];
}
export interface WireMessage {
  type: Message["type"];
  to: number;
  from: number;
  term: number;
  logTerm: number;
  index: number;
  commit: number;
  e?: WireEntry[];
  snap?: WireSnapshot;
  reject?: 1;
  hint?: number;
  ctx?: string;
}

export const b64 = (b: Uint8Array): string => Buffer.from(b).toString("base64");
export const unb64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "base64"));

export function encodeEntry(e: Entry): WireEntry {
  const w: WireEntry = { t: e.term, i: e.index };
  if (e.type === "confChange") w.c = 1;
  if (e.data.length > 0) w.d = b64(e.data);
  return w;
}

export function decodeEntry(w: WireEntry): Entry {
  return {
    term: w.t,
    index: w.i,
    type: w.c ? "confChange" : "normal",
    data: w.d ? unb64(w.d) : new Uint8Array(),
  };
}

export function encodeSnapshot(s: Snapshot): WireSnapshot {
  return {
    d: b64(s.data),
    i: s.metadata.index,
    t: s.metadata.term,
    v: s.metadata.confState.voters,
    l: s.metadata.confState.learners,
  };
}

export function decodeSnapshot(w: WireSnapshot): Snapshot {
  return {
    data: unb64(w.d),
    metadata: { index: w.i, term: w.t, confState: { voters: w.v, learners: w.l } },
  };
}

export function encodeMessage(m: Message): WireMessage {
  const w: WireMessage = {
    type: m.type,
    to: m.to,
    from: m.from,
    term: m.term,
    logTerm: m.logTerm,
    index: m.index,
    commit: m.commit,
  };
  if (m.entries.length > 0) w.e = m.entries.map(encodeEntry);
  if (m.snapshot) w.snap = encodeSnapshot(m.snapshot);
  if (m.reject) w.reject = 1;
  if (m.rejectHint) w.hint = m.rejectHint;
  if (m.context && m.context.length > 0) w.ctx = b64(m.context);
  return w;
}

const WIRE_TYPES = new Set<Message["type"]>([
  "MsgProp",
  "MsgApp",
  "MsgAppResp",
  "MsgVote",
  "MsgVoteResp",
  "MsgPreVote",
  "MsgPreVoteResp",
  "MsgSnap",
  "MsgHeartbeat",
  "MsgHeartbeatResp",
  "MsgTransferLeader",
  "MsgTimeoutNow",
  "MsgReadIndex",
  "MsgReadIndexResp",
]);

/** Decodes one wire message; throws on anything that is not a well-formed network message. */
export function decodeMessage(w: WireMessage): Message {
  if (!w || typeof w !== "object" || !WIRE_TYPES.has(w.type)) {
    throw new Error(`not a Raft network message: ${JSON.stringify(w)?.slice(0, 80)}`);
  }
  for (const k of ["to", "from", "term", "logTerm", "index", "commit"] as const) {
    if (!Number.isSafeInteger(w[k]) || w[k] < 0) {
      throw new Error(`Raft message field ${k} is not a count`);
    }
  }
  const m: Message = {
    type: w.type,
    to: w.to,
    from: w.from,
    term: w.term,
    logTerm: w.logTerm,
    index: w.index,
    entries: (w.e ?? []).map(decodeEntry),
    commit: w.commit,
    reject: w.reject === 1,
    rejectHint: w.hint ?? 0,
  };
  if (w.snap) m.snapshot = decodeSnapshot(w.snap);
  if (w.ctx) m.context = unb64(w.ctx);
  return m;
}

/** Approximate wire size of a message, for batching. */
export function messageSize(m: Message): number {
  let n = 64;
  for (const e of m.entries) n += 32 + e.data.length * 1.34;
  if (m.snapshot) n += m.snapshot.data.length * 1.34;
  return n;
}
