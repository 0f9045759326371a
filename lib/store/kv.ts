// The seam between the store's state machine and API (store-api) and its replication
// (store-raft). A Kv turns Commands into applied results, in the same order on every
// member, and exposes the local applied state machine for reads and watches.
//
// Conventions, decided once:
// - keys and values are Uint8Array (byte strings; ordering is bytewise, as etcd's);
// - every int64 that leaves the state machine or travels in a Command (revisions, versions,
//   lease ids, TTLs of keepalive answers excepted) is a decimal string, as in etcd's JSON;
//   "0" means "none" for a lease and "latest" for a revision;
// - a result of the state machine is plain data; an error of the state machine is returned
//   as `{ error: { code, message } }` (deterministic on every member) and turned into a thrown
//   StoreError by the kv (see unwrapApplyResult).

import { StoreError, type StoreErrorCode } from "./errors.ts";
import { decodeBase64 as unb64, encodeBase64 as b64 } from "../base64.ts";

export { StoreError, type StoreErrorCode } from "./errors.ts";

export type CompareTarget = "VERSION" | "CREATE" | "MOD" | "VALUE" | "LEASE";
export type CompareResult = "EQUAL" | "GREATER" | "LESS" | "NOT_EQUAL";

export interface Compare {
  target: CompareTarget;
  result: CompareResult;
  key: Uint8Array;
  /** Empty: just `key`. "\0": every key >= key. Otherwise [key, rangeEnd). */
  rangeEnd: Uint8Array;
  /** The operand for VERSION, CREATE, MOD and LEASE (decimal string). */
  number?: string;
  /** The operand for VALUE. */
  value?: Uint8Array;
}

export interface RangeRequest {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  limit: number;
  /** "0" (or empty) = current revision. */
  revision: string;
  keysOnly: boolean;
  countOnly: boolean;
  serializable: boolean;
}

export interface PutRequest {
  key: Uint8Array;
  value: Uint8Array;
  lease: string;
  prevKv: boolean;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface DeleteRangeRequest {
  key: Uint8Array;
  rangeEnd: Uint8Array;
  prevKv: boolean;
}

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export type RequestOp =
  | { range: RangeRequest }
  | { put: PutRequest }
  | { deleteRange: DeleteRangeRequest }
  | { txn: TxnRequest };

/**
 * A replicated command. requestId makes application idempotent: the state machine remembers a
 * requestId until the command's `expires` and returns the remembered result for a repeat
 * instead of applying twice; a copy applied after `expires` is refused (see state_machine.ts).
 */
export type Command = CommandBody & {
  /** The last log index at which this command may be applied: stamped once by the member that
   *  took the write and carried unchanged by every re-proposal. Absent in commands written by
   *  earlier versions. */
  expires?: number;
};

type CommandBody =
  | ({ op: "put"; requestId: string } & PutRequest)
  | ({ op: "deleteRange"; requestId: string } & DeleteRangeRequest)
  | ({ op: "txn"; requestId: string } & TxnRequest)
  /** id "0" lets the state machine choose (deterministically); ttl in seconds. */
  | { op: "leaseGrant"; requestId: string; id: string; ttl: number; owner?: string }
  | { op: "leaseRevoke"; requestId: string; id: string }
  /** Proposed by the leader's lessor; ids no longer present are ignored. */
  | { op: "leaseExpire"; requestId: string; ids: string[] }
  | { op: "compact"; requestId: string; revision: string };

export interface KeyValue {
  key: Uint8Array;
  value: Uint8Array;
  createRevision: string;
  modRevision: string;
  version: string;
  lease: string;
}

export interface RangeResult {
  revision: string;
  kvs: KeyValue[];
  more: boolean;
  count: string;
}

export interface PutResult {
  revision: string;
  prevKv?: KeyValue;
}

export interface DeleteRangeResult {
  revision: string;
  deleted: string;
  prevKvs: KeyValue[];
}

export type ResponseOp =
  | { range: RangeResult }
  | { put: PutResult }
  | { deleteRange: DeleteRangeResult }
  | { txn: TxnResult };

export interface TxnResult {
  revision: string;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface LeaseGrantResult {
  revision: string;
  id: string;
  ttl: number;
}

export interface LeaseRevokeResult {
  revision: string;
}

export interface LeaseExpireResult {
  revision: string;
  expired: string[];
}

export interface CompactResult {
  revision: string;
}

export interface ApplyError {
  error: { code: StoreErrorCode; message: string };
}

/** What `apply` returns for each command op. */
export type ApplyResult =
  | PutResult
  | DeleteRangeResult
  | TxnResult
  | LeaseGrantResult
  | LeaseRevokeResult
  | LeaseExpireResult
  | CompactResult
  | ApplyError;

export function isApplyError(r: unknown): r is ApplyError {
  return typeof r === "object" && r !== null && "error" in r;
}

/** Turns an ApplyError into a thrown StoreError; passes results through. */
export function unwrapApplyResult<T>(r: unknown): T {
  if (isApplyError(r)) throw new StoreError(r.error.code, r.error.message);
  return r as T;
}

export type EventType = "PUT" | "DELETE";

export interface WatchEvent {
  type: EventType;
  /** For DELETE: key plus modRevision of the deletion, the rest zero (as etcd). */
  kv: KeyValue;
  prevKv?: KeyValue;
}

/** The events of one applied revision, in order. */
export interface RevisionEvents {
  revision: number;
  events: WatchEvent[];
}

export interface LeaseInfo {
  id: string;
  /** Granted TTL in seconds. */
  ttl: number;
  keys: Uint8Array[];
  /** Node name of the credential that granted it (absent for leases granted before owners). */
  owner?: string;
}

/** The replicated, deterministic key-value state machine (implemented in state_machine.ts). */
export interface KvStateMachine {
  /** The Raft index of the last applied entry (0 before any). */
  readonly appliedIndex: number;
  readonly revision: number;
  readonly compactRevision: number;
  /** Applies one committed command at `index` (> appliedIndex). Never throws for bad input:
   *  returns ApplyError. A repeated requestId returns the remembered result. */
  apply(index: number, cmd: Command): ApplyResult;
  /** Marks `index` applied without a command (Raft no-op, configuration change). */
  skip(index: number): void;
  /** Deterministic byte image of everything, including appliedIndex and dedup memory. */
  snapshot(): Uint8Array;
  /** Replaces this state machine's content with a snapshot's (watch listeners are kept and
   *  told through `onRestore`). */
  restore(bytes: Uint8Array): void;
  /** Reads; throws StoreError "compacted" / "futureRevision". */
  range(req: RangeRequest): RangeResult;
  /** A txn without writes, against the current state (no revision change). */
  readTxn(req: TxnRequest): TxnResult;
  /** Leases as the state machine knows them (granted TTL and attached keys), by id. */
  leases(): LeaseInfo[];
  /** Just the ids of the existing leases (cheap; for the lessor). */
  leaseIds(): string[];
  /** Roughly how many bytes the kept keys, values and history take (for status reports). */
  sizeEstimate(): number;
  lease(id: string): LeaseInfo | null;
  /** Events with revision >= from (throws "compacted" if from <= compactRevision). */
  eventsSince(from: number): RevisionEvents[];
  /** Called after each applied revision that produced events. Returns an unsubscribe. */
  subscribe(listener: (batch: RevisionEvents) => void): () => void;
  /** Called after `restore` (watchers must resynchronise from eventsSince). */
  onRestore(listener: () => void): () => void;
}

export interface Kv {
  /** Replicate + apply; resolves with the state machine's result. Rejects with StoreError code
   *  "unavailable" when the outcome is unknown (may still commit), or the state machine's own
   *  StoreError (unwrapApplyResult) when it refused the command. */
  write(cmd: Command): Promise<unknown>;
  /** Resolves once the local state machine has applied at least the leader's commit index as
   *  confirmed by ReadIndex (linearizable). Rejects "unavailable" when no leader. */
  readBarrier(): Promise<void>;
  /** The local, applied state machine (reads, watch registration). */
  readonly sm: KvStateMachine;
  /** Leader-side lease liveness (not replicated, like etcd): refresh the deadline and return
   *  the granted TTL. Rejects "leaseNotFound". A follower forwards to the leader. */
  leaseKeepAlive(id: string): Promise<{ ttl: number }>;
  /** Remaining TTL (seconds) and granted TTL; null when the lease does not exist. */
  leaseTimeToLive(id: string): Promise<{ ttl: number; grantedTtl: number } | null>;
  /** Member/cluster info for response headers (decimal strings). */
  header(): { clusterId: string; memberId: string; raftTerm: string };
  /** What this member knows of the cluster's Raft state (decimal strings; leader "0": none). */
  raftStatus(): { leader: string; commitIndex: string };
}

// ---------------------------------------------------------------------------------------------
// Command codec for the Raft log: JSON with byte strings as base64. Deterministic.

function toPlain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { $b: b64(v) };
  if (Array.isArray(v)) return v.map(toPlain);
  if (typeof v === "object" && v !== null) {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) o[k] = toPlain(x);
    }
    return o;
  }
  return v;
}

function fromPlain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map((x) => fromPlain(x));
  if (typeof v === "object" && v !== null) {
    const rec = v as Record<string, unknown>;
    if (typeof rec.$b === "string" && Object.keys(rec).length === 1) return unb64(rec.$b);
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(rec)) o[k] = fromPlain(x);
    return o;
  }
  return v;
}

/** Encodes a Command for a Raft log entry. */
export function encodeCommand(cmd: Command): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(toPlain(cmd)));
}

/** Decodes a Raft log entry made by encodeCommand. Throws on anything else. */
export function decodeCommand(data: Uint8Array): Command {
  const v = fromPlain(JSON.parse(new TextDecoder().decode(data)));
  if (typeof v !== "object" || v === null || typeof (v as { op?: unknown }).op !== "string") {
    throw new Error("store: a log entry is not a store command (no op field)");
  }
  return v as Command;
}

/** Plain-data form of any result (Uint8Array as {$b: base64}), e.g. to forward a result. */
export function encodeResult(r: unknown): string {
  return JSON.stringify(toPlain(r));
}

export function decodeResult(s: string): unknown {
  return fromPlain(JSON.parse(s));
}
