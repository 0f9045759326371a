// The leader's (and every node's) view of the membership: voters, learners, a Progress per
// member, and the votes of the current election.
import type { ConfState, NodeId, ProgressStatus } from "./types.ts";
import type { Progress } from "./progress.ts";
import { committedIndex, type VoteResult, voteResult } from "./quorum.ts";

export class ProgressTracker {
  voters = new Set<NodeId>();
  learners = new Set<NodeId>();
  progress = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();

  constructor(readonly maxInflight: number) {}

  confState(): ConfState {
    return {
      voters: [...this.voters].sort((a, b) => a - b),
      learners: [...this.learners].sort((a, b) => a - b),
    };
  }

  isSingleton(): boolean {
    return this.voters.size === 1;
  }

  /** Member ids in ascending order (deterministic iteration). */
  ids(): NodeId[] {
    return [...this.progress.keys()].sort((a, b) => a - b);
  }

  voterIds(): NodeId[] {
    return [...this.voters].sort((a, b) => a - b);
  }

  visit(f: (id: NodeId, pr: Progress) => void): void {
    for (const id of this.ids()) f(id, this.progress.get(id)!);
  }

  /** The largest index replicated to a quorum of voters. */
  committed(): number {
    return committedIndex(this.voters, (id) => this.progress.get(id)?.match);
  }

  /** Whether a quorum of voters has been recently active (CheckQuorum). */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    this.visit((id, pr) => {
      if (!pr.isLearner) votes.set(id, pr.recentActive);
    });
    return voteResult(this.voters, votes) === "won";
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  recordVote(id: NodeId, v: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, v);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: voteResult(this.voters, this.votes) };
  }

  voteResultOf(acks: ReadonlyMap<NodeId, boolean>): VoteResult {
    return voteResult(this.voters, acks);
  }

  progressStatus(): Map<NodeId, ProgressStatus> {
    const out = new Map<NodeId, ProgressStatus>();
    this.visit((id, pr) => {
      out.set(id, {
        match: pr.match,
        next: pr.next,
        state: pr.state,
        isLearner: pr.isLearner,
        recentActive: pr.recentActive,
        inflight: pr.inflights.count(),
        pendingSnapshot: pr.pendingSnapshot,
      });
    });
    return out;
  }
}
