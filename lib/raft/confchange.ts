// Single-step membership changes applied to the tracker. Every node applies the same committed
// change, so an invalid change is a deterministic no-op everywhere (reported, never thrown).
import type { ConfChange, ConfState, NodeId } from "./types.ts";
import { Progress } from "./progress.ts";
import type { ProgressTracker } from "./tracker.ts";

/**
 * Apply `cc` to `tracker`. New members get a Progress with next = lastIndex (marked recently
 * active so CheckQuorum does not count them as silent before they had a chance to answer).
 * Returns undefined when applied, or a sentence saying why the change was ignored.
 */
export function applySimpleChange(
  tracker: ProgressTracker,
  cc: ConfChange,
  lastIndex: number,
): string | undefined {
  const id = cc.nodeId;
  if (!Number.isSafeInteger(id) || id <= 0) return `node id ${id} is not a positive integer`;
  switch (cc.type) {
    case "addNode": {
      if (tracker.voters.has(id)) return undefined;
      if (tracker.learners.has(id)) {
        tracker.learners.delete(id);
        tracker.voters.add(id);
        tracker.progress.get(id)!.isLearner = false;
        return undefined;
      }
      tracker.voters.add(id);
      tracker.progress.set(id, newProgress(tracker, lastIndex, false));
      return undefined;
    }
    case "addLearner": {
      if (tracker.learners.has(id)) return undefined;
      if (tracker.voters.has(id)) {
        return `node ${id} is a voter; demoting a voter to a learner is not supported`;
      }
      tracker.learners.add(id);
      tracker.progress.set(id, newProgress(tracker, lastIndex, true));
      return undefined;
    }
    case "removeNode": {
      if (tracker.voters.has(id) && tracker.voters.size === 1) {
        return `node ${id} is the last voter; removing it would leave no voters`;
      }
      tracker.voters.delete(id);
      tracker.learners.delete(id);
      tracker.progress.delete(id);
      return undefined;
    }
    default:
      return `unknown conf change type ${(cc as ConfChange).type}`;
  }
}

function newProgress(tracker: ProgressTracker, lastIndex: number, isLearner: boolean): Progress {
  const pr = new Progress(Math.max(lastIndex, 1), tracker.maxInflight, isLearner);
  pr.recentActive = true;
  return pr;
}

/** Rebuild the membership from a ConfState (startup, snapshot restore). */
export function restoreConfState(tracker: ProgressTracker, cs: ConfState, lastIndex: number): void {
  tracker.voters = new Set();
  tracker.learners = new Set();
  tracker.progress = new Map();
  const overlap = cs.voters.filter((v: NodeId) => cs.learners.includes(v));
  if (overlap.length > 0) {
    throw new Error(
      `raft: conf state lists node(s) ${overlap.join(",")} as both voter and learner`,
    );
  }
  for (const id of cs.voters) {
    tracker.voters.add(id);
    tracker.progress.set(id, newProgress(tracker, lastIndex, false));
  }
  for (const id of cs.learners) {
    tracker.learners.add(id);
    tracker.progress.set(id, newProgress(tracker, lastIndex, true));
  }
}
