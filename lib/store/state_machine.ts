// The store's replicated state machine: an MVCC key-value store with etcd's semantics (one global
// revision, per-key create/mod revision and version, history until compaction), leases (granted
// TTL and attached keys; deadlines live in the leader's lessor, not here), a history of events
// for watches, and memory of recent request ids so a re-sent command is applied at most once:
// each command names the last log index at which it may apply (`expires`); until then its id is
// remembered and a copy answered with the first result, after it a copy is refused. Both rules
// depend only on the log, so every member decides alike, and the ids remembered are bounded by
// the window (MAX_DEDUPE_WINDOW entries), whatever the load.
//
// Pure and deterministic: no clocks, randomness or I/O. The same commands at the same indexes
// give the same state and the same snapshot bytes on every member.

import {
  type ApplyError,
  type ApplyResult,
  type Command,
  type Compare,
  decodeResult,
  type DeleteRangeRequest,
  type DeleteRangeResult,
  encodeResult,
  type KeyValue,
  type KvStateMachine,
  type LeaseInfo,
  type PutRequest,
  type PutResult,
  type RangeRequest,
  type RangeResult,
  type RequestOp,
  type ResponseOp,
  type RevisionEvents,
  type TxnRequest,
  type TxnResult,
  type WatchEvent,
} from "./kv.ts";
import { ETCD_MESSAGES, StoreError } from "./errors.ts";
import { bytesEqual, compareBytes, fromBin, inRange, lowerBound, toBin } from "./mvcc_keys.ts";
import { checkPut, checkTxn } from "./mvcc_validate.ts";
import { decodeHistory, encodeHistory, type HistoryRecord } from "./history_codec.ts";

/** Leases shorter than this are granted this long (etcd's minimum with default timings). */
export const MIN_LEASE_TTL = 2;
/** etcd's MaxLeaseTTL. */
export const MAX_LEASE_TTL = 9_000_000_000;
/** The longest window a command may name (`expires` minus the index it is applied at): what
 *  bounds the request ids remembered. */
export const MAX_DEDUPE_WINDOW = 100_000;
/** The window members stamp on the writes they take (and assume for unstamped commands). */
export const DEFAULT_DEDUPE_WINDOW = 50_000;

/** How many recent results are kept to answer a copy with. Only a member that missed the first
 *  application (it installed a snapshot meanwhile) can still be waiting for one; the others
 *  answered their waiter then. Not part of the replicated state or of snapshots. */
const RESULTS_KEPT = 4096;

/** One version of one key; `tomb` marks a deletion at `mod`; `sub` orders the writes of one
 *  revision (a txn). The snapshot codec writes these records as they are. */
type KeyRecord = HistoryRecord;

interface Lease {
  ttl: number;
  keys: Set<string>;
  /** The node name of the credential that granted it (authorization; absent: no node's). */
  owner?: string;
}

/** The changes one command (or txn) makes; all writes share revision begin + 1. */
class WriteContext {
  changed = false;
  events: WatchEvent[] = [];
  /** Key and sub-revision of each write, in order. */
  writes: [string, number][] = [];
  constructor(readonly begin: number) {}
  get rev(): number {
    return this.changed ? this.begin + 1 : this.begin;
  }
}

const EMPTY = new Uint8Array(0);

export class MvccStateMachine implements KvStateMachine {
  #appliedIndex = 0;
  #revision = 1; // etcd starts at revision 1 with an empty store
  #compactRevision = 0;
  #keys: string[] = []; // sorted binary keys that have history
  #history = new Map<string, KeyRecord[]>();
  #leases = new Map<string, Lease>();
  /** Revisions that wrote something, ascending, with their writes ([key, sub]) in order. The
   *  events themselves are rebuilt from #history when a watcher replays (see #eventsAt). */
  #revs: number[] = [];
  #revWrites = new Map<number, [string, number][]>();
  /** Request id -> the last index at which its command may apply, in the order applied; an
   *  entry is dropped once the applied index passes it. */
  #dedup = new Map<string, number>();
  /** The results of the last RESULTS_KEPT commands with a request id (see RESULTS_KEPT). */
  #results = new Map<string, ApplyResult>();
  #listeners = new Set<(batch: RevisionEvents) => void>();
  /** While a command applies: how to take back each change it made, newest last (so a command
   *  that throws halfway leaves nothing behind), and the event batches to announce once it
   *  succeeded. */
  #undo: (() => void)[] = [];
  #announce: RevisionEvents[] = [];
  #restoreListeners = new Set<() => void>();

  get appliedIndex(): number {
    return this.#appliedIndex;
  }
  get revision(): number {
    return this.#revision;
  }
  get compactRevision(): number {
    return this.#compactRevision;
  }

  // ---------------------------------------------------------------------------------- apply

  apply(index: number, cmd: Command): ApplyResult {
    if (index <= this.#appliedIndex) {
      const seen = cmd.requestId ? this.#results.get(cmd.requestId) : undefined;
      return seen ?? errorResult(
        new StoreError("internal", `store: index ${index} was already applied`),
      );
    }
    this.#appliedIndex = index;
    this.#forgetExpired(index);
    if (!cmd.requestId) return this.#applyWhole(cmd);
    const refused = windowRefusal(index, cmd.expires);
    if (refused) return refused;
    if (this.#dedup.has(cmd.requestId)) {
      // Applied before: never again. The first result if still kept; otherwise the outcome is
      // unknown to whoever could still be waiting (it did apply).
      return this.#results.get(cmd.requestId) ??
        errorResult(new StoreError("unavailable", ETCD_MESSAGES.timeout));
    }
    const result = this.#applyWhole(cmd);
    this.#dedup.set(cmd.requestId, cmd.expires ?? index + DEFAULT_DEDUPE_WINDOW);
    this.#keepResult(cmd.requestId, result);
    return result;
  }

  #keepResult(id: string, result: ApplyResult): void {
    this.#results.set(id, result);
    if (this.#results.size > RESULTS_KEPT) this.#results.delete(this.#results.keys().next().value!);
  }

  /** Drops the ids whose window ended before `index`, oldest first. An id whose window is
   *  longer than an older one's may hold that one back a little; both are gone once the
   *  older one's index is MAX_DEDUPE_WINDOW behind, so at most that many are remembered. */
  #forgetExpired(index: number): void {
    for (const [id, expires] of this.#dedup) {
      if (expires >= index) return;
      this.#dedup.delete(id);
    }
  }

  /** How many request ids can still matter (their window has not ended). */
  rememberedRequests(): number {
    let n = 0;
    for (const expires of this.#dedup.values()) if (expires > this.#appliedIndex) n++;
    return n;
  }

  /** Applies cmd completely or not at all. A bug must not become a poison pill that stops every
   *  member at this entry forever: a throw is answered as an error, the same way on every
   *  member, after every change the command had made is taken back. */
  #applyWhole(cmd: Command): ApplyResult {
    this.#undo = [];
    this.#announce = [];
    let result: ApplyResult;
    try {
      result = this.#applyCommand(cmd);
    } catch (e) {
      for (let i = this.#undo.length - 1; i >= 0; i--) this.#undo[i]();
      this.#announce = [];
      result = errorResult(
        e instanceof StoreError
          ? e
          : new StoreError("internal", `store: applying ${cmd.op} failed: ${String(e)}`),
      );
    }
    this.#undo = [];
    const batches = this.#announce;
    this.#announce = [];
    for (const batch of batches) for (const l of [...this.#listeners]) l(batch);
    return result;
  }

  /** Adds k to (or, with add false, removes it from) a lease's keys, undoably. */
  #leaseKey(id: string, k: string, add: boolean): void {
    const keys = this.#leases.get(id)?.keys;
    if (!keys || keys.has(k) === add) return;
    if (add) {
      keys.add(k);
      this.#undo.push(() => keys.delete(k));
    } else {
      keys.delete(k);
      this.#undo.push(() => keys.add(k));
    }
  }

  skip(index: number): void {
    if (index > this.#appliedIndex) this.#appliedIndex = index;
  }

  #applyCommand(cmd: Command): ApplyResult {
    switch (cmd.op) {
      case "put": {
        checkPut(cmd);
        // A plain put checks its lease before the key (a put inside a txn the other way round).
        const lease = canonId(cmd.lease);
        if (lease !== "0" && !this.#leases.has(lease)) {
          throw new StoreError("leaseNotFound", ETCD_MESSAGES.leaseNotFound);
        }
        const r = this.#txn({ compare: [], success: [{ put: cmd }], failure: [] });
        return (r.responses[0] as { put: PutResult }).put;
      }
      case "deleteRange": {
        if (cmd.key.length === 0) throw new StoreError("invalidArgument", ETCD_MESSAGES.emptyKey);
        const r = this.#txn({ compare: [], success: [{ deleteRange: cmd }], failure: [] });
        return (r.responses[0] as { deleteRange: DeleteRangeResult }).deleteRange;
      }
      case "txn":
        return this.#txn(cmd);
      case "leaseGrant":
        return this.#leaseGrant(cmd.id, cmd.ttl, cmd.requestId, cmd.owner);
      case "leaseRevoke": {
        if (!this.#leases.has(canonId(cmd.id))) {
          throw new StoreError("leaseNotFound", ETCD_MESSAGES.leaseNotFound);
        }
        return { revision: String(this.#revokeLease(canonId(cmd.id))) };
      }
      case "leaseExpire": {
        const expired: string[] = [];
        for (const raw of cmd.ids) {
          const id = canonId(raw);
          if (!this.#leases.has(id)) continue;
          this.#revokeLease(id);
          expired.push(id);
        }
        return { revision: String(this.#revision), expired };
      }
      case "compact":
        this.#compact(Number(cmd.revision));
        return { revision: String(this.#revision) };
      default:
        throw new StoreError(
          "invalidArgument",
          `store: unknown command op ${JSON.stringify((cmd as { op: unknown }).op)}`,
        );
    }
  }

  // ---------------------------------------------------------------------------------- reads

  range(req: RangeRequest): RangeResult {
    const rev = this.#readRevision(req.revision);
    return this.#rangeAt(req, rev, this.#revision);
  }

  /** A read-only txn evaluated against the current state (no revision change, no events). */
  readTxn(req: TxnRequest): TxnResult {
    const ctx = new WriteContext(this.#revision);
    const r = this.#runTxn(req, ctx, true);
    if (ctx.changed) throw new StoreError("internal", "store: a read-only txn tried to write");
    return r;
  }

  #readRevision(revision: string): number {
    const asked = Number(revision || "0");
    const rev = asked <= 0 ? this.#revision : asked;
    if (rev > this.#revision) {
      throw new StoreError("futureRevision", ETCD_MESSAGES.futureRevision);
    }
    if (rev < this.#compactRevision) throw new StoreError("compacted", ETCD_MESSAGES.compacted);
    return rev;
  }

  #rangeAt(req: RangeRequest, rev: number, headerRev: number): RangeResult {
    const start = toBin(req.key);
    const end = toBin(req.rangeEnd);
    const kvs: KeyValue[] = [];
    let count = 0;
    for (const k of this.#keysIn(start, end)) {
      const rec = this.#at(k, rev);
      if (!rec) continue;
      count++;
      if (req.countOnly) continue;
      if (req.limit > 0 && kvs.length >= req.limit) continue;
      const kv = toKv(k, rec);
      if (req.keysOnly) kv.value = EMPTY;
      kvs.push(kv);
    }
    return {
      revision: String(headerRev),
      kvs,
      more: req.limit > 0 && !req.countOnly && count > req.limit,
      count: String(count),
    };
  }

  *#keysIn(start: string, end: string): Generator<string> {
    if (end === "") {
      if (this.#history.has(start)) yield start;
      return;
    }
    for (let i = lowerBound(this.#keys, start); i < this.#keys.length; i++) {
      const k = this.#keys[i];
      if (!inRange(k, start, end)) return;
      yield k;
    }
  }

  /** The live record of key k at revision rev, or null. */
  #at(k: string, rev: number): KeyRecord | null {
    const recs = this.#history.get(k);
    if (!recs) return null;
    // Records are in (mod, sub) order: the last one with mod <= rev is the state at rev.
    const i = upperBoundMod(recs, rev) - 1;
    return i < 0 || recs[i].tomb ? null : recs[i];
  }

  #current(k: string): KeyRecord | null {
    const recs = this.#history.get(k);
    if (!recs || recs.length === 0) return null;
    const last = recs[recs.length - 1];
    return last.tomb ? null : last;
  }

  leases(): LeaseInfo[] {
    return [...this.#leases.keys()].sort(compareIds).map((id) => this.lease(id)!);
  }

  sizeEstimate(): number {
    let n = 0;
    for (const [k, recs] of this.#history) {
      for (const r of recs) n += k.length + r.value.length + 32;
    }
    n += this.#revs.length * 48;
    return n;
  }

  leaseIds(): string[] {
    return [...this.#leases.keys()];
  }

  lease(id: string): LeaseInfo | null {
    const l = this.#leases.get(canonId(id));
    if (!l) return null;
    const info: LeaseInfo = { id: canonId(id), ttl: l.ttl, keys: [...l.keys].sort().map(fromBin) };
    if (l.owner) info.owner = l.owner;
    return info;
  }

  eventsSince(from: number): RevisionEvents[] {
    if (from < this.#compactRevision) {
      throw new StoreError("compacted", ETCD_MESSAGES.compacted);
    }
    const out: RevisionEvents[] = [];
    for (let i = lowerBound(this.#revs, from); i < this.#revs.length; i++) {
      const revision = this.#revs[i];
      const events = this.#eventsAt(revision);
      if (events.length) out.push({ revision, events });
    }
    return out;
  }

  /** The events of one revision as etcd reports them: prev_kv is the key at revision - 1 and
   *  absent for a put that creates the key. Writes compaction removed are left out. */
  #eventsAt(revision: number): WatchEvent[] {
    const events: WatchEvent[] = [];
    for (const [k, sub] of this.#revWrites.get(revision) ?? []) {
      const recs = this.#history.get(k);
      let rec: KeyRecord | undefined;
      if (recs) {
        for (let i = upperBoundMod(recs, revision) - 1; i >= 0 && recs[i].mod === revision; i--) {
          if (recs[i].sub === sub) rec = recs[i];
        }
      }
      if (!rec) continue;
      const event: WatchEvent = rec.tomb
        ? { type: "DELETE", kv: tombKv(k, revision) }
        : { type: "PUT", kv: toKv(k, rec) };
      const prev = rec.tomb || rec.create !== rec.mod ? this.#at(k, revision - 1) : null;
      if (prev) event.prevKv = toKv(k, prev);
      events.push(event);
    }
    return events;
  }

  subscribe(listener: (batch: RevisionEvents) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onRestore(listener: () => void): () => void {
    this.#restoreListeners.add(listener);
    return () => this.#restoreListeners.delete(listener);
  }

  // ---------------------------------------------------------------------------------- txn

  #txn(req: TxnRequest): TxnResult {
    checkTxn(req);
    const ctx = new WriteContext(this.#revision);
    const result = this.#runTxn(req, ctx, false);
    this.#commit(ctx);
    return result;
  }

  /** etcd's order: decide every branch against the state before the txn, validate the chosen
   *  path, then execute it. */
  #runTxn(req: TxnRequest, ctx: WriteContext, readOnly: boolean): TxnResult {
    const path = this.#choosePath(req);
    this.#validatePath(req, path);
    const responses = this.#execute(req, path, ctx, readOnly);
    return { revision: String(ctx.rev), succeeded: path.succeeded, responses };
  }

  #choosePath(req: TxnRequest): TxnPath {
    const succeeded = req.compare.every((c) => this.#compare(c));
    const ops = succeeded ? req.success : req.failure;
    const nested: (TxnPath | null)[] = ops.map((op) =>
      "txn" in op ? this.#choosePath(op.txn) : null
    );
    return { succeeded, nested };
  }

  /** etcd's checkRequests: every put on the chosen path first, then every range. */
  #validatePath(req: TxnRequest, path: TxnPath): void {
    const deleted: [string, string][] = [];
    walkPath(req, path, (op) => {
      if ("deleteRange" in op) {
        deleted.push([toBin(op.deleteRange.key), toBin(op.deleteRange.rangeEnd)]);
      } else if ("put" in op) {
        this.#checkPutTarget(op.put);
        // etcd would accept this and then panic in the middle of applying (an ignore_* put of
        // a key an earlier delete of the same txn removed): refuse it whole instead.
        const k = toBin(op.put.key);
        if (
          (op.put.ignoreValue || op.put.ignoreLease) &&
          deleted.some(([s, e]) => inRange(k, s, e))
        ) throw new StoreError("invalidArgument", ETCD_MESSAGES.keyNotFound);
      }
    });
    walkPath(req, path, (op) => {
      if ("range" in op) this.#readRevision(op.range.revision);
    });
  }

  /** etcd's checkPut, in its order: the key must exist for ignore_*, then the lease. */
  #checkPutTarget(put: PutRequest): void {
    if ((put.ignoreValue || put.ignoreLease) && !this.#current(toBin(put.key))) {
      throw new StoreError("invalidArgument", ETCD_MESSAGES.keyNotFound);
    }
    const lease = canonId(put.lease);
    if (lease !== "0" && !this.#leases.has(lease)) {
      throw new StoreError("leaseNotFound", ETCD_MESSAGES.leaseNotFound);
    }
  }

  #execute(req: TxnRequest, path: TxnPath, ctx: WriteContext, readOnly: boolean): ResponseOp[] {
    const ops = path.succeeded ? req.success : req.failure;
    return ops.map((op: RequestOp, i): ResponseOp => {
      if ("range" in op) {
        const rev = Number(op.range.revision || "0") > 0 ? Number(op.range.revision) : ctx.rev;
        return { range: this.#rangeAt(op.range, rev, ctx.rev) };
      }
      if ("put" in op) {
        if (readOnly) throw new StoreError("internal", "store: write in a read-only txn");
        return { put: this.#put(op.put, ctx) };
      }
      if ("deleteRange" in op) {
        if (readOnly) throw new StoreError("internal", "store: write in a read-only txn");
        return { deleteRange: this.#deleteRange(op.deleteRange, ctx) };
      }
      const inner = path.nested[i]!;
      const responses = this.#execute(op.txn, inner, ctx, readOnly);
      // etcd leaves a nested txn's header empty.
      return { txn: { revision: "0", succeeded: inner.succeeded, responses } };
    });
  }

  #put(put: PutRequest, ctx: WriteContext): PutResult {
    const k = toBin(put.key);
    const prev = this.#current(k);
    const rev = ctx.begin + 1;
    const value = put.ignoreValue ? prev!.value : put.value;
    const lease = put.ignoreLease ? prev!.lease : canonId(put.lease);
    const rec: KeyRecord = {
      mod: rev,
      sub: ctx.writes.length,
      create: prev ? prev.create : rev,
      ver: prev ? prev.ver + 1 : 1,
      value,
      lease,
      tomb: false,
    };
    this.#append(k, rec, ctx);
    if (prev && prev.lease !== "0") this.#leaseKey(prev.lease, k, false);
    if (lease !== "0") this.#leaseKey(lease, k, true);
    ctx.changed = true;
    const event: WatchEvent = { type: "PUT", kv: toKv(k, rec) };
    // etcd gives a creating PUT no prev_kv, even when the txn deleted an older key first.
    const before = rec.create === rev ? undefined : this.#eventPrev(k, ctx);
    if (before) event.prevKv = before;
    ctx.events.push(event);
    const result: PutResult = { revision: String(ctx.rev) };
    if (put.prevKv && prev) result.prevKv = toKv(k, prev);
    return result;
  }

  #deleteRange(del: DeleteRangeRequest, ctx: WriteContext): DeleteRangeResult {
    const start = toBin(del.key);
    const end = toBin(del.rangeEnd);
    const prevKvs: KeyValue[] = [];
    let deleted = 0;
    for (const k of [...this.#keysIn(start, end)]) {
      const prev = this.#current(k);
      if (!prev) continue;
      this.#deleteKey(k, prev, ctx);
      deleted++;
      if (del.prevKv) prevKvs.push(toKv(k, prev));
    }
    return { revision: String(ctx.rev), deleted: String(deleted), prevKvs };
  }

  #deleteKey(k: string, prev: KeyRecord, ctx: WriteContext): void {
    const rev = ctx.begin + 1;
    const sub = ctx.writes.length;
    this.#append(
      k,
      { mod: rev, sub, create: 0, ver: 0, value: EMPTY, lease: "0", tomb: true },
      ctx,
    );
    if (prev.lease !== "0") this.#leaseKey(prev.lease, k, false);
    ctx.changed = true;
    const event: WatchEvent = { type: "DELETE", kv: tombKv(k, rev) };
    const before = this.#eventPrev(k, ctx);
    if (before) event.prevKv = before;
    ctx.events.push(event);
  }

  /** An event's prev_kv is the key as it was before the whole txn (etcd reads it at revision
   *  - 1), which differs from the txn's own view when the txn already wrote the key. */
  #eventPrev(k: string, ctx: WriteContext): KeyValue | undefined {
    const before = this.#at(k, ctx.begin);
    return before ? toKv(k, before) : undefined;
  }

  #append(k: string, rec: KeyRecord, ctx: WriteContext): void {
    ctx.writes.push([k, rec.sub]);
    let recs = this.#history.get(k);
    if (!recs) {
      recs = [];
      this.#history.set(k, recs);
      this.#keys.splice(lowerBound(this.#keys, k), 0, k);
      this.#undo.push(() => {
        this.#history.delete(k);
        this.#keys.splice(lowerBound(this.#keys, k), 1);
      });
    }
    recs.push(rec);
    const added = recs;
    this.#undo.push(() => added.pop());
  }

  #commit(ctx: WriteContext): void {
    if (!ctx.changed) return;
    const before = this.#revision;
    this.#revision = ctx.begin + 1;
    this.#revs.push(this.#revision);
    this.#revWrites.set(this.#revision, ctx.writes);
    this.#undo.push(() => {
      this.#revWrites.delete(this.#revision);
      this.#revs.pop();
      this.#revision = before;
    });
    this.#announce.push({ revision: this.#revision, events: ctx.events });
  }

  /** etcd's applyCompare: every live key in the range must satisfy the compare; no live key
   *  compares as a zero key-value (and a VALUE compare on nothing is false). */
  #compare(c: Compare): boolean {
    const recs: KeyRecord[] = [];
    for (const k of this.#keysIn(toBin(c.key), toBin(c.rangeEnd))) {
      const rec = this.#current(k);
      if (rec) recs.push(rec);
    }
    if (recs.length === 0) return compareRecord(c, null);
    return recs.every((rec) => compareRecord(c, rec));
  }

  // ---------------------------------------------------------------------------------- leases

  #leaseGrant(rawId: string, ttl: number, requestId: string, owner?: string): ApplyResult {
    let id = canonId(rawId);
    if (id === "0") id = this.#chooseLeaseId(requestId);
    if (ttl > MAX_LEASE_TTL) {
      throw new StoreError("leaseTtlTooLarge", ETCD_MESSAGES.leaseTtlTooLarge);
    }
    if (this.#leases.has(id)) throw new StoreError("leaseExists", ETCD_MESSAGES.leaseExists);
    const granted = Math.max(MIN_LEASE_TTL, Math.trunc(ttl));
    this.#leases.set(
      id,
      owner ? { ttl: granted, keys: new Set(), owner } : { ttl: granted, keys: new Set() },
    );
    this.#undo.push(() => this.#leases.delete(id));
    return { revision: String(this.#revision), id, ttl: granted };
  }

  /** A deterministic positive int63 id from the request id (FNV-1a 64), never in use. */
  #chooseLeaseId(seed: string): string {
    let h = 0xcbf29ce484222325n;
    for (let i = 0; i < seed.length; i++) {
      h ^= BigInt(seed.charCodeAt(i));
      h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
    }
    let id = h & 0x7fffffffffffffffn;
    if (id === 0n) id = 1n;
    while (this.#leases.has(String(id))) id = id === 0x7fffffffffffffffn ? 1n : id + 1n;
    return String(id);
  }

  /** Deletes the lease's keys (in key order, one revision) and the lease. Returns the revision. */
  #revokeLease(id: string): number {
    const lease = this.#leases.get(id)!;
    const ctx = new WriteContext(this.#revision);
    for (const k of [...lease.keys].sort()) {
      const prev = this.#current(k);
      if (prev) this.#deleteKey(k, prev, ctx);
    }
    this.#leases.delete(id);
    this.#undo.push(() => this.#leases.set(id, lease));
    this.#commit(ctx);
    return this.#revision;
  }

  // ---------------------------------------------------------------------------------- compaction

  #compact(rev: number): void {
    if (rev > this.#revision) throw new StoreError("futureRevision", ETCD_MESSAGES.futureRevision);
    if (!(rev > this.#compactRevision)) {
      throw new StoreError("compacted", ETCD_MESSAGES.compacted);
    }
    // The compacted state is built aside and swapped in at once (one undo step).
    const keep: string[] = [];
    const history = new Map<string, KeyRecord[]>();
    for (const k of this.#keys) {
      const recs = this.#history.get(k)!;
      // Keep the newest record at or below rev (unless it is a deletion) and everything newer.
      let cut = 0;
      for (let i = recs.length - 1; i >= 0; i--) {
        if (recs[i].mod <= rev) {
          cut = recs[i].tomb ? i + 1 : i;
          break;
        }
      }
      const rest = cut === 0 ? recs : recs.slice(cut);
      if (rest.length > 0) {
        history.set(k, rest);
        keep.push(k);
      }
    }
    // History before rev is gone; writes at rev itself stay listed, and #eventsAt skips the
    // ones compaction removed (as in etcd: deletions at rev, and puts at rev of keys deleted
    // later in that same revision).
    const first = lowerBound(this.#revs, rev);
    const revWrites = new Map(this.#revWrites);
    for (const r of this.#revs.slice(0, first)) revWrites.delete(r);
    const was = [this.#compactRevision, this.#keys, this.#history, this.#revs, this.#revWrites];
    this.#undo.push(() => {
      [this.#compactRevision, this.#keys, this.#history, this.#revs, this.#revWrites] = was as [
        number,
        string[],
        Map<string, KeyRecord[]>,
        number[],
        Map<number, [string, number][]>,
      ];
    });
    this.#compactRevision = rev;
    this.#keys = keep;
    this.#history = history;
    this.#revs = this.#revs.slice(first);
    this.#revWrites = revWrites;
  }

  // ---------------------------------------------------------------------------------- snapshot

  /** The whole state: a small JSON header (revisions, leases, recent results) and the key
   *  history in history_codec's binary form (most of the bytes are values: no base64, no JSON). */
  snapshot(): Uint8Array {
    const header: SnapshotHeader = {
      format: 3,
      appliedIndex: this.#appliedIndex,
      revision: this.#revision,
      compactRevision: this.#compactRevision,
      leases: [...this.#leases.entries()].sort((a, b) => compareIds(a[0], b[0])).map((
        [id, l],
      ) => leaseTuple(id, l)),
      requests: this.#requestsToKeep(),
    };
    const head = new TextEncoder().encode(encodeResult(header));
    const history = encodeHistory(this.#keys.map((k) => [k, this.#history.get(k)!]));
    const out = new Uint8Array(SNAPSHOT_MAGIC.length + 4 + head.length + history.length);
    out.set(SNAPSHOT_MAGIC, 0);
    new DataView(out.buffer).setUint32(SNAPSHOT_MAGIC.length, head.length, true);
    out.set(head, SNAPSHOT_MAGIC.length + 4);
    out.set(history, SNAPSHOT_MAGIC.length + 4 + head.length);
    return out;
  }

  /** The request ids that can still matter (window not ended), in the order applied. */
  #requestsToKeep(): [string[], number[]] {
    const ids: string[] = [];
    const until: number[] = [];
    for (const [id, expires] of this.#dedup) {
      if (expires <= this.#appliedIndex) continue;
      ids.push(id);
      until.push(expires);
    }
    return [ids, until];
  }

  restore(bytes: Uint8Array): void {
    const image = decodeSnapshot(bytes);
    this.#appliedIndex = image.appliedIndex;
    this.#revision = image.revision;
    this.#compactRevision = image.compactRevision;
    this.#keys = image.keys.map(([k]) => k);
    this.#history = new Map(image.keys);
    this.#leases = new Map(
      image.leases.map(([id, ttl, keys, owner]) => [
        id,
        owner
          ? { ttl, keys: new Set(keys.map(toBin)), owner }
          : { ttl, keys: new Set(keys.map(toBin)) },
      ]),
    );
    // Rebuild the per-revision write lists from the history.
    const writes: [number, number, string][] = [];
    for (const [k, recs] of this.#history) for (const r of recs) writes.push([r.mod, r.sub, k]);
    writes.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    this.#revs = [];
    this.#revWrites = new Map();
    for (const [mod, sub, k] of writes) {
      let list = this.#revWrites.get(mod);
      if (!list) {
        list = [];
        this.#revWrites.set(mod, list);
        this.#revs.push(mod);
      }
      list.push([k, sub]);
    }
    this.#dedup = new Map();
    this.#results = new Map();
    // An earlier version's snapshot has ids (with results) but no windows: the default window
    // from the snapshot's index, the same on every member restoring it.
    for (const [id, result] of image.dedup ?? []) {
      this.#dedup.set(id, image.appliedIndex + DEFAULT_DEDUPE_WINDOW);
      this.#keepResult(id, result);
    }
    const [ids, until] = image.requests ?? [[], []];
    ids.forEach((id, i) => this.#dedup.set(id, until[i]));
    for (const l of [...this.#restoreListeners]) l();
  }

  static restore(bytes: Uint8Array): MvccStateMachine {
    const sm = new MvccStateMachine();
    sm.restore(bytes);
    return sm;
  }
}

interface TxnPath {
  succeeded: boolean;
  nested: (TxnPath | null)[];
}

/** Calls fn for each non-txn operation on the chosen path, in execution order. */
function walkPath(req: TxnRequest, path: TxnPath, fn: (op: RequestOp) => void): void {
  const ops = path.succeeded ? req.success : req.failure;
  ops.forEach((op, i) => "txn" in op ? walkPath(op.txn, path.nested[i]!, fn) : fn(op));
}

/** The JSON part of a format-3 snapshot (the key history follows it in binary). */
interface SnapshotHeader {
  format: 3;
  appliedIndex: number;
  revision: number;
  compactRevision: number;
  /** [id, ttl, keys, owner]: the owner is absent in snapshots written before owners existed. */
  leases: LeaseTuple[];
  /** Request ids whose window has not ended, in the order applied, and each one's last index
   *  (two lists: compact for the tens of thousands a busy window holds). No results. */
  requests?: [string[], number[]];
  /** Written by earlier versions instead of `requests`: ids with results, without a window. */
  dedup?: [string, ApplyResult][];
}

/** Whether a command's window refuses it at `index`: it ended (a late copy of a write that was
 *  applied before, or never will be), or it is longer than any member may stamp. */
function windowRefusal(index: number, expires: number | undefined): ApplyError | null {
  if (expires === undefined) return null;
  if (!Number.isSafeInteger(expires) || expires - index > MAX_DEDUPE_WINDOW) {
    return errorResult(
      new StoreError("invalidArgument", `store: request window ${expires} is not valid here`),
    );
  }
  if (index > expires) return errorResult(new StoreError("unavailable", ETCD_MESSAGES.timeout));
  return null;
}

type LeaseTuple = [string, number, Uint8Array[]] | [string, number, Uint8Array[], string];

function leaseTuple(id: string, l: Lease): LeaseTuple {
  const keys = [...l.keys].sort().map(fromBin);
  return l.owner ? [id, l.ttl, keys, l.owner] : [id, l.ttl, keys];
}

/** A snapshot decoded, whichever format it was written in. */
interface SnapshotImage extends Omit<SnapshotHeader, "format"> {
  keys: [string, KeyRecord[]][];
}

/** "TWS3": a format-3 snapshot (format 2 was one JSON document, starting with "{"). */
const SNAPSHOT_MAGIC = new Uint8Array([0x54, 0x57, 0x53, 0x33]);

export function decodeSnapshot(bytes: Uint8Array): SnapshotImage {
  if (SNAPSHOT_MAGIC.every((b, i) => bytes[i] === b)) {
    const at = SNAPSHOT_MAGIC.length;
    const headLen = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      .getUint32(at, true);
    const head = decodeResult(
      new TextDecoder().decode(bytes.subarray(at + 4, at + 4 + headLen)),
    ) as SnapshotHeader;
    const { format: _, ...rest } = head;
    return { ...rest, keys: decodeHistory(bytes.subarray(at + 4 + headLen)) };
  }
  const v2 = decodeResult(new TextDecoder().decode(bytes)) as SnapshotImageV2;
  if (v2.format !== 2) {
    throw new Error(`store: snapshot format ${v2.format} is not one this version reads`);
  }
  const { format: _, keys, ...rest } = v2;
  return { ...rest, keys: keys.map(([k, recs]) => [toBin(k), recs.map(fromTuple)]) };
}

/** [mod, sub, create, version, lease, tomb (0/1), value] (format 2, read only) */
type RecordTuple = [number, number, number, number, string, number, Uint8Array];

/** Format 2: the whole state as one JSON document (written before format 3; still read). */
interface SnapshotImageV2 {
  format: 2;
  appliedIndex: number;
  revision: number;
  compactRevision: number;
  keys: [Uint8Array, RecordTuple[]][];
  leases: [string, number, Uint8Array[]][];
  dedup: [string, ApplyResult][];
}

function fromTuple([mod, sub, create, ver, lease, tomb, value]: RecordTuple): KeyRecord {
  return { mod, sub, create, ver, lease, tomb: tomb === 1, value };
}

function tombKv(k: string, rev: number): KeyValue {
  return {
    key: fromBin(k),
    value: EMPTY,
    createRevision: "0",
    modRevision: String(rev),
    version: "0",
    lease: "0",
  };
}

/** Index of the first record with mod > rev (records sorted by mod). */
function upperBoundMod(recs: KeyRecord[], rev: number): number {
  let lo = 0;
  let hi = recs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (recs[mid].mod <= rev) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function errorResult(e: StoreError): ApplyError {
  return { error: { code: e.code, message: e.message } };
}

function toKv(k: string, rec: KeyRecord): KeyValue {
  return {
    key: fromBin(k),
    value: rec.value,
    createRevision: String(rec.create),
    modRevision: String(rec.mod),
    version: String(rec.ver),
    lease: rec.lease,
  };
}

/** Lease ids as canonical decimal strings ("" and "-0" become "0"). */
export function canonId(id: string): string {
  if (!id) return "0";
  try {
    return BigInt(id).toString();
  } catch {
    return id;
  }
}

function compareIds(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

function compareRecord(c: Compare, rec: KeyRecord | null): boolean {
  let cmp: number;
  if (c.target === "VALUE") {
    if (!rec) return false;
    cmp = compareBytes(rec.value, c.value ?? EMPTY);
    if (c.result === "EQUAL" || c.result === "NOT_EQUAL") {
      const eq = bytesEqual(rec.value, c.value ?? EMPTY);
      return c.result === "EQUAL" ? eq : !eq;
    }
  } else {
    const have = rec
      ? BigInt(
        c.target === "VERSION"
          ? rec.ver
          : c.target === "CREATE"
          ? rec.create
          : c.target === "MOD"
          ? rec.mod
          : rec.lease,
      )
      : 0n;
    const want = BigInt(c.number || "0");
    cmp = have < want ? -1 : have > want ? 1 : 0;
  }
  switch (c.result) {
    case "EQUAL":
      return cmp === 0;
    case "NOT_EQUAL":
      return cmp !== 0;
    case "GREATER":
      return cmp > 0;
    case "LESS":
      return cmp < 0;
  }
}
