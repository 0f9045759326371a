// Kv over a Raft RawNode: the ready loop of one store member.
//
// With asynchronous Raft writes (RaftKvOptions.asyncStorageWrites, or TWILL_RAFT_ASYNC_WRITES=1)
// a Ready's save runs alongside sending and applying (handleReadyAsync), and the leader commits
// on followers' durable copies without waiting for its own fdatasync. It is not the default: on
// scripts/bench-store.ts it costs more member CPU per put than the loop below (a Ready, an append
// to each follower and a save per proposal, instead of one per fdatasync window). By default:
// Each Ready is handled in order: persist (snapshot, entries, hard state; one sync) → send the
// messages → apply the snapshot and the committed entries to the state machine (configuration
// changes through applyConfChange) → advance. Two exceptions keep fsyncs off a write's critical
// path: a leader sends before its own save when that is safe (maySendBeforeSave), and committed
// entries that were durable here before the Ready are applied before its save
// (applyDurableCommitted), so an acknowledgement never waits for the fsync of later entries.
// Time comes in through tick(), driven by the caller's timer (no clock or timer in here besides
// the injected ones).
//
// Writes are proposed on whichever member receives them; a follower forwards the proposal to the
// leader itself (a MsgProp over the peer transport, as Raft would, without waiting for its ready
// loop). The write resolves when the entry carrying its
// requestId is applied locally. After a leader change, every pending write is proposed again,
// and a follower forwards a write again when it has not applied after two election timeouts.
// Each write is stamped once, when it is taken, with the last log index at which it may apply
// (this member's commit index plus dedupeWindow); every copy carries the same stamp, and the state
// machine remembers the requestId until then and refuses a copy after it, so a write applies at
// most once however many copies are in flight. A write still pending after writeTimeoutMs rejects
// "unavailable": its outcome is unknown.
//
// Linearizable reads: a batch of readBarrier() calls shares one ReadIndex request; each resolves
// when the local state machine has applied the index the leader confirmed.
import { LEADER_CHANGES, STORE_COMMIT } from "../metrics.ts";
import { RawNode } from "../raft/rawnode.ts";
import { decodeConfChange } from "../raft/confchange_codec.ts";
import { newMessage } from "../raft/util.ts";
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  RandInt,
  ReadState,
  Ready,
  Snapshot,
  SoftState,
  Status,
} from "../raft/types.ts";
import { RaftError } from "../raft/types.ts";
import {
  type Command,
  decodeCommand,
  encodeCommand,
  type Kv,
  type KvStateMachine,
  unwrapApplyResult,
} from "./kv.ts";
import { ETCD_MESSAGES, StoreError } from "./errors.ts";
import { compactionDue, DEFAULT_RETAIN_REVISIONS } from "./auto_compactor.ts";
import { DEFAULT_DEDUPE_WINDOW, MAX_DEDUPE_WINDOW } from "./state_machine.ts";
import type { LogStore } from "./member/log_store.ts";
import { type ConfChangeContext, encodeConfContext, MemberTable } from "./member/members.ts";
import { decodeSnapshotData, encodeSnapshotData } from "./member/snapshot_envelope.ts";
import { stepRefusal } from "./member/step_guard.ts";
import type { PeerSink } from "./member/transport.ts";
import type { Logger } from "../log.ts";
import { silentLogger } from "../log.ts";

/** Leader-side lease deadlines (store-api's lessor, adapted). */
export interface LeaderLessor {
  /** This member became leader: every lease gets a fresh full TTL. */
  promote(now: number): void;
  /** Refreshes a lease; returns its granted TTL in seconds, or null if there is no such lease. */
  keepAlive(id: string, now: number): number | null;
  /** Leases whose deadline passed. */
  expired(now: number): string[];
  /** Seconds left, or null if there is no such lease. */
  ttlLeft(id: string, now: number): number | null;
}

/** How a follower asks the leader to do leader-only work (lease liveness). */
export interface LeaderRpc {
  keepAlive(leader: NodeId, id: string): Promise<{ ttl: number }>;
  timeToLive(leader: NodeId, id: string): Promise<{ ttl: number; grantedTtl: number } | null>;
}

export interface RaftKvOptions {
  id: NodeId;
  clusterId: string;
  storage: LogStore;
  /** The state machine, already restored from the storage's snapshot (if any). */
  sm: KvStateMachine;
  members: MemberTable;
  /** Index the state machine has applied (the storage snapshot's index on restart). */
  applied: number;
  rand: RandInt;
  now: () => number;
  lessor: LeaderLessor;
  leaderRpc?: LeaderRpc;
  /** Election timeout in ticks; the daemon's --election-ticks flag is where its value is chosen. */
  electionTick: number;
  heartbeatTick?: number;
  /** Milliseconds per tick, used to turn timeouts into ticks. */
  tickMs: number;
  writeTimeoutMs?: number;
  readTimeoutMs?: number;
  snapshotCount?: number;
  /** How many log entries after this member's commit index a write it takes may still apply
   *  (default DEFAULT_DEDUPE_WINDOW, at most MAX_DEDUPE_WINDOW); a copy later than that is
   *  refused. */
  dedupeWindow?: number;
  /** Entries kept behind a snapshot for slow followers. */
  snapshotCatchUpEntries?: number;
  /** MVCC revisions of history the leader keeps (etcd's revision-mode auto-compaction; it
   *  proposes a compact once twice this many have piled up). 0: never compact. */
  retainRevisions?: number;
  logger?: Logger;
  /** Called after a configuration change is applied (to update the transport, persist, log). */
  onConfChange?: (cc: ConfChange, conf: ConfState, members: MemberTable) => void;
  /** Called when the member table is replaced by a snapshot. */
  onMembersRestored?: (members: MemberTable) => void;
  /** Called once when the member cannot go on (broken invariant, storage failure). */
  onFatal?: (e: Error) => void;
  /** Called when the leader changes (0: no leader known). */
  onLeaderChange?: (lead: NodeId, term: number) => void;
  /**
   * Write each Ready in the background (Raft's asyncStorageWrites): the leader replicates while
   * its own fdatasync runs. Default false, or true when TWILL_RAFT_ASYNC_WRITES=1 is in the
   * environment (a switch for comparisons; see the file comment for why it is off).
   */
  asyncStorageWrites?: boolean;
}

function asyncWritesFromEnv(): boolean {
  try {
    return Deno.env.get("TWILL_RAFT_ASYNC_WRITES") === "1";
  } catch {
    return false; // no permission to read the environment: the default
  }
}

interface PendingWrite {
  requestId: string;
  data: Uint8Array;
  resolve(r: unknown): void;
  reject(e: Error): void;
  deadline: number;
  proposedTerm: number;
  proposedAtTick: number;
  proposed: boolean;
}

interface ReadBatch {
  ctx: string;
  waiters: { resolve(): void; reject(e: Error): void; deadline: number }[];
  index?: number;
  issuedAtTick: number;
}

interface AppliedWaiter {
  index: number;
  resolve(): void;
  /** Set for a wait that gives up ("request timed out") at `deadline`. */
  reject?(e: Error): void;
  deadline?: number;
}

interface PendingConfChange {
  cc: ConfChange;
  resolve(): void;
  reject(e: Error): void;
  deadline: number;
}

/**
 * What makes this start's ReadIndex contexts differ from every earlier start's (as etcd seeds its
 * request ids with the time): a read answer still in flight for a previous incarnation must never
 * satisfy a new read with an older index. The clock alone could repeat after a fast restart (or a
 * clock step back), so 64 random bits go with it.
 */
function readCtxSeed(now: number): string {
  const r = crypto.getRandomValues(new Uint32Array(2));
  return `${Math.trunc(now).toString(36)}.${r[0].toString(36)}${r[1].toString(36)}`;
}

function unavailable(message: string): StoreError {
  return new StoreError("unavailable", message);
}

export class RaftKv implements Kv {
  readonly sm: KvStateMachine;
  readonly id: NodeId;
  readonly clusterId: string;
  readonly members: MemberTable;
  private readonly node: RawNode;
  private readonly storage: LogStore;
  private readonly opts: RaftKvOptions;
  private readonly log: Logger;
  private transport: PeerSink = { send: () => {} };
  private looping = false;
  private stopped = false;
  private lead: NodeId = 0;
  private term = 0;
  private role: SoftState["role"] = "follower";
  private applied: number;
  private snapshotIndex: number;
  private conf: ConfState;
  private readonly pending = new Map<string, PendingWrite>();
  /** Read contexts are `${id}:${readCtxSeed}:${n}`: the seed differs per start (see readCtxSeed). */
  private readonly readCtxSeed: string;
  private nextReadCtx = 1;
  private openBatch: ReadBatch | undefined;
  private readonly readBatches = new Map<string, ReadBatch>();
  private pendingConf: PendingConfChange | undefined;
  /** Set by the Raft logger while a configuration change is refused (see confRefusal). */
  private refusedConfChange: string | undefined;
  private tickCount = 0;
  private forceSnapshot = false;
  private expiring = false;
  private compacting = false;
  private loopError: Error | undefined;
  private readonly appliedWaiters: AppliedWaiter[] = [];
  /** The hard state last handed to storage.save (term and vote must be durable before votes). */
  private savedHardState: HardState;
  /** Raft's asyncStorageWrites (RaftKvOptions.asyncStorageWrites). */
  private readonly asyncWrites: boolean;

  constructor(opts: RaftKvOptions) {
    this.opts = opts;
    this.id = opts.id;
    this.clusterId = opts.clusterId;
    this.sm = opts.sm;
    this.members = opts.members;
    this.storage = opts.storage;
    this.log = opts.logger ?? silentLogger;
    this.applied = opts.applied;
    const snap = opts.storage.snapshot();
    this.snapshotIndex = snap.metadata.index;
    this.conf = opts.storage.initialState().confState;
    this.savedHardState = opts.storage.initialState().hardState;
    this.readCtxSeed = readCtxSeed(opts.now());
    this.asyncWrites = opts.asyncStorageWrites ?? asyncWritesFromEnv();
    this.node = new RawNode({
      id: opts.id,
      electionTick: opts.electionTick,
      heartbeatTick: opts.heartbeatTick ?? 1,
      storage: opts.storage,
      applied: opts.applied,
      rand: opts.rand,
      checkQuorum: true,
      preVote: true,
      maxSizePerMsg: 1 << 20,
      maxInflightMsgs: 256,
      asyncStorageWrites: this.asyncWrites,
      logger: (event, fields) => {
        if (event === "confChangeRefused" || event === "confChangeIgnored") {
          this.refusedConfChange = String(fields.reason ?? event);
        }
        this.log("debug", `raft_${event}`, fields);
      },
    });
  }

  setTransport(t: PeerSink): void {
    this.transport = t;
  }

  // ----- inputs -------------------------------------------------------------------------------

  /** One Raft tick (call every tickMs). Also retries stalled proposals and reads, expires
   *  timed-out requests and, on the leader, proposes lease expiry. */
  tick(): void {
    if (this.stopped) return;
    this.tickCount++;
    this.node.tick();
    const now = this.opts.now();
    this.expireTimedOut(now);
    if (this.lead !== 0) {
      // A follower's forwarded proposal can be lost on the way (a dropped batch); after two
      // election timeouts without it applying, forward it again (applied at most once).
      const resend = this.opts.electionTick * 2;
      for (const p of this.pending.values()) {
        if (!p.proposed) this.propose(p);
        else if (this.role !== "leader" && this.tickCount - p.proposedAtTick >= resend) {
          this.propose(p);
        }
      }
      // A read batch unanswered for an election timeout is asked again (the request may have
      // been dropped with a leader change).
      for (const b of this.readBatches.values()) {
        if (
          b.index === undefined && this.tickCount - b.issuedAtTick >= this.opts.electionTick
        ) {
          this.issueRead(b);
        }
      }
    }
    if (this.role === "leader" && this.tickCount % 5 === 0) {
      this.expireLeases(now);
      this.autoCompact();
    }
    this.kick();
  }

  /** Messages from a peer, each first checked against the core's invariants (step_guard.ts);
   *  stepping stops at the first refused one, whose reason is returned. */
  stepChecked(msgs: Message[]): string | undefined {
    for (const m of msgs) {
      if (this.stopped) return undefined;
      // Checked against the state the earlier messages of the batch left.
      const why = stepRefusal(this.node.raft, m);
      if (why) return `${m.type} from ${m.from}: ${why}`;
      this.step([m]);
    }
    return undefined;
  }

  /** Messages from peers. */
  step(msgs: Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) {
      try {
        this.node.step(m);
      } catch (e) {
        if (
          e instanceof RaftError && (e.code === "StepPeerNotFound" || e.code === "StepLocalMsg")
        ) {
          continue;
        }
        if (e instanceof RaftError) continue; // refused message (e.g. stale snapshot): drop it
        this.fail(e as Error);
        return;
      }
    }
    this.kick();
  }

  /** Stops this member for good with `e` as the reason (reported through onFatal). */
  halt(e: Error): void {
    this.fail(e);
  }

  /** A broken invariant or a storage failure: this member must not go on. */
  private fail(e: Error): void {
    if (this.loopError) return;
    this.loopError = e;
    this.log("error", "raft_member_failed", {
      error: e,
      detail: "stopping this member; if its log was damaged, remove its data dir and re-join",
    });
    this.stop();
    this.opts.onFatal?.(e);
  }

  reportUnreachable(id: NodeId): void {
    if (this.stopped) return;
    this.node.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    if (this.stopped) return;
    this.node.reportSnapshot(id, ok ? "finish" : "failure");
    this.kick();
  }

  // ----- Kv -------------------------------------------------------------------------

  write(cmd: Command): Promise<unknown> {
    if (this.stopped) return Promise.reject(unavailable(ETCD_MESSAGES.serverStopped));
    const existing = this.pending.get(cmd.requestId);
    if (existing) {
      return new Promise((resolve, reject) => {
        const prevResolve = existing.resolve;
        const prevReject = existing.reject;
        existing.resolve = (r) => {
          prevResolve(r);
          resolve(r);
        };
        existing.reject = (e) => {
          prevReject(e);
          reject(e);
        };
      }).then(unwrapApplyResult);
    }
    const p = new Promise<unknown>((resolve, reject) => {
      const w: PendingWrite = {
        requestId: cmd.requestId,
        data: encodeCommand({ ...cmd, expires: this.writeExpiry() }),
        resolve,
        reject,
        deadline: this.opts.now() + (this.opts.writeTimeoutMs ?? 5000),
        proposedTerm: 0,
        proposedAtTick: 0,
        proposed: false,
      };
      this.pending.set(cmd.requestId, w);
      this.propose(w);
      this.kick();
    });
    return STORE_COMMIT.time(p).then(unwrapApplyResult);
  }

  /** The last log index at which a write taken now may apply: it lands above this member's
   *  commit index, so it has at least the window's length in which to be re-sent. */
  private writeExpiry(): number {
    const window = Math.min(this.opts.dedupeWindow ?? DEFAULT_DEDUPE_WINDOW, MAX_DEDUPE_WINDOW);
    return this.node.basicStatus().hardState.commit + window;
  }

  readBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(unavailable(ETCD_MESSAGES.serverStopped));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve,
        reject,
        deadline: this.opts.now() + (this.opts.readTimeoutMs ?? 5000),
      };
      if (!this.openBatch) {
        const batch: ReadBatch = {
          ctx: `${this.id}:${this.readCtxSeed}:${this.nextReadCtx++}`,
          waiters: [],
          issuedAtTick: 0,
        };
        this.openBatch = batch;
        queueMicrotask(() => {
          if (this.openBatch === batch) this.openBatch = undefined;
          this.readBatches.set(batch.ctx, batch);
          this.issueRead(batch);
          this.kick();
        });
      }
      this.openBatch.waiters.push(waiter);
    });
  }

  async leaseKeepAlive(id: string): Promise<{ ttl: number }> {
    if (this.role === "leader") await this.waitAppliedCommit();
    if (this.role === "leader") {
      const ttl = this.opts.lessor.keepAlive(id, this.opts.now());
      if (ttl === null) {
        throw new StoreError("leaseNotFound", ETCD_MESSAGES.leaseNotFound);
      }
      return { ttl };
    }
    const lead = this.lead;
    if (lead === 0 || !this.opts.leaderRpc) throw unavailable(ETCD_MESSAGES.noLeader);
    return await this.opts.leaderRpc.keepAlive(lead, id);
  }

  async leaseTimeToLive(id: string): Promise<{ ttl: number; grantedTtl: number } | null> {
    if (this.role === "leader") await this.waitAppliedCommit();
    if (this.role === "leader") {
      const info = this.sm.lease(id);
      if (!info) return null;
      const left = this.opts.lessor.ttlLeft(id, this.opts.now());
      return { ttl: Math.max(0, Math.ceil(left ?? info.ttl)), grantedTtl: info.ttl };
    }
    const lead = this.lead;
    if (lead === 0 || !this.opts.leaderRpc) throw unavailable(ETCD_MESSAGES.noLeader);
    return await this.opts.leaderRpc.timeToLive(lead, id);
  }

  header(): { clusterId: string; memberId: string; raftTerm: string } {
    return { clusterId: this.clusterId, memberId: String(this.id), raftTerm: String(this.term) };
  }

  raftStatus(): { leader: string; commitIndex: string } {
    const { softState, hardState } = this.node.basicStatus();
    return { leader: String(softState.lead), commitIndex: String(hardState.commit) };
  }

  // ----- membership ---------------------------------------------------------------------------

  /** Leader only: proposes one configuration change and resolves once it is applied here. */
  changeMembership(cc: ConfChange, ctx?: ConfChangeContext): Promise<void> {
    if (this.role !== "leader") return Promise.reject(unavailable("not the leader"));
    if (this.pendingConf) {
      return Promise.reject(unavailable("another membership change is in progress; retry shortly"));
    }
    const full: ConfChange = ctx ? { ...cc, context: encodeConfContext(ctx) } : cc;
    return new Promise((resolve, reject) => {
      this.pendingConf = {
        cc: full,
        resolve,
        reject,
        deadline: this.opts.now() + (this.opts.writeTimeoutMs ?? 5000),
      };
      let refused: string | undefined;
      try {
        refused = this.confRefusal(() => this.node.proposeConfChange(full));
      } catch (e) {
        refused = (e as Error).message;
      }
      if (refused !== undefined) {
        // Raft appends a no-op in its place (one change at a time): say so now, not at the
        // deadline.
        this.pendingConf = undefined;
        reject(unavailable(`membership change refused: ${refused}`));
        return;
      }
      this.kick();
    });
  }

  /** Runs fn (a Raft call that may refuse a configuration change, which Raft reports only
   *  through its log events) and returns the reason if it refused one. */
  private confRefusal(fn: () => void): string | undefined {
    this.refusedConfChange = undefined;
    fn();
    const reason = this.refusedConfChange;
    this.refusedConfChange = undefined;
    return reason;
  }

  hasPendingConfChange(): boolean {
    return this.pendingConf !== undefined;
  }

  /** Asks Raft to hand leadership to `to` (best effort). */
  transferLeadership(to: NodeId): void {
    this.node.transferLeadership(to);
    this.kick();
  }

  // ----- status -------------------------------------------------------------------------------

  status(): Status {
    return this.node.status();
  }

  get leader(): NodeId {
    return this.lead;
  }
  get currentTerm(): number {
    return this.term;
  }
  get currentRole(): SoftState["role"] {
    return this.role;
  }
  get appliedIndex(): number {
    return this.applied;
  }
  get confState(): ConfState {
    return this.conf;
  }
  get isStopped(): boolean {
    return this.stopped;
  }
  /** The error that stopped the ready loop, if one did. */
  get fatalError(): Error | undefined {
    return this.loopError;
  }

  /** Resolves when the local state machine has applied `index`. */
  waitApplied(index: number): Promise<void> {
    if (this.applied >= index) return Promise.resolve();
    return new Promise((resolve) => this.appliedWaiters.push({ index, resolve }));
  }

  /**
   * Lease liveness is answered from the applied state: a leader first applies everything it has
   * committed (etcd 3.5's waitAppliedIndex), or a lease granted just before, committed but not
   * yet applied here (a new leader catching up), would be reported "not found".
   */
  private waitAppliedCommit(): Promise<void> {
    const commit = this.node.basicStatus().hardState.commit;
    if (this.applied >= commit) return Promise.resolve();
    const deadline = this.opts.now() + (this.opts.readTimeoutMs ?? 5000);
    return new Promise((resolve, reject) =>
      this.appliedWaiters.push({ index: commit, resolve, reject, deadline })
    );
  }

  /** Campaign now (a single-voter cluster does not have to wait for an election timeout). */
  campaign(): void {
    this.node.campaign();
    this.kick();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    const err = unavailable(ETCD_MESSAGES.serverStopped);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const b of this.readBatches.values()) for (const w of b.waiters) w.reject(err);
    this.readBatches.clear();
    this.pendingConf?.reject(err);
    this.pendingConf = undefined;
    for (const w of this.appliedWaiters.splice(0)) w.reject?.(err);
  }

  // ----- internals ----------------------------------------------------------------------------

  private propose(p: PendingWrite): void {
    const ss = this.node.basicStatus().softState;
    if (ss.role === "follower" && ss.lead !== 0) {
      // A follower forwards the proposal to the leader at once, as Raft itself would, but
      // without waiting for the ready loop (which may be in the middle of an fsync).
      this.transport.send([newMessage({
        type: "MsgProp",
        from: this.id,
        to: ss.lead,
        entries: [{ term: 0, index: 0, type: "normal", data: p.data }],
      })]);
      p.proposed = true;
      p.proposedTerm = this.term;
      p.proposedAtTick = this.tickCount;
      return;
    }
    try {
      this.node.propose(p.data);
      p.proposed = true;
      p.proposedTerm = this.term;
      p.proposedAtTick = this.tickCount;
    } catch (e) {
      if (e instanceof RaftError && e.code === "ProposalDropped") {
        p.proposed = false;
        return;
      }
      if (e instanceof RaftError && e.code === "ProposalTooLarge") {
        this.pending.delete(p.requestId);
        p.reject(new StoreError("tooLarge", ETCD_MESSAGES.requestTooLarge));
        return;
      }
      throw e;
    }
  }

  private issueRead(b: ReadBatch): void {
    b.issuedAtTick = this.tickCount;
    if (this.lead === 0) return; // asked again on the next tick with a leader
    this.node.readIndex(new TextEncoder().encode(b.ctx));
  }

  private expireTimedOut(now: number): void {
    for (const [id, p] of this.pending) {
      if (now >= p.deadline) {
        this.pending.delete(id);
        p.reject(unavailable(ETCD_MESSAGES.timeout));
      }
    }
    for (const [ctx, b] of this.readBatches) {
      const keep = b.waiters.filter((w) => {
        if (now < w.deadline) return true;
        w.reject(
          unavailable(this.lead === 0 ? ETCD_MESSAGES.noLeader : ETCD_MESSAGES.timeout),
        );
        return false;
      });
      b.waiters = keep;
      if (keep.length === 0) this.readBatches.delete(ctx);
    }
    for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
      const w = this.appliedWaiters[i];
      if (w.reject && w.deadline !== undefined && now >= w.deadline) {
        this.appliedWaiters.splice(i, 1);
        w.reject(unavailable(ETCD_MESSAGES.timeout));
      }
    }
    if (this.pendingConf && now >= this.pendingConf.deadline) {
      this.pendingConf.reject(unavailable("membership change timed out"));
      this.pendingConf = undefined;
    }
  }

  private expireLeases(now: number): void {
    if (this.expiring) return;
    const ids = this.opts.lessor.expired(now).filter((id) => this.sm.lease(id) !== null);
    if (ids.length === 0) return;
    this.expiring = true;
    const requestId = `expire-${this.id}-${this.term}-${now}`;
    this.write({ op: "leaseExpire", requestId, ids })
      .then(() => this.log("info", "leases_expired", { ids: ids.join(",") }))
      .catch(() => {})
      .finally(() => (this.expiring = false));
  }

  /** Leader: proposes a compact command when the history kept has grown to twice the retention
   *  (every member applies it at the same log index, so their histories stay identical). */
  private autoCompact(): void {
    const retain = this.opts.retainRevisions ?? DEFAULT_RETAIN_REVISIONS;
    if (this.compacting || retain <= 0) return;
    const revision = compactionDue(this.sm, retain);
    if (revision === null) return;
    this.compacting = true;
    const requestId = `compact-${this.id}-${this.term}-${revision}`;
    this.write({ op: "compact", requestId, revision })
      .then(() => this.log("info", "history_compacted", { revision }))
      .catch(() => {}) // compacted already (an earlier leader's proposal) or lost: asked again later
      .finally(() => (this.compacting = false));
  }

  private kick(): void {
    if (this.looping || this.stopped) return;
    this.looping = true;
    queueMicrotask(() => this.readyLoop());
  }

  private async readyLoop(): Promise<void> {
    try {
      while (!this.stopped && this.node.hasReady()) {
        const rd = this.node.ready();
        if (rd.softState) this.onSoftState(rd.softState);
        if (rd.hardState) this.term = rd.hardState.term;
        if (this.asyncWrites) {
          await this.handleReadyAsync(rd);
          if (this.stopped) return;
          this.settleReads();
          this.notifyApplied();
          await this.maybeSnapshot();
          continue;
        }
        const early = rd.messages.length > 0 && this.maySendBeforeSave(rd);
        if (early) this.transport.send(rd.messages);
        // Committed entries that were durable here before this Ready (all but those the Ready
        // itself brings) are applied now, without waiting for this Ready's fsync: they are
        // committed, i.e. durable on a quorum, and already in this member's log. A
        // configuration change and everything after it waits for the save (see mustSync).
        const durable = this.applyDurableCommitted(rd);
        if (durable > 0) {
          this.settleReads();
          this.notifyApplied();
        }
        await this.storage.save({
          hardState: rd.hardState,
          entries: rd.entries,
          snapshot: rd.snapshot,
          // A commit index that moves past a configuration change is made durable before the
          // change is applied, so a restart never runs an older configuration than it acted on.
          mustSync: rd.mustSync || rd.committedEntries.some((e) => e.type === "confChange"),
        });
        if (rd.hardState) this.savedHardState = rd.hardState;
        if (this.stopped) return;
        if (rd.messages.length > 0 && !early) this.transport.send(rd.messages);
        if (rd.snapshot && rd.snapshot.metadata.index > 0) this.applySnapshot(rd.snapshot);
        for (let i = durable; i < rd.committedEntries.length; i++) {
          this.applyEntry(rd.committedEntries[i]);
        }
        if (rd.readStates.length > 0) this.onReadStates(rd.readStates);
        this.node.advance(rd);
        this.settleReads();
        this.notifyApplied();
        await this.maybeSnapshot();
      }
    } catch (e) {
      this.fail(e as Error);
    } finally {
      this.looping = false;
    }
  }

  /**
   * Asynchronous writes (opt-in; etcd-raft's AsyncStorageWrites): the Ready's write starts
   * and runs alongside everything else. Its messages (a leader's appends) leave at once, its
   * committed entries (durable here already) are applied at once, and the leader commits what a
   * quorum has durably acknowledged, itself counted once its own write lands. Saves complete in
   * the order they are made (the WAL queues them; Raft requires it); when one does, the acknowledgements and votes waiting for it go out and Raft
   * is told (onPersisted), which may commit more.
   */
  private async handleReadyAsync(rd: Ready): Promise<void> {
    const confChange = rd.committedEntries.some((e) => e.type === "confChange");
    const written = this.storage.save({
      hardState: rd.hardState,
      entries: rd.entries,
      snapshot: rd.snapshot,
      mustSync: rd.mustSync || confChange,
    }).then(() => this.onPersisted(rd)).catch((e) => this.fail(e as Error));
    if (rd.messages.length > 0) this.transport.send(rd.messages);
    // A configuration change is applied only once the commit index covering it is durable, so
    // a restart never runs an older configuration than it acted on.
    if (confChange) await written;
    if (this.stopped) return;
    for (const e of rd.committedEntries) this.applyEntry(e);
    if (rd.readStates.length > 0) this.onReadStates(rd.readStates);
    this.node.advance(rd);
  }

  private onPersisted(rd: Ready): void {
    if (this.stopped) return;
    if (rd.hardState) this.savedHardState = rd.hardState;
    if (rd.messagesAfterPersist.length > 0) this.transport.send(rd.messagesAfterPersist);
    if (rd.snapshot && rd.snapshot.metadata.index > 0) this.applySnapshot(rd.snapshot);
    this.node.persisted(rd);
    this.kick();
  }

  /** Applies the Ready's committed entries that precede its own entries and any configuration
   *  change; returns how many. */
  private applyDurableCommitted(rd: Ready): number {
    if (rd.snapshot && rd.snapshot.metadata.index > 0) return 0;
    const firstUnsaved = rd.entries.length > 0 ? rd.entries[0].index : Infinity;
    const ents = rd.committedEntries;
    let n = 0;
    while (n < ents.length && ents[n].index < firstUnsaved && ents[n].type !== "confChange") {
      this.applyEntry(ents[n]);
      n++;
    }
    return n;
  }

  /**
   * Whether a Ready's messages may go out before its own entries are durable here. A leader's
   * may (Raft thesis §10.2.1: the leader writes its log in parallel with replicating it), which
   * takes the leader's fsync off every write's critical path, provided that
   *  - this member is the leader and the Ready changes neither term nor vote (a vote, or a
   *    message of a new term, must never be sent before the term and vote are durable);
   *  - no message tells a commit index (or read index) that reaches the entries being saved.
   * Then a follower can neither apply nor serve anything that is not yet durable here. The
   * commit index can only come to cover these entries once a follower acknowledges them, and
   * the messages saying so come out of a later Ready, i.e. after this save completed. (A
   * single voter commits its own entries at once: its messages to learners wait for the save.)
   */
  private maySendBeforeSave(rd: Ready): boolean {
    if (this.role !== "leader" || rd.snapshot) return false;
    const hs = rd.hardState;
    const saved = this.savedHardState;
    if (hs && (hs.term !== saved.term || hs.vote !== saved.vote)) return false;
    const firstUnsaved = rd.entries.length > 0 ? rd.entries[0].index : Infinity;
    for (const m of rd.messages) {
      if (m.commit >= firstUnsaved) return false;
      if (m.type === "MsgReadIndexResp" && m.index >= firstUnsaved) return false;
      if (m.type !== "MsgApp" && m.type !== "MsgHeartbeat" && m.type !== "MsgReadIndexResp") {
        return false; // anything else (votes, snapshots, TimeoutNow) keeps the old order
      }
    }
    return true;
  }

  private onSoftState(ss: SoftState): void {
    const wasLeader = this.role === "leader";
    this.role = ss.role;
    if (ss.lead !== this.lead) {
      this.lead = ss.lead;
      const term = this.node.basicStatus().hardState.term;
      this.term = term;
      this.log("info", "leader_changed", { term, leader: ss.lead, self: this.id });
      LEADER_CHANGES.inc();
      this.opts.onLeaderChange?.(ss.lead, term);
      if (ss.lead !== 0) {
        // A proposal forwarded to the old leader may be lost: propose again (applied once).
        for (const p of this.pending.values()) this.propose(p);
        for (const b of this.readBatches.values()) if (b.index === undefined) this.issueRead(b);
      }
    }
    if (ss.role === "leader" && !wasLeader) this.opts.lessor.promote(this.opts.now());
    if (wasLeader && ss.role !== "leader" && this.pendingConf) {
      this.pendingConf.reject(unavailable("leader changed during the membership change"));
      this.pendingConf = undefined;
    }
  }

  private applySnapshot(snap: Snapshot): void {
    const content = decodeSnapshotData(snap.data);
    if (content) {
      if (content.sm.length > 0) this.sm.restore(content.sm);
      const table = MemberTable.from(content.members);
      this.members.replaceWith(table);
      this.opts.onMembersRestored?.(this.members);
    }
    this.conf = snap.metadata.confState;
    this.applied = snap.metadata.index;
    this.snapshotIndex = snap.metadata.index;
    this.log("info", "snapshot_installed", {
      index: snap.metadata.index,
      term: snap.metadata.term,
    });
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.applied) return;
    if (e.type === "confChange") {
      this.applyConfEntry(e);
      return;
    }
    if (e.data.length === 0) {
      if (e.index > this.sm.appliedIndex) this.sm.skip(e.index);
      this.applied = e.index;
      return;
    }
    let cmd: Command;
    try {
      cmd = decodeCommand(e.data);
    } catch (err) {
      this.log("error", "entry_undecodable", { index: e.index, error: err });
      if (e.index > this.sm.appliedIndex) this.sm.skip(e.index);
      this.applied = e.index;
      return;
    }
    const result = e.index > this.sm.appliedIndex ? this.sm.apply(e.index, cmd) : undefined;
    this.applied = e.index;
    const p = this.pending.get(cmd.requestId);
    if (p) {
      this.pending.delete(cmd.requestId);
      p.resolve(result);
    }
  }

  /** A committed configuration change: to Raft, then (unless Raft refused it) to the member
   *  table; the caller waiting for it hears either way. */
  private applyConfEntry(e: Entry): void {
    const cc = decodeConfChange(e.data);
    const refused = this.confRefusal(() => (this.conf = this.node.applyConfChange(cc)));
    if (refused === undefined) this.members.apply(cc);
    if (e.index > this.sm.appliedIndex) this.sm.skip(e.index);
    this.applied = e.index;
    const waiting = this.pendingConf?.cc.nodeId === cc.nodeId &&
        this.pendingConf.cc.type === cc.type
      ? this.pendingConf
      : undefined;
    if (waiting) this.pendingConf = undefined;
    if (refused !== undefined) {
      this.log("warn", "conf_change_refused", {
        change: cc.type,
        node: cc.nodeId,
        reason: refused,
      });
      waiting?.reject(unavailable(`membership change refused: ${refused}`));
      return;
    }
    this.log("info", cc.type === "removeNode" ? "peer_removed" : "conf_changed", {
      change: cc.type,
      node: cc.nodeId,
      address: this.members.get(cc.nodeId)?.address,
      voters: this.conf.voters.join(","),
      learners: this.conf.learners.join(","),
    });
    // A member added with an empty log can only accept a snapshot whose configuration
    // includes it, so take one now (on every member: any of them may be the leader).
    if (cc.type === "addLearner") this.forceSnapshot = true;
    this.opts.onConfChange?.(cc, this.conf, this.members);
    waiting?.resolve();
  }

  private onReadStates(rs: ReadState[]): void {
    const dec = new TextDecoder();
    for (const r of rs) {
      const b = this.readBatches.get(dec.decode(r.requestCtx));
      if (b && b.index === undefined) b.index = r.index;
    }
  }

  private settleReads(): void {
    for (const [ctx, b] of this.readBatches) {
      if (b.index !== undefined && this.applied >= b.index) {
        this.readBatches.delete(ctx);
        for (const w of b.waiters) w.resolve();
      }
    }
  }

  private notifyApplied(): void {
    if (this.appliedWaiters.length === 0) return;
    for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
      const w = this.appliedWaiters[i];
      if (this.applied >= w.index) {
        this.appliedWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private async maybeSnapshot(): Promise<void> {
    const every = this.opts.snapshotCount ?? 10_000;
    if (this.applied - this.snapshotIndex < every && !this.forceSnapshot) return;
    if (this.applied <= this.snapshotIndex) return;
    this.forceSnapshot = false;
    const index = this.applied;
    const started = this.opts.now();
    const data = encodeSnapshotData({ members: this.members.toData(), sm: this.sm.snapshot() });
    const encodeMs = this.opts.now() - started;
    await this.storage.createSnapshot(index, this.conf, data);
    this.snapshotIndex = index;
    const keep = this.opts.snapshotCatchUpEntries ?? Math.min(5000, every);
    const compactTo = index - keep;
    if (compactTo > this.storage.firstIndex()) await this.storage.compact(compactTo);
    this.log("info", "snapshot_taken", {
      index,
      bytes: data.length,
      encode_ms: encodeMs,
      compacted_to: Math.max(compactTo, 0),
    });
  }
}
