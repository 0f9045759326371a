// One simulated Raft member: a RawNode over a MemoryStorage, the KV state machine, and the
// application loop around them (persist, send, apply, advance) with a crash model:
//   - A Ready that must be synced is held "in flight" until the simulator's sync event; until
//     then the node takes no other input (like a process blocked in fsync), and its messages are
//     not sent. A crash before the sync loses that Ready entirely (the unsynced suffix).
//   - A Ready that needs no sync (only the commit index moved) is applied at once, but its
//     commit index only becomes durable with the next synced Ready or snapshot.
// A restart is a new RawNode over the same storage with the durable hard state, applied = the
// snapshot index, and the state machine rebuilt from the snapshot (the log is replayed by Raft).
// With asynchronous storage writes (host.asyncWrites) the node never blocks: each Ready's write
// is queued and completes after a random delay (writes complete in order, as in one WAL, but out
// of order with respect to message delivery); its messages are sent and its committed entries
// applied at once, its messagesAfterPersist when the write completes. A crash loses the writes
// still queued, except a random prefix of them (written but not yet synced data may or may not
// reach the disk). The chain hashes then describe the node's log as Raft sees it (including
// entries still being written); the storage is the disk.
import {
  type ConfChange,
  type ConfState,
  decodeConfChange,
  type Entry,
  type HardState,
  MemoryStorage,
  type Message,
  type NodeId,
  RaftError,
  RawNode,
  type ReadState,
  type Ready,
  type Snapshot,
} from "../raft/mod.ts";
import type { KvOutput } from "../linearizability/kv_model.ts";
import { decodeCommand, KvStateMachine } from "./kv_state_machine.ts";
import type { Prng } from "./prng.ts";
import { type SafetyMonitor, SimViolation } from "./safety.ts";
import { chainHash, hashBytes, type Trace } from "./trace.ts";

export interface NodeTuning {
  electionTick: number;
  heartbeatTick: number;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  /** Take a snapshot and compact once this many entries were applied since the last one. */
  compactEvery: number;
  /** Longest simulated fsync, in ms. */
  maxSyncDelay: number;
}

/** What a node needs from the simulation around it. */
export interface NodeHost {
  readonly now: number;
  readonly prng: Prng;
  readonly monitor: SafetyMonitor;
  readonly trace: Trace;
  readonly tuning: NodeTuning;
  /**
   * Whether to run the white-box checks (leader commit rule, replication progress, read index)
   * on top of the end-to-end ones (election safety, log matching, leader completeness, state
   * machine safety, durability, linearizability).
   */
  readonly whiteBox: boolean;
  /** Run the core with asyncStorageWrites (writes complete in the background). */
  readonly asyncWrites: boolean;
  /** A deliberate application bug, to prove the checks catch it (tests only). */
  readonly appBug: AppBug | undefined;
  send(m: Message): void;
  /** Deliver a client's result (or a refusal: output null) from node `from`. */
  respond(
    from: NodeId,
    client: number,
    seq: number,
    output: KvOutput | null,
    ackIndex?: number,
  ): void;
  /** The sync of this node's held Ready completes after `delay` ms. */
  scheduleSync(node: SimNode, delay: number): void;
  confChangeApplied(node: SimNode, index: number, cc: ConfChange, cs: ConfState): void;
  /** Another simulated node, to compare logs. */
  peer(id: NodeId): SimNode | undefined;
  /** The node just became leader of `term` (after the safety checks). */
  becameLeader(node: SimNode, term: number): void;
}

/**
 * Deliberate application-level bugs the simulator must catch:
 * - "stale-reads": serve gets from the local state machine without ReadIndex;
 * - "send-before-sync": send a Ready's messages before its data is durable.
 */
export type AppBug = "stale-reads" | "send-before-sync";

export type NodeState = "running" | "crashed" | "removed";

interface PendingRead {
  client: number;
  seq: number;
  key: string;
  /** The highest index known committed anywhere when the read arrived: the read must see it. */
  floor: number;
  /** The read index, once Raft has confirmed it; -1 before. */
  index: number;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();
const EMPTY_CONF: ConfState = { voters: [], learners: [] };

export class SimNode {
  state: NodeState = "running";
  raw: RawNode | null = null;
  incarnation = 0;
  frozenUntil = 0;
  /** Until then the node's clock is stalled: no ticks, but it still handles messages. */
  clockStalledUntil = 0;
  /** A Ready waiting for its sync. */
  held: Ready | null = null;
  /** Asynchronous writes: Readies whose write has not completed, oldest first. */
  writes: Ready[] = [];
  /** Asynchronous writes: queued writes a crash lost. */
  writesLost = 0;
  /** Highest index in `chain` (the end of the log as Raft sees it). */
  chainLast = 0;
  sm = new KvStateMachine();
  applied = 0;
  confState: ConfState = EMPTY_CONF;
  role = "follower";
  /** Hard state as last persisted (live) and as durable (survives a crash). */
  hs: HardState = { term: 0, vote: 0, commit: 0 };
  durable: HardState = { term: 0, vote: 0, commit: 0 };
  /** Chain hash of this node's log at each index >= chainBase. */
  chain = new Map<number, number>();
  chainBase = 0;
  readonly pendingWrites = new Map<string, number>();
  readonly pendingReads = new Map<string, PendingRead>();

  constructor(
    readonly id: NodeId,
    private readonly host: NodeHost,
    readonly storage: MemoryStorage = new MemoryStorage(),
  ) {}

  /** Starts (or restarts) the RawNode over the durable state. */
  start(): void {
    const h = this.host;
    this.storage.setHardState(this.durable);
    const snap = this.storage.snapshot();
    this.sm = KvStateMachine.restore(snap.data);
    this.applied = snap.metadata.index;
    this.confState = snap.metadata.confState;
    this.hs = { ...this.durable };
    this.role = "follower";
    this.raw = new RawNode({
      id: this.id,
      electionTick: h.tuning.electionTick,
      heartbeatTick: h.tuning.heartbeatTick,
      storage: this.storage,
      applied: this.applied,
      maxSizePerMsg: h.tuning.maxSizePerMsg,
      maxInflightMsgs: h.tuning.maxInflightMsgs,
      checkQuorum: true,
      preVote: true,
      asyncStorageWrites: h.asyncWrites,
      rand: (n) => h.prng.int(n),
    });
    const st = this.raw.basicStatus().hardState;
    if (st.term !== this.durable.term || st.vote !== this.durable.vote) {
      throw new SimViolation(
        "term/vote durability",
        `node ${this.id} restarted with term ${st.term} vote ${st.vote}, but its durable state says term ${this.durable.term} vote ${this.durable.vote}`,
      );
    }
    this.state = "running";
  }

  /** Loses everything not synced: the held Ready, in-memory state, pending client requests. */
  crash(): void {
    if (this.host.asyncWrites && this.raw !== null) this.#loseUnsyncedWrites();
    this.raw = null;
    this.held = null;
    this.incarnation++;
    this.pendingWrites.clear();
    this.pendingReads.clear();
    this.role = "follower";
    if (this.state === "running") this.state = "crashed";
  }

  remove(): void {
    this.crash();
    this.state = "removed";
  }

  get isUp(): boolean {
    return this.raw !== null;
  }

  tick(): void {
    this.raw!.tick();
    this.pump();
  }

  step(m: Message): void {
    try {
      this.raw!.step(m);
    } catch (e) {
      if (!(e instanceof RaftError) || e.code !== "StepPeerNotFound") throw e;
    }
    this.pump();
  }

  /** A client write arrives. */
  submitWrite(client: number, seq: number, data: Uint8Array): void {
    const key = client + ":" + seq;
    this.pendingWrites.set(key, client);
    try {
      this.raw!.propose(data);
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      this.pendingWrites.delete(key);
      this.host.respond(this.id, client, seq, null);
    }
    this.pump();
  }

  /** A client linearizable read arrives; `attempt` makes the ReadIndex context unique. */
  submitRead(client: number, seq: number, attempt: number, key: string): void {
    if (this.host.appBug === "stale-reads") {
      this.host.respond(this.id, client, seq, { value: this.sm.get(key) });
      return;
    }
    const ctx = client + ":" + seq + ":" + attempt;
    this.pendingReads.set(ctx, {
      client,
      seq,
      key,
      index: -1,
      floor: this.host.monitor.maxCommitted,
    });
    try {
      this.raw!.readIndex(textEncoder.encode(ctx));
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      this.pendingReads.delete(ctx);
      this.host.respond(this.id, client, seq, null);
    }
    this.pump();
  }

  /** Handles Readies until one must wait for a sync (or none is left). */
  pump(): void {
    if (this.host.asyncWrites) {
      this.#pumpAsync();
      return;
    }
    while (this.raw !== null && this.held === null && this.raw.hasReady()) {
      const rd = this.raw.ready();
      if (rd.softState !== undefined) this.#roleChanged(rd);
      if (rd.mustSync || rd.snapshot !== undefined) {
        this.held = rd;
        if (this.host.appBug === "send-before-sync") {
          for (const m of rd.messages) this.host.send(m);
          rd.messages = [];
        }
        const d = this.host.tuning.maxSyncDelay;
        this.host.scheduleSync(
          this,
          this.host.prng.chance(0.05) ? d * 4 : this.host.prng.range(0, d),
        );
        return;
      }
      this.#handle(rd, false);
    }
  }

  /** Whether a write waits for its sync event. */
  get writing(): boolean {
    return this.held !== null || this.writes.length > 0;
  }

  /** The held Ready's sync completed (asynchronous writes: the oldest queued write). */
  synced(): void {
    if (this.host.asyncWrites) {
      this.#writeCompleted();
      return;
    }
    const rd = this.held!;
    this.held = null;
    this.#handle(rd, true);
    this.pump();
  }

  #pumpAsync(): void {
    const h = this.host;
    while (this.raw !== null && this.raw.hasReady()) {
      const rd = this.raw.ready();
      // Raft's log and hard state as handed out: checked now, written to storage later.
      if (rd.snapshot !== undefined) this.#persistSnapshot(rd.snapshot, false);
      if (rd.entries.length > 0) this.#persistEntries(rd.entries, false);
      if (rd.softState !== undefined) this.#roleChanged(rd);
      if (rd.hardState !== undefined) this.#persistHardState(rd.hardState, false, false);
      for (const m of rd.messages) h.send(m);
      if (h.appBug === "send-before-sync") {
        for (const m of rd.messagesAfterPersist) h.send(m);
        rd.messagesAfterPersist = [];
      }
      this.#applyAndServe(rd);
      this.writes.push(rd);
      const d = h.tuning.maxSyncDelay;
      h.scheduleSync(this, h.prng.chance(0.05) ? d * 4 : h.prng.range(0, d));
    }
  }

  /** The oldest queued write reached the disk (and was synced when it had to be). */
  #writeCompleted(): void {
    const rd = this.writes.shift()!;
    this.#writeToStorage(rd, rd.mustSync || rd.snapshot !== undefined);
    for (const m of rd.messagesAfterPersist) this.host.send(m);
    const snap = rd.snapshot;
    if (snap !== undefined) {
      this.sm = KvStateMachine.restore(snap.data);
      this.applied = snap.metadata.index;
      this.confState = snap.metadata.confState;
    }
    this.raw!.persisted(rd);
    this.#pumpAsync();
  }

  #writeToStorage(rd: Ready, synced: boolean): void {
    if (rd.snapshot !== undefined) this.storage.applySnapshot(rd.snapshot);
    this.storage.append(rd.entries);
    const hs = rd.hardState;
    if (hs !== undefined) {
      this.storage.setHardState(hs);
      this.durable = synced
        ? { ...hs }
        : { term: hs.term, vote: hs.vote, commit: this.durable.commit };
    } else if (synced) this.durable = { ...this.storage.initialState().hardState };
  }

  /**
   * A crash under asynchronous writes: the queued writes were issued but not synced; a random
   * prefix of them reaches the disk anyway, the rest is lost. The chain hashes are rebuilt from
   * what the disk holds.
   */
  #loseUnsyncedWrites(): void {
    const survive = this.host.prng.int(this.writes.length + 1);
    for (let i = 0; i < survive; i++) this.#writeToStorage(this.writes[i], true);
    this.writesLost += this.writes.length - survive;
    this.writes = [];
    const base = this.storage.snapshot().metadata.index;
    const baseChain = this.chain.get(base) ?? this.host.monitor.committed.get(base);
    this.chain.clear();
    this.chainBase = base;
    if (baseChain !== undefined) this.chain.set(base, baseChain);
    this.chainLast = base;
    const last = this.storage.lastIndex();
    if (last > base) this.#extendChain(this.storage.entries(base + 1, last + 1, Infinity), false);
  }

  #roleChanged(rd: Ready): void {
    const ss = rd.softState!;
    this.role = ss.role;
    if (ss.role !== "leader") return;
    const term = this.raw!.basicStatus().hardState.term;
    this.host.trace.log(this.host.now, () => `node ${this.id} became leader of term ${term}`);
    this.host.monitor.observeLeader(
      this.id,
      term,
      (i) => this.chain.get(i),
      this.chainBase,
      this.host.asyncWrites ? this.chainLast : this.storage.lastIndex(),
    );
    this.host.becameLeader(this, term);
  }

  /**
   * Replication soundness: whatever the leader believes a follower of its term holds (its match
   * index) must really be in that follower's log, identical to the leader's.
   */
  #checkProgress(): void {
    const progress = this.raw!.status().progress;
    if (progress === undefined) return;
    for (const [id, pr] of progress) {
      if (id === this.id || pr.match === 0) continue;
      const f = this.host.peer(id);
      if (f === undefined || f.hs.term !== this.hs.term || pr.match <= f.chainBase) continue;
      const mine = this.chain.get(pr.match);
      const theirs = f.chain.get(pr.match);
      if (mine !== undefined && theirs !== mine) {
        throw new SimViolation(
          "replication progress",
          `leader ${this.id} of term ${this.hs.term} counts node ${id} as holding its log up to ${pr.match}, ` +
            `but node ${id} ${
              theirs === undefined ? "does not have that entry" : "holds a different entry there"
            }`,
        );
      }
    }
  }

  #handle(rd: Ready, synced: boolean): void {
    const h = this.host;
    // 1. Persist snapshot, entries, hard state.
    const snap = rd.snapshot;
    if (snap !== undefined) this.#persistSnapshot(snap, true);
    if (rd.entries.length > 0) this.#persistEntries(rd.entries, true);
    if (rd.hardState !== undefined) this.#persistHardState(rd.hardState, synced, true);
    // A sync makes everything written before it durable too (one sequential log, as a WAL).
    if (synced) this.durable = { ...this.hs };
    // 2. Send.
    for (const m of rd.messages) h.send(m);
    // 3. Apply.
    if (snap !== undefined) {
      this.sm = KvStateMachine.restore(snap.data);
      this.applied = snap.metadata.index;
      this.confState = snap.metadata.confState;
    }
    this.#applyAndServe(rd);
  }

  /** Applies a Ready's committed entries, records its read states, advances, serves reads. */
  #applyAndServe(rd: Ready): void {
    const h = this.host;
    for (const e of rd.committedEntries) this.#apply(e);
    this.#recordReadStates(rd.readStates);
    this.raw!.advance(rd);
    // 4. Serve reads whose index is applied.
    if (this.pendingReads.size > 0) {
      for (const [ctx, pr] of this.pendingReads) {
        if (pr.index >= 0 && pr.index <= this.applied) {
          this.pendingReads.delete(ctx);
          h.respond(this.id, pr.client, pr.seq, { value: this.sm.get(pr.key) });
        }
      }
    }
    if (h.whiteBox && this.role === "leader") this.#checkProgress();
    // 5. Snapshot and compact when enough was applied.
    const snapIndex = this.storage.snapshot().metadata.index;
    if (this.applied - snapIndex >= h.tuning.compactEvery) {
      this.storage.createSnapshot(this.applied, this.confState, this.sm.snapshot());
      const to = this.applied - h.prng.int(3);
      if (to > this.storage.firstIndex() - 1) this.storage.compact(to);
      // The snapshot write is a sync point for everything written before it.
      this.durable = { ...this.storage.initialState().hardState };
    }
  }

  /** Checks and records an incoming snapshot (and writes it to storage when `write`). */
  #persistSnapshot(snap: Snapshot, write: boolean): void {
    const mon = this.host.monitor;
    const idx = snap.metadata.index;
    if (write) this.storage.applySnapshot(snap);
    const c = mon.committed.get(idx);
    if (c === undefined) {
      throw new SimViolation(
        "snapshot safety",
        `node ${this.id} received a snapshot at uncommitted index ${idx}`,
      );
    }
    this.chain.clear();
    this.chain.set(idx, c);
    this.chainBase = idx;
    this.chainLast = idx;
  }

  /** Checks and records appended entries (and writes them to storage when `write`). */
  #persistEntries(entries: Entry[], write: boolean): void {
    const first = entries[0].index;
    const oldLast = write ? this.storage.lastIndex() : this.chainLast;
    if (write) this.storage.append(entries);
    for (let i = first; i <= oldLast; i++) this.chain.delete(i);
    this.#extendChain(entries, true);
  }

  #extendChain(entries: Entry[], observe: boolean): void {
    const mon = this.host.monitor;
    for (const e of entries) {
      const prev = this.chain.get(e.index - 1);
      if (prev === undefined) {
        throw new SimViolation(
          "log matching",
          `node ${this.id} appended entry ${e.index} after a gap in its log`,
        );
      }
      const c = chainHash(prev, e.index, e.term, e.type === "normal" ? 1 : 2, hashBytes(e.data));
      this.chain.set(e.index, c);
      this.chainLast = e.index;
      if (observe) mon.observePersisted(this.id, e.index, e.term, c, this.hs.commit);
    }
  }

  /** Checks and records a new hard state (and writes it to storage when `write`). */
  #persistHardState(hs: HardState, synced: boolean, write: boolean): void {
    const h = this.host;
    const mon = h.monitor;
    const old = this.hs;
    if (hs.term < old.term || (hs.term === old.term && old.vote !== 0 && hs.vote !== old.vote)) {
      throw new SimViolation(
        "term/vote monotonic",
        `node ${this.id} went from term ${old.term} vote ${old.vote} to term ${hs.term} vote ${hs.vote}`,
      );
    }
    if (hs.commit < old.commit) {
      throw new SimViolation(
        "commit monotonic",
        `node ${this.id} commit index went from ${old.commit} back to ${hs.commit}`,
      );
    }
    if (write) this.storage.setHardState(hs);
    if (h.whiteBox && this.role === "leader" && hs.commit > old.commit) {
      // Figure 2's commit rule, observed from outside: a leader only ever advances its commit
      // index to an entry of its own term (older entries commit indirectly, §5.4.2).
      const t = write ? this.storage.term(hs.commit) : this.raw!.raft.raftLog.term(hs.commit);
      if (t !== hs.term) {
        throw new SimViolation(
          "leader commit rule",
          `leader ${this.id} of term ${hs.term} advanced its commit index to ${hs.commit}, an entry of term ${t}`,
        );
      }
    }
    mon.observeCommit(
      this.id,
      hs.term,
      old.commit,
      hs.commit,
      (i) => this.chain.get(i),
      this.chainBase,
    );
    this.hs = { ...hs };
    if (write && !synced) {
      this.durable = { term: hs.term, vote: hs.vote, commit: this.durable.commit };
    }
  }

  #apply(e: Entry): void {
    const h = this.host;
    const mon = h.monitor;
    if (e.index !== this.applied + 1) {
      throw new SimViolation(
        "applied monotonic",
        `node ${this.id} was handed entry ${e.index} to apply after applying ${this.applied}`,
      );
    }
    if (e.index > this.hs.commit) {
      throw new SimViolation(
        "apply beyond commit",
        `node ${this.id} applied ${e.index} beyond its commit ${this.hs.commit}`,
      );
    }
    mon.observeApply(this.id, e.index, this.chain.get(e.index));
    this.applied = e.index;
    if (e.type === "confChange") {
      const cc = decodeConfChange(e.data);
      this.confState = this.raw!.applyConfChange(cc);
      h.confChangeApplied(this, e.index, cc, this.confState);
    } else {
      const cmd = decodeCommand(e.data);
      if (cmd === null) return;
      const result = this.sm.apply(cmd);
      const key = cmd.client + ":" + cmd.seq;
      if (result !== null && this.pendingWrites.has(key)) {
        this.pendingWrites.delete(key);
        h.respond(this.id, cmd.client, cmd.seq, result, e.index);
      }
    }
  }

  #recordReadStates(readStates: ReadState[]): void {
    const h = this.host;
    for (const rs of readStates) {
      const pr = this.pendingReads.get(textDecoder.decode(rs.requestCtx));
      if (pr !== undefined && pr.index < 0) {
        if (h.whiteBox && rs.index < pr.floor) {
          throw new SimViolation(
            "read index",
            `node ${this.id} got read index ${rs.index} for a read that arrived after index ${pr.floor} was committed (a stale read)`,
          );
        }
        pr.index = rs.index;
      }
    }
  }
}
