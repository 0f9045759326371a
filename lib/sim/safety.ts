// The simulator's invariant checks, fed incrementally by the nodes as they persist, commit and
// apply, so a violation is caught at the event that causes it. Logs are compared through chain
// hashes: chain(i) = hash(chain(i-1), entry i), so equal chains at i mean equal logs up to i.
import type { NodeId } from "../raft/types.ts";

/** A broken invariant: which check fired and what exactly was seen. */
export class SimViolation extends Error {
  constructor(readonly check: string, detail: string) {
    super(`${check}: ${detail}`);
    this.name = "SimViolation";
  }
}

export class SafetyMonitor {
  /** Election safety: who led each term. */
  readonly leaderOfTerm = new Map<number, NodeId>();
  /** Log matching: chain hash of the log ending at (index, term), whoever holds it. */
  readonly #byIndexTerm = new Map<number, Map<number, number>>();
  /** The committed log, as chain hashes per index. */
  readonly committed = new Map<number, number>();
  /** The lowest term in which some node reported each index committed. */
  readonly #commitTerm = new Map<number, number>();
  /** For leader completeness: highest committed index first reported in each term. */
  readonly #maxCommitInTerm = new Map<number, number>();
  maxCommitted = 0;

  observeLeader(
    node: NodeId,
    term: number,
    chainAt: (i: number) => number | undefined,
    snapshotIndex: number,
    lastIndex: number,
  ): void {
    const prev = this.leaderOfTerm.get(term);
    if (prev !== undefined && prev !== node) {
      throw new SimViolation(
        "election safety",
        `nodes ${prev} and ${node} are both leader of term ${term}`,
      );
    }
    this.leaderOfTerm.set(term, node);
    // Leader completeness: every entry committed in an earlier term is in the new leader's log.
    let need = 0;
    for (const [t, idx] of this.#maxCommitInTerm) if (t < term && idx > need) need = idx;
    if (need === 0 || need <= snapshotIndex) return;
    if (need > lastIndex) {
      throw new SimViolation(
        "leader completeness",
        `node ${node} became leader of term ${term} with last index ${lastIndex}, but index ${need} was committed in an earlier term`,
      );
    }
    const mine = chainAt(need);
    if (mine !== this.committed.get(need)) {
      throw new SimViolation(
        "leader completeness",
        `node ${node} became leader of term ${term} with a log that differs from the committed log at or before index ${need}`,
      );
    }
  }

  /**
   * Log matching: called for every entry a node persists, with the node's chain hash there and
   * the node's own commit index (a node must never replace an entry it has itself committed).
   */
  observePersisted(
    node: NodeId,
    index: number,
    term: number,
    chain: number,
    nodeCommit: number,
  ): void {
    let terms = this.#byIndexTerm.get(index);
    if (terms === undefined) this.#byIndexTerm.set(index, terms = new Map());
    const seen = terms.get(term);
    if (seen === undefined) terms.set(term, chain);
    else if (seen !== chain) {
      throw new SimViolation(
        "log matching",
        `node ${node} holds entry ${index} of term ${term} but its log up to there differs from another node's entry ${index} of term ${term}`,
      );
    }
    const c = index <= nodeCommit ? this.committed.get(index) : undefined;
    if (c !== undefined && c !== chain) {
      throw new SimViolation(
        "committed entry overwritten",
        `node ${node} persisted an entry at committed index ${index} (term ${term}) that differs from the committed one`,
      );
    }
  }

  /** A node reports its commit index moved from `from` to `to` while in `term`. */
  observeCommit(
    node: NodeId,
    term: number,
    from: number,
    to: number,
    chainAt: (i: number) => number | undefined,
    snapshotIndex: number,
  ): void {
    for (let i = Math.max(from, snapshotIndex) + 1; i <= to; i++) {
      const c = chainAt(i);
      if (c === undefined) {
        throw new SimViolation(
          "commit beyond log",
          `node ${node} committed index ${i} which is not in its log`,
        );
      }
      const known = this.committed.get(i);
      if (known === undefined) this.committed.set(i, c);
      else if (known !== c) {
        throw new SimViolation(
          "state machine safety",
          `node ${node} committed an entry at index ${i} that differs from the one committed elsewhere`,
        );
      }
      const t = this.#commitTerm.get(i);
      if (t === undefined || term < t) {
        this.#commitTerm.set(i, term);
        if ((this.#maxCommitInTerm.get(term) ?? 0) < i) this.#maxCommitInTerm.set(term, i);
      }
      if (i > this.maxCommitted) this.maxCommitted = i;
    }
  }

  /** A node applies entry `index`; it must be the committed one. */
  observeApply(node: NodeId, index: number, chain: number | undefined): void {
    const known = this.committed.get(index);
    if (known === undefined || chain === undefined || known !== chain) {
      throw new SimViolation(
        "state machine safety",
        known === undefined
          ? `node ${node} applied index ${index} before any node reported it committed`
          : `node ${node} applied an entry at index ${index} different from the committed one`,
      );
    }
  }
}
