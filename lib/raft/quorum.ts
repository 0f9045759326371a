// Majority arithmetic over a set of voters, tested in isolation.
import type { NodeId } from "./types.ts";

export type VoteResult = "pending" | "lost" | "won";

/**
 * The highest index acknowledged by a majority of `voters`, given each voter's acknowledged
 * index. An empty voter set returns Infinity (it commits nothing by itself: callers also require
 * the entry's term to match).
 */
export function committedIndex(
  voters: ReadonlySet<NodeId>,
  acked: (id: NodeId) => number | undefined,
): number {
  const n = voters.size;
  if (n === 0) return Infinity;
  const srt: number[] = [];
  for (const id of voters) srt.push(acked(id) ?? 0);
  srt.sort((a, b) => a - b);
  // With srt ascending, the entry at n - (n/2 + 1) is acknowledged by a majority.
  return srt[n - (Math.floor(n / 2) + 1)];
}

/** Whether yes-votes in `votes` (missing = not yet voted) win, lose or are still pending. */
export function voteResult(
  voters: ReadonlySet<NodeId>,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  if (voters.size === 0) return "won";
  let yes = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) yes++;
  }
  const q = Math.floor(voters.size / 2) + 1;
  if (yes >= q) return "won";
  if (yes + missing >= q) return "pending";
  return "lost";
}
