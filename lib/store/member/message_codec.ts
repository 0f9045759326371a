// Raft messages on the wire between members: JSON with byte fields in base64. Pure functions.
import { Buffer } from "node:buffer";
import type { Entry, Message, Snapshot } from "../../raft/types.ts";
import { decodeConfChange } from "../../raft/confchange_codec.ts";

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
  if (!w || typeof w !== "object") throw new Error("entry is not an object");
  count(w.t, "entry term");
  count(w.i, "entry index");
  if (w.c !== undefined && w.c !== 1) throw new Error("entry field c must be 1 or absent");
  if (w.d !== undefined && typeof w.d !== "string") throw new Error("entry data is not base64");
  const e: Entry = {
    term: w.t,
    index: w.i,
    type: w.c ? "confChange" : "normal",
    data: w.d ? strictUnb64(w.d, "entry data") : new Uint8Array(),
  };
  if (e.type === "confChange") {
    // Applying a committed conf change whose body does not parse would stop every member.
    try {
      decodeConfChange(e.data);
    } catch (err) {
      throw new Error(`conf-change entry ${e.index}: ${(err as Error).message}`);
    }
  }
  return e;
}

/** A non-negative safe integer, or a thrown error naming `what`. */
function count(v: unknown, what: string): asserts v is number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new Error(`${what} is not a count`);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Base64 that round-trips: node's decoder silently skips junk, which would hide corruption. */
function strictUnb64(s: string, what: string): Uint8Array {
  if (s.length % 4 !== 0 || !BASE64.test(s)) throw new Error(`${what} is not base64`);
  return unb64(s);
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
  if (!w || typeof w !== "object") throw new Error("snapshot is not an object");
  count(w.i, "snapshot index");
  count(w.t, "snapshot term");
  if (w.i === 0 || w.t === 0) throw new Error("snapshot index and term must be positive");
  if (typeof w.d !== "string") throw new Error("snapshot data is not base64");
  const voters = memberIds(w.v, "snapshot voters");
  const learners = memberIds(w.l, "snapshot learners");
  if (voters.length === 0) throw new Error("snapshot configuration has no voter");
  if (voters.some((id) => learners.includes(id))) {
    throw new Error("snapshot configuration lists a node as both voter and learner");
  }
  return {
    data: strictUnb64(w.d, "snapshot data"),
    metadata: { index: w.i, term: w.t, confState: { voters, learners } },
  };
}

function memberIds(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || v.length > MAX_MEMBERS) throw new Error(`${what} is not a list of ids`);
  for (const id of v) {
    if (!Number.isSafeInteger(id) || id <= 0) throw new Error(`${what} holds a bad id`);
  }
  if (new Set(v).size !== v.length) throw new Error(`${what} lists an id twice`);
  return v as number[];
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

/** The message types that may cross the wire (local ones such as MsgHup never do). */
export const WIRE_TYPES: ReadonlySet<Message["type"]> = new Set<Message["type"]>([
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

/** Most ids a configuration may list (voters are at most 7; learners and joiners on top). */
const MAX_MEMBERS = 64;

/** Types whose entries field carries something, and how many entries it must hold. */
const ENTRIES_NEEDED: Partial<Record<Message["type"], "some" | "one" | "any">> = {
  MsgProp: "some",
  MsgApp: "any",
  MsgReadIndex: "one",
  MsgReadIndexResp: "one",
};

/** Decodes one wire message; throws on anything that is not a well-formed network message. */
export function decodeMessage(w: WireMessage): Message {
  if (!w || typeof w !== "object" || !WIRE_TYPES.has(w.type)) {
    throw new Error(`not a Raft network message: ${JSON.stringify(w)?.slice(0, 80)}`);
  }
  for (const k of ["to", "from", "term", "logTerm", "index", "commit"] as const) {
    count(w[k], `Raft message field ${k}`);
  }
  if (w.to === 0 || w.from === 0) throw new Error("Raft message without sender or recipient");
  if ((w.type === "MsgProp" || w.type === "MsgReadIndex") && w.term !== 0) {
    // Forwarded to the leader as they were made locally, without a term; one with a term would
    // break the core's sending rules when it is forwarded again.
    throw new Error(`${w.type} carries a term`);
  }
  if (w.hint !== undefined) count(w.hint, "Raft message field hint");
  if (w.reject !== undefined && w.reject !== 1) throw new Error("reject must be 1 or absent");
  if (w.ctx !== undefined && typeof w.ctx !== "string") throw new Error("ctx is not base64");
  const m: Message = {
    type: w.type,
    to: w.to,
    from: w.from,
    term: w.term,
    logTerm: w.logTerm,
    index: w.index,
    entries: decodeEntries(w),
    commit: w.commit,
    reject: w.reject === 1,
    rejectHint: w.hint ?? 0,
  };
  if (w.snap !== undefined) {
    if (w.type !== "MsgSnap") throw new Error(`${w.type} does not carry a snapshot`);
    m.snapshot = decodeSnapshot(w.snap);
  } else if (w.type === "MsgSnap") throw new Error("MsgSnap without a snapshot");
  if (w.ctx) m.context = strictUnb64(w.ctx, "ctx");
  return m;
}

function decodeEntries(w: WireMessage): Entry[] {
  const need = ENTRIES_NEEDED[w.type];
  if (w.e !== undefined && !Array.isArray(w.e)) throw new Error("entries is not a list");
  const entries = (w.e ?? []).map(decodeEntry);
  if (!need && entries.length > 0) throw new Error(`${w.type} does not carry entries`);
  if (need === "some" && entries.length === 0) throw new Error(`${w.type} without entries`);
  if (need === "one" && entries.length !== 1) throw new Error(`${w.type} needs one entry`);
  if (w.type === "MsgApp") checkAppendRun(w, entries);
  return entries;
}

/** An append's entries follow (index, logTerm) one by one, with terms never going down and
 *  never above the sender's term: the log code relies on it. */
function checkAppendRun(w: WireMessage, entries: Entry[]): void {
  let term = w.logTerm;
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k];
    if (e.index !== w.index + 1 + k) throw new Error("MsgApp entries are not consecutive");
    if (e.term < term || e.term > w.term) throw new Error("MsgApp entry terms out of order");
    term = e.term;
  }
  if (w.logTerm > w.term) throw new Error("MsgApp logTerm above its term");
}

/** Approximate wire size of a message, for batching. */
export function messageSize(m: Message): number {
  let n = 64;
  for (const e of m.entries) n += 32 + e.data.length * 1.34;
  if (m.snapshot) n += m.snapshot.data.length * 1.34;
  return n;
}
