// The leader's membership policy, as a pure function of what it knows: at most one change at a
// time, chosen in this order:
//   1. a voter unreachable longer than deadVoterTimeout is replaced: first a caught-up learner is
//      promoted (the dead voter still counts, so the healthy majority only grows), then, once
//      there are more voters than wanted, the dead voter is removed;
//   2. while there are fewer voters than wanted, a caught-up learner is promoted (caught up: heard
//      from lately, and it has acknowledged entries close to the commit index);
//   3. a learner unreachable longer than deadVoterTimeout is removed (it holds no vote);
//   4. while there are more voters than wanted (--voters lowered), one voter is demoted to a
//      learner. The Raft core has no single-step demotion (lib/raft/confchange.ts refuses to
//      make a voter a learner), so a demotion is two changes: the voter is removed with a
//      context that keeps its entry in the member table (so no member tells it it was removed),
//      then it is added back as a learner. Finishing a started demotion comes before anything
//      else, on whichever member leads by then. Only a voter that is not the leader is demoted,
//      one that is silent (restarting) first, and only while the voters heard from lately are a
//      quorum both now and of the smaller voter set.
// Nothing is done unless the healthy voters form a quorum of the current voters (otherwise no
// change could commit anyway), so a change never leaves fewer healthy voters than a quorum.
import type { NodeId } from "../../raft/types.ts";

export interface MembershipView {
  now: number;
  self: NodeId;
  voters: NodeId[];
  learners: NodeId[];
  /** Leader's commit index. */
  commit: number;
  /** Replication progress per member (leader's tracker). */
  match: Map<NodeId, number>;
  /** When the leader last heard from each member (ms, same clock as now). */
  lastContact: Map<NodeId, number>;
  /** When this member became leader: contact before that is not known. */
  leaderSince: number;
  desiredVoters: number;
  deadVoterTimeoutMs: number;
  /** A learner is caught up when heard from within this many ms... */
  freshContactMs: number;
  /** ...and its match index is at most this far behind the commit index. */
  catchUpSlack: number;
  pendingConfChange: boolean;
  /** Members removed as voters to be added back as learners (a demotion under way). */
  demoting?: NodeId[];
}

export type MembershipAction =
  | {
    type: "promote";
    id: NodeId;
    reason: "replace_dead_voter" | "fill_voters";
    replacing?: NodeId;
  }
  | { type: "removeVoter"; id: NodeId; reason: "dead" }
  | { type: "removeLearner"; id: NodeId; reason: "dead" }
  | { type: "demote"; id: NodeId; reason: "over_voters" }
  | { type: "readdLearner"; id: NodeId; reason: "demoted" };

export function quorum(n: number): number {
  return Math.floor(n / 2) + 1;
}

export function decideMembership(v: MembershipView): MembershipAction | null {
  if (v.pendingConfChange) return null;
  const demoting = (v.demoting ?? []).filter((id) =>
    !v.voters.includes(id) && !v.learners.includes(id)
  );
  if (demoting.length > 0) return { type: "readdLearner", id: demoting[0], reason: "demoted" };
  const since = (id: NodeId) =>
    id === v.self ? 0 : v.now - Math.max(v.lastContact.get(id) ?? 0, v.leaderSince);
  const dead = (id: NodeId) => since(id) > v.deadVoterTimeoutMs;
  const deadVoters = v.voters.filter(dead);
  const healthyVoters = v.voters.length - deadVoters.length;
  if (healthyVoters < quorum(v.voters.length)) return null;
  // A learner that has acknowledged nothing (match 0) has not caught up, however short the log:
  // it may not even be serving yet, and a voter that cannot vote weakens the quorum.
  const caughtUp = v.learners
    .filter((id) => {
      const match = v.match.get(id) ?? 0;
      return since(id) <= v.freshContactMs && match > 0 && match + v.catchUpSlack >= v.commit;
    })
    .sort((a, b) => (v.match.get(b) ?? 0) - (v.match.get(a) ?? 0) || a - b);

  if (deadVoters.length > 0) {
    if (v.voters.length > v.desiredVoters) {
      const id = deadVoters[0];
      // Removing a dead voter keeps every healthy voter; the new quorum is never larger.
      return { type: "removeVoter", id, reason: "dead" };
    }
    if (caughtUp.length > 0 && v.voters.length < 7) {
      return {
        type: "promote",
        id: caughtUp[0],
        reason: "replace_dead_voter",
        replacing: deadVoters[0],
      };
    }
  }
  if (v.voters.length < v.desiredVoters && caughtUp.length > 0) {
    return { type: "promote", id: caughtUp[0], reason: "fill_voters" };
  }
  const deadLearner = v.learners.find(dead);
  if (deadLearner !== undefined) return { type: "removeLearner", id: deadLearner, reason: "dead" };
  return decideDemotion(v, since);
}

/** One voter to demote while there are more than wanted: never the leader; one not heard from
 *  lately first (a member restarting), then the most lagging, then the highest id. Only when the
 *  voters heard from within freshContactMs are a quorum now (the change must commit) and a
 *  quorum of the voters left (the cluster must go on taking writes). */
function decideDemotion(v: MembershipView, since: (id: NodeId) => number): MembershipAction | null {
  if (v.voters.length <= Math.max(1, v.desiredVoters)) return null;
  const fresh = (id: NodeId) => since(id) <= v.freshContactMs;
  const pick =
    v.voters.filter((id) => id !== v.self).sort((a, b) =>
      Number(fresh(a)) - Number(fresh(b)) ||
      (v.match.get(a) ?? 0) - (v.match.get(b) ?? 0) || b - a
    )[0];
  if (pick === undefined) return null;
  const freshNow = v.voters.filter(fresh).length;
  const freshLeft = v.voters.filter((id) => id !== pick && fresh(id)).length;
  if (freshNow < quorum(v.voters.length) || freshLeft < quorum(v.voters.length - 1)) return null;
  return { type: "demote", id: pick, reason: "over_voters" };
}
