// The application-facing handle on the Raft state machine (etcd's RawNode). The application:
//   1. calls tick() on a timer, step() for every message from a peer, propose()/readIndex()/…;
//   2. when hasReady(): rd = ready(); persist rd.hardState, rd.entries, rd.snapshot (fsync if
//      rd.mustSync); then send rd.messages; apply rd.snapshot and rd.committedEntries (calling
//      applyConfChange for confChange entries); serve rd.readStates once applied >= index;
//   3. calls advance(rd) before the next ready().
// With config.asyncStorageWrites the write of a Ready runs in the background instead:
//   2'. rd = ready(); start writing rd.hardState, rd.entries, rd.snapshot (writes complete in
//      the order of their Readies); send rd.messages now; apply rd.committedEntries now and call
//      advance(rd); when the write is durable: send rd.messagesAfterPersist, apply rd.snapshot,
//      then persisted(rd). The next ready() may come before that.
import type {
  ConfChange,
  Config,
  ConfState,
  HardState,
  Message,
  NodeId,
  Ready,
  SoftState,
  Status,
} from "./types.ts";
import { NONE, RaftError } from "./types.ts";
import { hardStateEqual, isEmptyHardState, Raft } from "./raft.ts";
import { encodeConfChange } from "./confchange_codec.ts";
import { invariant, isLocalMsg, isResponseMsg, newMessage } from "./util.ts";

/**
 * Asynchronous writes: responses that promise durability (an acknowledged append, a granted
 * vote) wait for the write; everything else may leave at once, unless a term or vote is not yet
 * durable (then nothing of that term leaves before it is). A pre-vote response promises nothing
 * (the responder changes no state), and holding it would only widen the window in which two
 * pre-candidates both win and split the real vote.
 */
const AFTER_PERSIST: ReadonlySet<Message["type"]> = new Set<Message["type"]>([
  "MsgAppResp",
  "MsgVoteResp",
]);

/** A Ready handed out under asynchronous writes, and what waits for its write. */
interface WriteInProgress {
  rd: Ready;
  self: Message[];
}

export class RawNode {
  /** The state machine itself: exposed for tests and diagnostics, not for applications. */
  readonly raft: Raft;
  private prevSoftSt: SoftState;
  private prevHardSt: HardState;
  /** Asynchronous writes: the hard state last reported durable. */
  private durableHardSt: HardState;
  /** Asynchronous writes: Readies whose write is not yet reported durable, oldest first. */
  private readonly writes: WriteInProgress[] = [];

  /**
   * Start (or restart) a node over `config.storage`. A restart is simply a new RawNode over the
   * same storage, with `config.applied` set to the last index the application has applied.
   */
  constructor(config: Config) {
    this.raft = new Raft(config);
    this.prevSoftSt = this.raft.softState();
    this.prevHardSt = this.raft.hardState();
    this.durableHardSt = this.prevHardSt;
  }

  /** Advance the logical clock by one tick (election / heartbeat timeouts count ticks). */
  tick(): void {
    this.raft.tick();
  }

  /** Start an election now (pre-vote first when enabled). */
  campaign(): void {
    this.raft.step(newMessage({ type: "MsgHup", from: this.raft.id }));
  }

  /**
   * Propose data to be appended to the log. Throws RaftError ProposalDropped when no leader is
   * known, a leadership transfer is in progress, or the uncommitted-bytes cap is exceeded.
   * Success means "accepted or forwarded", not committed: watch committed entries for it.
   */
  propose(data: Uint8Array): void {
    this.raft.step(newMessage({
      type: "MsgProp",
      from: this.raft.id,
      entries: [{ term: 0, index: 0, type: "normal", data }],
    }));
  }

  /** Propose a single-step membership change; it takes effect when applied (applyConfChange). */
  proposeConfChange(cc: ConfChange): void {
    this.raft.step(newMessage({
      type: "MsgProp",
      from: this.raft.id,
      entries: [{ term: 0, index: 0, type: "confChange", data: encodeConfChange(cc) }],
    }));
  }

  /**
   * Feed a message received from a peer. Throws RaftError StepLocalMsg for a local message type
   * and StepPeerNotFound for a response from a node that is not a member. A forwarded proposal
   * that the leader has to drop is dropped silently (the remote proposer retries on timeout).
   */
  step(m: Message): void {
    if (isLocalMsg(m.type)) {
      throw new RaftError(
        "StepLocalMsg",
        `cannot step local message ${m.type} received from the network`,
      );
    }
    if (isResponseMsg(m.type) && !this.raft.prs.progress.has(m.from)) {
      throw new RaftError(
        "StepPeerNotFound",
        `response ${m.type} from node ${m.from}, which is not a member`,
      );
    }
    try {
      this.raft.step(m);
    } catch (e) {
      if (e instanceof RaftError && e.code === "ProposalDropped" && m.type === "MsgProp") return;
      throw e;
    }
  }

  /**
   * Request a linearizable read. `ctx` identifies the request (must be unique among pending
   * reads); the answer arrives in Ready.readStates: once applied >= index, the read may be served.
   */
  readIndex(ctx: Uint8Array): void {
    this.raft.step(newMessage({
      type: "MsgReadIndex",
      from: this.raft.id,
      entries: [{ term: 0, index: 0, type: "normal", data: ctx }],
    }));
  }

  /** Ask the leader to hand leadership to `transferee` (from any node). */
  transferLeadership(transferee: NodeId): void {
    this.raft.step(newMessage({ type: "MsgTransferLeader", from: transferee }));
  }

  /** Apply a committed membership change; returns the new configuration (persist it with snapshots). */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** The transport could not reach `id`: stop optimistic pipelining to it. */
  reportUnreachable(id: NodeId): void {
    this.raft.step(newMessage({ type: "MsgUnreachable", from: id }));
  }

  /** The outcome of sending a snapshot to `id`. */
  reportSnapshot(id: NodeId, status: "finish" | "failure"): void {
    this.raft.step(newMessage({ type: "MsgSnapStatus", from: id, reject: status === "failure" }));
  }

  hasReady(): boolean {
    const r = this.raft;
    if (r.appendPending) return true;
    if (r.asyncWrites) return this.hasReadyAsync();
    const ss = r.softState();
    if (ss.lead !== this.prevSoftSt.lead || ss.role !== this.prevSoftSt.role) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardSt)) return true;
    if (r.raftLog.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.raftLog.unstable.entries.length > 0 || r.raftLog.hasNextEnts()) {
      return true;
    }
    return r.readStates.length > 0;
  }

  private hasReadyAsync(): boolean {
    const r = this.raft;
    const log = r.raftLog;
    const ss = r.softState();
    if (ss.lead !== this.prevSoftSt.lead || ss.role !== this.prevSoftSt.role) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardSt)) return true;
    if (log.unstable.nextSnapshot() !== undefined || log.unstable.hasNextEntries()) return true;
    if (r.msgs.length > 0 || r.selfAfterPersist.length > 0 || log.hasNextCommittedEnts()) {
      return true;
    }
    return r.readStates.length > 0;
  }

  /** What the application must do next. Call advance(rd) when done, before the next ready(). */
  ready(): Ready {
    const r = this.raft;
    r.flushProposals();
    if (r.asyncWrites) return this.readyAsync();
    const rd: Ready = {
      readStates: [],
      entries: r.raftLog.unstableEntries(),
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      messagesAfterPersist: [],
      mustSync: false,
    };
    const ss = r.softState();
    if (ss.lead !== this.prevSoftSt.lead || ss.role !== this.prevSoftSt.role) {
      rd.softState = ss;
      this.prevSoftSt = ss;
    }
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHardSt)) rd.hardState = hs;
    if (r.raftLog.unstable.snapshot) rd.snapshot = r.raftLog.unstable.snapshot;
    if (r.readStates.length > 0) {
      rd.readStates = r.readStates;
      r.readStates = [];
    }
    rd.mustSync = rd.entries.length > 0 || hs.term !== this.prevHardSt.term ||
      hs.vote !== this.prevHardSt.vote;
    r.msgs = [];
    return rd;
  }

  /**
   * Asynchronous writes: hand out what is new since the last ready() (entries and snapshot not
   * yet being written, committed entries durable here and not yet handed out) and mark it in
   * progress, so the next ready() can come before this one's write completes.
   */
  private readyAsync(): Ready {
    const r = this.raft;
    const log = r.raftLog;
    const rd: Ready = {
      readStates: r.readStates,
      entries: log.unstable.nextEntries(),
      snapshot: log.unstable.nextSnapshot(),
      committedEntries: log.nextCommittedEnts(),
      messages: [],
      messagesAfterPersist: [],
      mustSync: false,
    };
    if (rd.snapshot === undefined) delete rd.snapshot;
    r.readStates = [];
    const ss = r.softState();
    if (ss.lead !== this.prevSoftSt.lead || ss.role !== this.prevSoftSt.role) {
      rd.softState = ss;
      this.prevSoftSt = ss;
    }
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHardSt)) rd.hardState = hs;
    rd.mustSync = rd.entries.length > 0 || hs.term !== this.prevHardSt.term ||
      hs.vote !== this.prevHardSt.vote;
    const volatile = hs.term !== this.durableHardSt.term || hs.vote !== this.durableHardSt.vote;
    for (const m of r.msgs) {
      invariant(m.to !== r.id, `message ${m.type} to self outside selfAfterPersist`);
      if (volatile || AFTER_PERSIST.has(m.type)) rd.messagesAfterPersist.push(m);
      else rd.messages.push(m);
    }
    r.msgs = [];
    log.unstable.acceptInProgress();
    const ce = rd.committedEntries;
    if (ce.length > 0) log.applyingTo(ce[ce.length - 1].index);
    if (rd.hardState && !isEmptyHardState(rd.hardState)) this.prevHardSt = rd.hardState;
    this.writes.push({ rd, self: r.selfAfterPersist });
    r.selfAfterPersist = [];
    return rd;
  }

  /**
   * The application has persisted, sent and applied everything in `rd`. With asynchronous
   * writes: it has applied rd.committedEntries (the write may still be running).
   */
  advance(rd: Ready): void {
    if (this.raft.asyncWrites) {
      this.raft.appliedEntries(rd.committedEntries);
      return;
    }
    if (rd.hardState && !isEmptyHardState(rd.hardState)) this.prevHardSt = rd.hardState;
    this.raft.advance(rd.committedEntries, rd.entries, rd.snapshot);
  }

  /**
   * Asynchronous writes: the write of `rd` (the oldest not yet reported) is durable, and its
   * snapshot, if any, applied. Counts the leader's own entries toward the quorum and lets this
   * node's own vote count.
   */
  persisted(rd: Ready): void {
    invariant(this.raft.asyncWrites, "persisted() without asyncStorageWrites");
    const w = this.writes[0];
    invariant(w !== undefined && w.rd === rd, "persisted() out of order: report writes in order");
    this.writes.shift();
    if (rd.hardState) this.durableHardSt = rd.hardState;
    this.raft.persisted(rd.entries[rd.entries.length - 1], rd.snapshot);
    for (const m of w.self) this.raft.step(m);
  }

  /** Asynchronous writes: how many Readies wait for persisted(). */
  writesInProgress(): number {
    return this.writes.length;
  }

  /** Full status; includes per-follower progress on the leader. */
  status(): Status {
    const s = this.basicStatus();
    if (this.raft.state === "leader") s.progress = this.raft.prs.progressStatus();
    return s;
  }

  /** Status without the progress map (cheap). */
  basicStatus(): Status {
    const r = this.raft;
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      leadTransferee: r.leadTransferee,
      config: r.prs.confState(),
    };
  }

  /** Convenience: the known leader id (0 when unknown). */
  leader(): NodeId {
    return this.raft.lead ?? NONE;
  }
}
