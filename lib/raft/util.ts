// Small helpers shared by the Raft core: entry sizes, size limiting, message construction.
import type { Entry, Message, MessageType } from "./types.ts";
import { NONE } from "./types.ts";

/** Fixed per-entry overhead counted towards message-size limits (term, index, type). */
export const ENTRY_OVERHEAD = 16;

/** Size of an entry as counted against maxSizePerMsg / maxCommittedSizePerReady / storage limits. */
export function entrySize(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD;
}

/** Payload bytes of entries, as counted against maxUncommittedEntriesSize. */
export function payloadsSize(ents: readonly Entry[]): number {
  let s = 0;
  for (const e of ents) s += e.data.length;
  return s;
}

/** The longest prefix of `ents` whose total size is <= maxSize, but always at least one entry. */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySize(ents[0]);
  let limit = 1;
  for (; limit < ents.length; limit++) {
    size += entrySize(ents[limit]);
    if (size > maxSize) break;
  }
  return limit === ents.length ? ents : ents.slice(0, limit);
}

/** A message with every optional field at its zero value. */
export function newMessage(fields: Partial<Message> & { type: MessageType }): Message {
  return {
    to: NONE,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...fields,
  };
}

const LOCAL: ReadonlySet<MessageType> = new Set<MessageType>([
  "MsgHup",
  "MsgBeat",
  "MsgUnreachable",
  "MsgSnapStatus",
  "MsgCheckQuorum",
]);

const RESPONSES: ReadonlySet<MessageType> = new Set<MessageType>([
  "MsgAppResp",
  "MsgVoteResp",
  "MsgHeartbeatResp",
  "MsgUnreachable",
  "MsgPreVoteResp",
]);

export function isLocalMsg(t: MessageType): boolean {
  return LOCAL.has(t);
}

export function isResponseMsg(t: MessageType): boolean {
  return RESPONSES.has(t);
}

export function voteRespType(t: MessageType): MessageType {
  if (t === "MsgVote") return "MsgVoteResp";
  if (t === "MsgPreVote") return "MsgPreVoteResp";
  throw new Error(`raft: not a vote message: ${t}`);
}

/** A stable string key for an opaque byte context (ReadIndex request ids). */
export function ctxKey(ctx: Uint8Array | undefined): string {
  if (!ctx) return "";
  let s = "";
  for (const b of ctx) s += b.toString(16).padStart(2, "0");
  return s;
}

export function bytesEqual(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  const x = a ?? new Uint8Array();
  const y = b ?? new Uint8Array();
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** An internal invariant was violated: a bug in the core or a misbehaving Storage. */
export function invariant(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`raft invariant violated: ${what}`);
}
