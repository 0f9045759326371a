// The Raft state machine (etcd's raft.go): Step dispatches on message type to the role's step
// function; tick drives elections and heartbeats. No clocks, randomness or I/O: time is tick(),
// randomness is config.rand, output is `msgs` and the log's unstable part, read by RawNode.
import type {
  ConfChange,
  Config,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  ReadState,
  Snapshot,
  SoftState,
  StateRole,
} from "./types.ts";
import { NONE, RaftError } from "./types.ts";
import { RaftLog } from "./log.ts";
import { ProgressTracker } from "./tracker.ts";
import { ReadOnly } from "./read_only.ts";
import { applySimpleChange, restoreConfState } from "./confchange.ts";
import { decodeConfChange } from "./confchange_codec.ts";
import { bytesEqual, invariant, newMessage, payloadsSize, voteRespType } from "./util.ts";

/** Context marking a vote request as part of a leadership transfer (bypasses the lease). */
export const CAMPAIGN_TRANSFER = new TextEncoder().encode("CampaignTransfer");

export type CampaignType = "preElection" | "election" | "transfer";

const DEFAULT_MAX_SIZE_PER_MSG = 1024 * 1024;
const DEFAULT_MAX_INFLIGHT = 256;
const DEFAULT_MAX_UNCOMMITTED = 16 * 1024 * 1024;

function validateConfig(c: Config): void {
  if (!Number.isSafeInteger(c.id) || c.id <= 0) {
    throw new Error(`raft config: id must be a positive integer, got ${c.id}`);
  }
  if (!(c.heartbeatTick > 0)) throw new Error("raft config: heartbeatTick must be greater than 0");
  if (!(c.electionTick > c.heartbeatTick)) {
    throw new Error("raft config: electionTick must be greater than heartbeatTick");
  }
  if (!c.storage) throw new Error("raft config: storage is required");
  if (typeof c.rand !== "function") {
    throw new Error("raft config: rand is required (injected randomness)");
  }
  if (c.maxInflightMsgs !== undefined && c.maxInflightMsgs <= 0) {
    throw new Error("raft config: maxInflightMsgs must be greater than 0");
  }
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  prs: ProgressTracker;
  state: StateRole = "follower";
  /** Whether this node is a learner in the current configuration. */
  isLearner = false;
  msgs: Message[] = [];
  lead: NodeId = NONE;
  /** Id of the transfer target while a leadership transfer is in progress. */
  leadTransferee: NodeId = NONE;
  /** Only one conf change may be pending (in the log, not yet applied); this is its index. */
  pendingConfIndex = 0;
  /** Payload bytes of uncommitted entries in the leader's log. */
  uncommittedSize = 0;
  readOnly = new ReadOnly();
  /** Ticks since the last election timeout reset (leader: since last CheckQuorum). */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  /** Config.asyncStorageWrites: self-acknowledgements wait for the application's report. */
  readonly asyncWrites: boolean;
  /**
   * Asynchronous writes: messages to this node itself (its vote for itself) that take effect
   * only once the write of the Ready that carries them is durable (RawNode.persisted).
   */
  selfAfterPersist: Message[] = [];
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  /** Randomized in [electionTimeout, 2*electionTimeout) at every reset. */
  randomizedElectionTimeout = 0;
  /** ReadIndex requests waiting for the leader to commit an entry of its term. */
  pendingReadIndexMessages: Message[] = [];
  /** Hand-off attempts of a removed leader (each retry tries the next voter). */
  private handOffAttempts = 0;
  /** Proposals were appended since the last broadcast (flushed by flushProposals). */
  appendPending = false;
  private readonly rand: (n: number) => number;
  private readonly logger?: (event: string, fields: Record<string, unknown>) => void;

  constructor(c: Config) {
    validateConfig(c);
    this.id = c.id;
    this.rand = c.rand;
    this.logger = c.logger;
    const maxSizePerMsg = c.maxSizePerMsg ?? DEFAULT_MAX_SIZE_PER_MSG;
    this.maxMsgSize = maxSizePerMsg;
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady ?? maxSizePerMsg * 8);
    const mu = c.maxUncommittedEntriesSize ?? DEFAULT_MAX_UNCOMMITTED;
    this.maxUncommittedSize = mu === 0 ? Infinity : mu;
    this.prs = new ProgressTracker(c.maxInflightMsgs ?? DEFAULT_MAX_INFLIGHT);
    this.checkQuorum = c.checkQuorum ?? true;
    this.preVote = c.preVote ?? true;
    this.asyncWrites = c.asyncStorageWrites ?? false;
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;

    const { hardState, confState } = c.storage.initialState();
    restoreConfState(this.prs, confState, this.raftLog.lastIndex());
    this.isLearner = this.prs.learners.has(this.id);
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (c.applied !== undefined && c.applied > this.raftLog.applied) {
      if (c.applied > this.raftLog.lastIndex()) {
        throw new Error(
          `raft: config.applied ${c.applied} is beyond the last log index ${this.raftLog.lastIndex()}: ` +
            "the storage lost entries the application had applied",
        );
      }
      // Whatever was applied was committed, even if the persisted commit index lags (commit-only
      // hard state changes need not be synced).
      this.raftLog.commitTo(c.applied);
      this.raftLog.appliedTo(c.applied);
      // The storage's configuration is the snapshot's; membership changes applied after it are
      // in the log up to `applied`, and will not be handed out again: replay them here.
      this.replayConfChanges(this.raftLog.firstIndex(), c.applied);
    }
    this.becomeFollower(this.term, NONE);
    this.log("newRaft", {
      term: this.term,
      commit: this.raftLog.committed,
      applied: this.raftLog.applied,
      lastIndex: this.raftLog.lastIndex(),
      voters: confState.voters,
      learners: confState.learners,
    });
  }

  private replayConfChanges(lo: number, hi: number): void {
    if (lo > hi) return;
    for (const e of this.raftLog.slice(lo, hi + 1, Infinity)) {
      if (e.type !== "confChange") continue;
      applySimpleChange(this.prs, decodeConfChange(e.data), this.raftLog.lastIndex());
    }
    this.isLearner = this.prs.learners.has(this.id);
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.logger?.(event, { id: this.id, ...fields });
  }

  softState(): SoftState {
    return { lead: this.lead, role: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  private loadState(hs: HardState): void {
    invariant(
      hs.commit <= this.raftLog.lastIndex(),
      `hard state commit ${hs.commit} is beyond the last index ${this.raftLog.lastIndex()}`,
    );
    // A snapshot implies its index is committed even if the hard state lags behind it.
    this.raftLog.committed = Math.max(hs.commit, this.raftLog.committed);
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---- sending ----------------------------------------------------------------------------

  private send(m: Message): void {
    // Forwarded messages (MsgProp, MsgReadIndex, MsgTransferLeader) keep their origin.
    if (m.from === NONE) m.from = this.id;
    if (
      m.type === "MsgVote" || m.type === "MsgVoteResp" || m.type === "MsgPreVote" ||
      m.type === "MsgPreVoteResp"
    ) {
      invariant(m.term !== 0, `term should be set when sending ${m.type}`);
    } else {
      invariant(m.term === 0, `term should not be set when sending ${m.type} (was ${m.term})`);
      // Proposals and read requests are forwarded as local messages and carry no term.
      if (m.type !== "MsgProp" && m.type !== "MsgReadIndex") m.term = this.term;
    }
    this.msgs.push(m);
  }

  /** Send an append (or a snapshot) to `to` if its progress allows it. */
  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Send entries from the follower's `next` on, or a snapshot if they are compacted. With
   * sendIfEmpty false nothing is sent when there is nothing new. Returns whether a message went.
   */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    let term: number | undefined;
    let ents: Entry[] | undefined;
    try {
      term = this.raftLog.term(pr.next - 1);
      ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
      term = undefined;
    }
    if (term !== undefined && ents !== undefined && ents.length === 0 && !sendIfEmpty) return false;

    if (term === undefined || ents === undefined) {
      // The entries the follower needs are compacted: send a snapshot instead.
      if (!pr.recentActive) {
        this.log("snapshotSkipped", { to, reason: "not recently active" });
        return false;
      }
      let snapshot: Snapshot;
      try {
        snapshot = this.raftLog.snapshot();
      } catch (e) {
        if (e instanceof RaftError && e.code === "SnapshotTemporarilyUnavailable") return false;
        throw e;
      }
      invariant(snapshot.metadata.index > 0, "need a non-empty snapshot to send");
      pr.becomeSnapshot(snapshot.metadata.index);
      this.log("sendSnapshot", {
        to,
        index: snapshot.metadata.index,
        term: snapshot.metadata.term,
      });
      this.send(newMessage({ type: "MsgSnap", to, snapshot }));
      return true;
    }

    const m = newMessage({
      type: "MsgApp",
      to,
      index: pr.next - 1,
      logTerm: term,
      entries: ents,
      commit: this.raftLog.committed,
    });
    if (ents.length > 0) {
      switch (pr.state) {
        case "replicate": {
          const last = ents[ents.length - 1].index;
          pr.optimisticUpdate(last);
          pr.inflights.add(last);
          break;
        }
        case "probe":
          pr.probeSent = true;
          break;
        default:
          invariant(false, `sending append to ${to} in state ${pr.state}`);
      }
    }
    this.send(m);
    return true;
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array | undefined): void {
    // Never advance a follower's commit beyond what it is known to have: it may not have it.
    const pr = this.prs.progress.get(to)!;
    const commit = Math.min(pr.match, this.raftLog.committed);
    this.send(newMessage({ type: "MsgHeartbeat", to, commit, context: ctx }));
  }

  bcastAppend(): void {
    this.prs.visit((id) => {
      if (id !== this.id) this.sendAppend(id);
    });
  }

  bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx());
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array | undefined): void {
    this.prs.visit((id) => {
      if (id !== this.id) this.sendHeartbeat(id, ctx);
    });
  }

  // ---- Ready support ----------------------------------------------------------------------

  /** The application persisted and applied what a Ready handed out (RawNode.advance). */
  advance(committedEntries: Entry[], entries: Entry[], snapshot: Snapshot | undefined): void {
    this.reduceUncommittedSize(committedEntries);
    let newApplied = 0;
    if (committedEntries.length > 0) {
      newApplied = committedEntries[committedEntries.length - 1].index;
    } else if (snapshot) newApplied = snapshot.metadata.index;
    if (newApplied > 0) this.raftLog.appliedTo(newApplied);
    if (entries.length > 0) {
      const e = entries[entries.length - 1];
      this.raftLog.stableTo(e.index, e.term);
    }
    if (snapshot) this.raftLog.stableSnapTo(snapshot.metadata.index);
  }

  /** Asynchronous writes: the application applied `committedEntries` of a Ready. */
  appliedEntries(committedEntries: Entry[]): void {
    this.reduceUncommittedSize(committedEntries);
    if (committedEntries.length === 0) return;
    this.raftLog.appliedTo(committedEntries[committedEntries.length - 1].index);
  }

  /**
   * Asynchronous writes: a Ready's write is durable (its snapshot already applied by the
   * application). The leader's own log now counts toward the commit quorum up to `last`, if that
   * entry is still in its log: this self-acknowledgement is the only way its own entries count.
   */
  persisted(last: Entry | undefined, snapshot: Snapshot | undefined): void {
    if (snapshot) {
      this.raftLog.stableSnapTo(snapshot.metadata.index);
      this.raftLog.appliedTo(snapshot.metadata.index);
    }
    if (!last) return;
    this.raftLog.stableTo(last.index, last.term);
    if (this.state !== "leader" || !this.raftLog.matchTerm(last.index, last.term)) return;
    const self = this.prs.progress.get(this.id);
    if (!self?.maybeUpdate(last.index)) return;
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    }
  }

  /** Commit whatever a quorum has replicated. Returns whether the commit index moved. */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.prs.committed(), this.term);
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    const last = this.raftLog.lastIndex();
    // With asynchronous writes a node's own log counts only as far as it is durable.
    const ownMatch = this.asyncWrites ? Math.min(last, this.raftLog.stableLastIndex()) : last;
    this.prs.visit((id, pr) => {
      pr.match = 0;
      pr.next = last + 1;
      pr.state = "probe";
      pr.pendingSnapshot = 0;
      pr.probeSent = false;
      pr.recentActive = false;
      pr.inflights.reset();
      if (id === this.id) pr.match = ownMatch;
    });
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    // Reads waiting on a former leadership are dropped with it (their requesters retry).
    this.pendingReadIndexMessages = [];
    this.appendPending = false;
  }

  /** Broadcast proposals appended since the last call (RawNode calls this before each Ready). */
  flushProposals(): void {
    if (!this.appendPending) return;
    this.appendPending = false;
    if (this.state === "leader") this.bcastAppend();
  }

  /** Append entries to the leader's own log. Returns false when the uncommitted cap refuses. */
  appendEntry(es: Entry[]): boolean {
    let li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      es[i].term = this.term;
      es[i].index = li + 1 + i;
    }
    if (!this.increaseUncommittedSize(es)) {
      this.log("proposalDropped", { reason: "uncommitted size cap", cap: this.maxUncommittedSize });
      return false;
    }
    li = this.raftLog.append(es);
    // With asynchronous writes the leader acknowledges its own entries when their write is
    // reported durable (persisted), not now.
    if (this.asyncWrites) return true;
    this.prs.progress.get(this.id)?.maybeUpdate(li);
    this.maybeCommit();
    return true;
  }

  // ---- ticks --------------------------------------------------------------------------------

  tick(): void {
    if (this.state === "leader") this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(newMessage({ type: "MsgHup", from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(newMessage({ type: "MsgCheckQuorum", from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === "leader" && this.leadTransferee !== NONE) this.abortLeaderTransfer();
      // A removed leader keeps trying to hand off its leadership.
      if (this.state === "leader" && !this.prs.progress.has(this.id)) this.handOffLeadership();
    }
    if (this.state !== "leader") return;
    this.expireSnapshots();
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(newMessage({ type: "MsgBeat", from: this.id }));
    }
  }

  /**
   * A snapshot whose outcome was never reported (lost message, crashed receiver, transport that
   * does not call reportSnapshot) would pause the follower forever: after two election timeouts
   * treat it as failed, so the follower is probed again (and sent a fresh snapshot if needed).
   */
  private expireSnapshots(): void {
    this.prs.visit((id, pr) => {
      if (id === this.id || pr.state !== "snapshot") return;
      if (++pr.snapshotElapsed < 2 * this.electionTimeout) return;
      this.log("snapshotExpired", { to: id, index: pr.pendingSnapshot });
      pr.pendingSnapshot = 0;
      pr.becomeProbe();
    });
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.rand(this.electionTimeout);
  }

  // ---- role transitions ---------------------------------------------------------------------

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = "follower";
    this.log("becomeFollower", { term, lead });
  }

  becomeCandidate(): void {
    invariant(this.state !== "leader", "invalid transition [leader -> candidate]");
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = "candidate";
    this.log("becomeCandidate", { term: this.term });
  }

  becomePreCandidate(): void {
    invariant(this.state !== "leader", "invalid transition [leader -> pre-candidate]");
    // Pre-candidacy changes neither term nor vote.
    this.prs.resetVotes();
    this.lead = NONE;
    this.state = "preCandidate";
    this.log("becomePreCandidate", { term: this.term });
  }

  becomeLeader(): void {
    invariant(this.state !== "follower", "invalid transition [follower -> leader]");
    this.reset(this.term);
    this.lead = this.id;
    this.state = "leader";
    this.prs.progress.get(this.id)?.becomeReplicate();
    // Paper §8: a new leader commits an empty entry of its term first.
    const ok = this.appendEntry([{ term: 0, index: 0, type: "normal", data: new Uint8Array() }]);
    invariant(ok, "empty entry was dropped");
    // Refuse membership changes until that entry is applied: any entry before it might be a
    // conf change not yet applied, and a leader must commit an entry of its own term before
    // changing the membership (the known single-server-change bug otherwise).
    this.pendingConfIndex = this.raftLog.lastIndex();
    this.log("becomeLeader", { term: this.term });
  }

  private hup(t: CampaignType): void {
    if (this.state === "leader") return;
    if (!this.promotable()) {
      this.log("campaignIgnored", { reason: "not promotable" });
      return;
    }
    const lo = Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
    if (this.raftLog.committed >= lo) {
      const ents = this.raftLog.slice(lo, this.raftLog.committed + 1, Infinity);
      if (ents.some((e) => e.type === "confChange")) {
        this.log("campaignIgnored", { reason: "pending conf change not applied" });
        return;
      }
    }
    this.campaign(t);
  }

  /** Whether this node can become leader: a voter with no pending snapshot. */
  promotable(): boolean {
    if (this.raftLog.hasPendingSnapshot()) return false;
    const pr = this.prs.progress.get(this.id);
    if (pr !== undefined) return !pr.isLearner;
    // Asynchronous writes: a leader's entries reach followers before its own disk, so a member
    // removed by a configuration change may hold entries that the remaining voters lost in a
    // crash; a remaining voter that has not applied the removal still needs this member's
    // vote, which it refuses to a shorter log. So a removed member (of a non-empty
    // configuration) campaigns too; as leader it hands off at once (handOffLeadership).
    return this.asyncWrites && this.prs.voters.size > 0;
  }

  campaign(t: CampaignType): void {
    if (!this.promotable()) return;
    let voteMsg: "MsgVote" | "MsgPreVote";
    let term: number;
    if (t === "preElection") {
      this.becomePreCandidate();
      voteMsg = "MsgPreVote";
      // Pre-votes ask for the next term without incrementing ours.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = "MsgVote";
      term = this.term;
    }
    if (t !== "preElection" && this.asyncWrites) {
      // Our own vote counts only once the term and vote carrying it are durable.
      this.selfAfterPersist.push(
        newMessage({ type: "MsgVoteResp", to: this.id, from: this.id, term }),
      );
      this.sendVoteRequests(voteMsg, term, t);
      return;
    }
    const { result } = this.poll(this.id, voteRespType(voteMsg), true);
    if (result === "won") {
      // Single-voter cluster: won immediately.
      if (t === "preElection") this.campaign("election");
      else this.becomeLeader();
      return;
    }
    this.sendVoteRequests(voteMsg, term, t);
  }

  private sendVoteRequests(voteMsg: "MsgVote" | "MsgPreVote", term: number, t: CampaignType) {
    for (const id of this.prs.voterIds()) {
      if (id === this.id) continue;
      this.send(newMessage({
        type: voteMsg,
        to: id,
        term,
        index: this.raftLog.lastIndex(),
        logTerm: this.raftLog.lastTerm(),
        context: t === "transfer" ? CAMPAIGN_TRANSFER : undefined,
      }));
    }
  }

  private poll(id: NodeId, t: string, v: boolean) {
    this.log("poll", { from: id, type: t, granted: v, term: this.term });
    this.prs.recordVote(id, v);
    return this.prs.tallyVotes();
  }

  // ---- step ---------------------------------------------------------------------------------

  /** Feed one message. Throws RaftError ProposalDropped when a proposal cannot be accepted. */
  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === "MsgVote" || m.type === "MsgPreVote") {
        const force = bytesEqual(m.context, CAMPAIGN_TRANSFER);
        const inLease = this.checkQuorum && this.lead !== NONE &&
          this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // We heard from a leader within the election timeout: do not update the term or
          // grant the vote; a partitioned node rejoining must not disrupt the cluster.
          this.log("voteIgnoredInLease", { from: m.from, type: m.type, term: m.term });
          return;
        }
      }
      if (m.type === "MsgPreVote") {
        // Never change our term in response to a pre-vote.
      } else if (m.type === "MsgPreVoteResp" && !m.reject) {
        // We will bump our term when we win the pre-vote and start the real election.
      } else {
        if (m.type === "MsgApp" || m.type === "MsgHeartbeat" || m.type === "MsgSnap") {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, NONE);
        }
      }
    } else if (m.term < this.term) {
      if (
        (this.checkQuorum || this.preVote) && (m.type === "MsgHeartbeat" || m.type === "MsgApp")
      ) {
        // A stale leader (e.g. after a partition) learns of the newer term from this response.
        this.send(newMessage({ type: "MsgAppResp", to: m.from }));
      } else if (m.type === "MsgPreVote") {
        // Reject, with our term, so the pre-candidate learns it is behind.
        this.send(
          newMessage({ type: "MsgPreVoteResp", to: m.from, term: this.term, reject: true }),
        );
      }
      // Otherwise ignore the stale-term message.
      return;
    }

    switch (m.type) {
      case "MsgHup":
        this.hup(this.preVote ? "preElection" : "election");
        return;
      case "MsgVote":
      case "MsgPreVote": {
        const canVote = this.vote === m.from ||
          (this.vote === NONE && this.lead === NONE) ||
          (m.type === "MsgPreVote" && m.term > this.term);
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          // Pre-vote responses carry the requested term; real votes carry our (now equal) term.
          this.send(newMessage({ type: voteRespType(m.type), to: m.from, term: m.term }));
          if (m.type === "MsgVote") {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send(newMessage({
            type: voteRespType(m.type),
            to: m.from,
            term: this.term,
            reject: true,
          }));
        }
        return;
      }
      default:
        switch (this.state) {
          case "leader":
            this.stepLeader(m);
            return;
          case "candidate":
          case "preCandidate":
            this.stepCandidate(m);
            return;
          case "follower":
            this.stepFollower(m);
            return;
        }
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case "MsgBeat":
        this.bcastHeartbeat();
        return;
      case "MsgCheckQuorum": {
        // The leader always counts itself as active (if it is still a member).
        const self = this.prs.progress.get(this.id);
        if (self) self.recentActive = true;
        if (!self) {
          // A removed leader keeps leading the new configuration (replicating, carrying the
          // commit index, accepting no proposals) until its hand-off produces a leader of a
          // higher term: a survivor that never learned the removal is committed may need it to
          // (e.g. {A, B} removing A while B is down). It steps down on seeing a higher term.
        } else if (!this.prs.quorumActive()) {
          this.log("stepDown", { reason: "quorum not active", term: this.term });
          this.becomeFollower(this.term, NONE);
        }
        this.prs.visit((id, pr) => {
          if (id !== this.id) pr.recentActive = false;
        });
        return;
      }
      case "MsgProp": {
        invariant(m.entries.length > 0, "stepped empty MsgProp");
        if (!this.prs.progress.has(this.id)) {
          throw new RaftError(
            "ProposalDropped",
            "proposal dropped: this node was removed from the cluster",
          );
        }
        if (this.leadTransferee !== NONE) {
          throw new RaftError(
            "ProposalDropped",
            `proposal dropped: leadership is being transferred to ${this.leadTransferee}; retry later`,
          );
        }
        for (let i = 0; i < m.entries.length; i++) {
          const e = m.entries[i];
          if (e.type !== "confChange") continue;
          if (this.pendingConfIndex > this.raftLog.applied) {
            // At most one membership change may be in flight: replace this one with a no-op.
            this.log("confChangeRefused", {
              reason: "another conf change is pending",
              pendingConfIndex: this.pendingConfIndex,
              applied: this.raftLog.applied,
            });
            m.entries[i] = { term: 0, index: 0, type: "normal", data: new Uint8Array() };
          } else {
            this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
          }
        }
        if (!this.appendEntry(m.entries)) {
          throw new RaftError(
            "ProposalDropped",
            "proposal dropped: too many uncommitted bytes at the leader; retry after the backlog commits",
          );
        }
        // Batching: proposals arriving before the next Ready go out in one append per follower.
        this.appendPending = true;
        return;
      }
      case "MsgReadIndex": {
        // Serve reads only once an entry of this term is committed: before that, the commit
        // index may lag behind what a previous leader acknowledged (or, under asynchronous
        // writes, what this very node committed before a restart).
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.startReadIndex(m);
        return;
      }
    }

    const pr = this.prs.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case "MsgAppResp": {
        pr.recentActive = true;
        if (m.reject) {
          let nextProbeIdx = m.rejectHint;
          if (m.logTerm > 0) {
            // Skip every entry of ours whose term is above the follower's term at the hint.
            nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)[0];
          }
          if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
            if (pr.state === "replicate") pr.becomeProbe();
            this.sendAppend(m.from);
          }
        } else {
          const oldPaused = pr.isPaused();
          if (pr.maybeUpdate(m.index)) {
            if (pr.state === "probe") {
              pr.becomeReplicate();
            } else if (pr.state === "snapshot" && pr.match + 1 >= this.raftLog.firstIndex()) {
              // The follower can continue from our log (it caught up through the snapshot or
              // otherwise): resume appends without waiting for reportSnapshot.
              pr.becomeProbe();
              pr.becomeReplicate();
            } else if (pr.state === "replicate") {
              pr.inflights.freeLE(m.index);
            }
            if (this.maybeCommit()) {
              this.releasePendingReadIndexMessages();
              this.bcastAppend();
            } else if (oldPaused) {
              this.sendAppend(m.from);
            }
            // Keep the pipeline full while the window allows.
            while (this.maybeSendAppend(m.from, false)) { /* send more */ }
            if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
              this.log("transferCaughtUp", { to: m.from });
              this.sendTimeoutNow(m.from);
            }
          }
        }
        return;
      }
      case "MsgHeartbeatResp": {
        pr.recentActive = true;
        pr.probeSent = false;
        if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
        if (!m.context || m.context.length === 0) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (this.prs.voteResultOf(acks) !== "won") return;
        for (const rs of this.readOnly.advance(m.context)) {
          this.respondToReadIndex(rs.req, rs.index);
        }
        return;
      }
      case "MsgSnapStatus": {
        if (pr.state !== "snapshot") return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for a heartbeat response (or append response) before probing again.
        pr.probeSent = true;
        return;
      }
      case "MsgUnreachable":
        if (pr.state === "replicate") pr.becomeProbe();
        return;
      case "MsgTransferLeader": {
        if (pr.isLearner) {
          this.log("transferIgnored", { to: m.from, reason: "learner" });
          return;
        }
        const transferee = m.from;
        if (this.leadTransferee !== NONE) {
          if (this.leadTransferee === transferee) return; // already in progress
          this.abortLeaderTransfer();
        }
        if (transferee === this.id) return; // already leader
        this.electionElapsed = 0; // the transfer must finish within one election timeout
        this.leadTransferee = transferee;
        this.log("transferStart", { to: transferee, term: this.term });
        if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
        else this.sendAppend(transferee);
        return;
      }
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteResp = this.state === "preCandidate" ? "MsgPreVoteResp" : "MsgVoteResp";
    switch (m.type) {
      case "MsgProp":
        throw new RaftError(
          "ProposalDropped",
          "proposal dropped: no leader (election in progress); retry later",
        );
      case "MsgApp":
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case "MsgHeartbeat":
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case "MsgPreVoteResp":
      case "MsgVoteResp": {
        if (m.type !== myVoteResp) return;
        const { result } = this.poll(m.from, m.type, !m.reject);
        if (result === "won") {
          if (this.state === "preCandidate") {
            this.campaign("election");
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (result === "lost") {
          // A pre-vote rejection may carry a higher term; otherwise stay in this term.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
      case "MsgTimeoutNow":
        return; // already campaigning
      case "MsgReadIndex":
        this.log("readIndexDropped", { reason: "no leader" });
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case "MsgProp":
        if (this.lead === NONE) {
          throw new RaftError("ProposalDropped", "proposal dropped: no leader known; retry later");
        }
        m.to = this.lead;
        this.send(m);
        return;
      case "MsgApp":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case "MsgHeartbeat":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case "MsgSnap":
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case "MsgTransferLeader":
        if (this.lead === NONE) {
          this.log("transferIgnored", { reason: "no leader" });
          return;
        }
        m.to = this.lead;
        this.send(m);
        return;
      case "MsgTimeoutNow":
        this.log("timeoutNow", { from: m.from, term: this.term });
        // Leadership transfer: campaign now, skipping pre-vote, with the transfer marker.
        this.hup("transfer");
        return;
      case "MsgReadIndex":
        if (this.lead === NONE) {
          this.log("readIndexDropped", { reason: "no leader" });
          return;
        }
        m.to = this.lead;
        this.send(m);
        return;
      case "MsgReadIndexResp":
        if (m.entries.length !== 1) return;
        this.readStates.push({ index: m.index, requestCtx: m.entries[0].data });
        return;
    }
  }

  handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      this.send(newMessage({ type: "MsgAppResp", to: m.from, index: this.raftLog.committed }));
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(newMessage({ type: "MsgAppResp", to: m.from, index: lastNew }));
      return;
    }
    // Reject with a hint: the largest index <= m.index whose term is <= m.logTerm, so the
    // leader can skip a whole conflicting term in one round trip.
    const hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    const [idx, hintTerm] = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    this.send(newMessage({
      type: "MsgAppResp",
      to: m.from,
      index: m.index,
      reject: true,
      rejectHint: idx,
      logTerm: hintTerm,
    }));
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    this.send(newMessage({ type: "MsgHeartbeatResp", to: m.from, context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (!s) return;
    if (this.restore(s)) {
      this.log("snapshotRestored", { index: s.metadata.index, term: s.metadata.term });
      this.send(newMessage({ type: "MsgAppResp", to: m.from, index: this.raftLog.lastIndex() }));
    } else {
      this.log("snapshotIgnored", { index: s.metadata.index, term: s.metadata.term });
      this.send(newMessage({ type: "MsgAppResp", to: m.from, index: this.raftLog.committed }));
    }
  }

  /** Install a snapshot from the leader. Returns false when it is stale or redundant. */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== "follower") {
      // Only a follower may install a snapshot; be defensive.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.metadata.confState;
    const inSnapshot = cs.voters.includes(this.id) || cs.learners.includes(this.id);
    // A brand-new node (not in its own configuration yet) accepts a snapshot taken before it was
    // added: the conf change adding it follows in the log. A member refuses a snapshot that
    // does not list it.
    if (!inSnapshot && this.prs.progress.has(this.id)) {
      this.log("snapshotIgnored", { reason: "not a member of the snapshot's configuration" });
      return false;
    }
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the entry: just fast-forward the commit index.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    restoreConfState(this.prs, cs, this.raftLog.lastIndex());
    this.isLearner = this.prs.learners.has(this.id);
    const pr = this.prs.progress.get(this.id);
    pr?.maybeUpdate(pr.next - 1);
    return true;
  }

  // ---- ReadIndex ----------------------------------------------------------------------------

  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.zeroTermOnError(this.raftLog.committed) === this.term;
  }

  private startReadIndex(m: Message): void {
    if (this.prs.isSingleton() && this.prs.voters.has(this.id)) {
      // The only voter is this node: no one else can be leader.
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    const ctx = m.entries[0].data;
    this.readOnly.addRequest(this.raftLog.committed, m);
    this.readOnly.recvAck(this.id, ctx);
    this.bcastHeartbeatWithCtx(ctx);
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (!this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.startReadIndex(m);
  }

  private respondToReadIndex(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.entries[0].data });
      return;
    }
    this.send(newMessage({ type: "MsgReadIndexResp", to: req.from, index, entries: req.entries }));
  }

  // ---- membership -------------------------------------------------------------------------

  /** Apply a committed membership change (called by the application when it applies the entry). */
  applyConfChange(cc: ConfChange): ConfState {
    const refused = applySimpleChange(this.prs, cc, this.raftLog.lastIndex());
    if (refused) {
      this.log("confChangeIgnored", { type: cc.type, nodeId: cc.nodeId, reason: refused });
    }
    return this.switchToConfig();
  }

  private switchToConfig(): ConfState {
    const cs = this.prs.confState();
    const pr = this.prs.progress.get(this.id);
    this.isLearner = pr?.isLearner ?? false;
    if (this.state !== "leader" || cs.voters.length === 0) return cs;
    // The quorum may have changed: maybe commit more, and catch up new members.
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else {
      this.prs.visit((id) => {
        if (id !== this.id) this.maybeSendAppend(id, false);
      });
    }
    if (this.leadTransferee !== NONE && !this.prs.voters.has(this.leadTransferee)) {
      this.abortLeaderTransfer();
    }
    if (!pr || this.isLearner) this.handOffLeadership();
    return cs;
  }

  /**
   * A removed leader steps down by handing leadership to the most up-to-date remaining voter
   * (catch-up, then MsgTimeoutNow); it becomes a follower when that voter's election reaches it.
   * Stepping down at once could wedge the cluster: a survivor that has not yet learned that the
   * removal is committed still needs the old leader's vote, which a longer log would refuse
   * (e.g. {A, B} removing A). Proposals are dropped meanwhile; a stalled hand-off is retried
   * every election timeout (moving on to the next voter), and CheckQuorum does not step a removed
   * leader down: it leads until a higher term reaches it.
   */
  private handOffLeadership(): void {
    // Most caught-up first; each retry moves on to the next voter, so a dead voter cannot stall
    // the hand-off forever.
    const order = this.prs.voterIds().filter((id) => id !== this.id).sort((a, b) =>
      this.prs.progress.get(b)!.match - this.prs.progress.get(a)!.match || a - b
    );
    const best = order.length > 0 ? order[this.handOffAttempts++ % order.length] : NONE;
    if (best === NONE) {
      this.log("stepDown", { reason: "removed from the configuration", term: this.term });
      this.becomeFollower(this.term, NONE);
      return;
    }
    this.log("removedLeaderHandsOff", { to: best, term: this.term });
    this.leadTransferee = best;
    this.electionElapsed = 0;
    if (this.prs.progress.get(best)!.match === this.raftLog.lastIndex()) this.sendTimeoutNow(best);
    else this.sendAppend(best);
  }

  // ---- leadership transfer ------------------------------------------------------------------

  private sendTimeoutNow(to: NodeId): void {
    this.send(newMessage({ type: "MsgTimeoutNow", to }));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  // ---- uncommitted size cap ---------------------------------------------------------------

  private increaseUncommittedSize(ents: Entry[]): boolean {
    const s = payloadsSize(ents);
    if (this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > this.maxUncommittedSize) {
      return false;
    }
    this.uncommittedSize += s;
    return true;
  }

  private reduceUncommittedSize(ents: Entry[]): void {
    if (this.state !== "leader") return;
    const s = payloadsSize(ents);
    this.uncommittedSize = s > this.uncommittedSize ? 0 : this.uncommittedSize - s;
  }

  /** Decode the ConfChange in a confChange entry (convenience for applications). */
  static confChangeOf(e: Entry): ConfChange {
    return decodeConfChange(e.data);
  }
}

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
