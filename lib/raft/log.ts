// The Raft log as the core sees it: the application's stable Storage followed by the unstable
// part, plus the commit and apply cursors.
import type { Storage } from "./storage.ts";
import type { Entry, Snapshot } from "./types.ts";
import { RaftError } from "./types.ts";
import { Unstable } from "./log_unstable.ts";
import { invariant, limitSize } from "./util.ts";

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be committed on a quorum. */
  committed: number;
  /** Highest index the application has applied (reported through advance). */
  applied: number;
  /**
   * Highest index handed to the application for applying (>= applied). Only asynchronous
   * writes hand out a Ready before the previous one was advanced, so only they move it ahead.
   */
  applying: number;
  /** Max bytes of committed entries handed out in one Ready. */
  readonly maxNextEntsSize: number;

  constructor(storage: Storage, maxNextEntsSize: number) {
    this.storage = storage;
    this.maxNextEntsSize = maxNextEntsSize;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
    this.applying = first - 1;
  }

  /**
   * Append `ents` after (index, logTerm) if that entry matches, truncating any conflicting
   * suffix. Returns the last index of the new entries, or undefined when the log does not match.
   */
  maybeAppend(
    index: number,
    logTerm: number,
    committed: number,
    ents: Entry[],
  ): number | undefined {
    if (!this.matchTerm(index, logTerm)) return undefined;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      invariant(
        ci > this.committed,
        `entry ${ci} conflicts with committed entry ${this.committed}`,
      );
      this.append(ents.slice(ci - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    invariant(
      after >= this.committed,
      `append after ${after} is below committed ${this.committed}`,
    );
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Index of the first entry in `ents` that conflicts with (or extends) the log, 0 if none. */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term` (or the first index whose term is
   * unknown), with its term. Used for fast backtracking of a rejected append.
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    for (; index > 0; index--) {
      let ourTerm: number;
      try {
        ourTerm = this.term(index);
      } catch {
        return [index, 0];
      }
      if (ourTerm <= term) return [index, ourTerm];
    }
    return [0, 0];
  }

  unstableEntries(): Entry[] {
    return this.unstable.entries.slice();
  }

  /** Committed entries not yet applied, bounded by maxNextEntsSize. */
  nextEnts(): Entry[] {
    const off = Math.max(this.applied + 1, this.firstIndex());
    if (this.committed + 1 > off) return this.slice(off, this.committed + 1, this.maxNextEntsSize);
    return [];
  }

  hasNextEnts(): boolean {
    const off = Math.max(this.applied + 1, this.firstIndex());
    return this.committed + 1 > off;
  }

  /**
   * The last index known durable here: every entry up to it is in the stable Storage (entries
   * in a write still in progress are not). An incoming snapshot counts once it is stable.
   */
  stableLastIndex(): number {
    if (this.unstable.snapshot) return this.unstable.snapshot.metadata.index - 1;
    return this.unstable.offset - 1;
  }

  /**
   * Asynchronous writes: committed entries not yet handed out for applying, limited to those
   * durable here (so an application never applies, or reports applied, what a restart could
   * lose locally) and to none while a snapshot is pending.
   */
  nextCommittedEnts(): Entry[] {
    const [lo, hi] = this.committedRange();
    return lo < hi ? this.slice(lo, hi, this.maxNextEntsSize) : [];
  }

  hasNextCommittedEnts(): boolean {
    const [lo, hi] = this.committedRange();
    return lo < hi;
  }

  private committedRange(): [number, number] {
    if (this.unstable.snapshot) return [0, 0];
    const lo = Math.max(this.applying + 1, this.firstIndex());
    const hi = Math.min(this.committed, this.stableLastIndex()) + 1;
    return [lo, hi];
  }

  /** Entries up to i were handed out for applying. */
  applyingTo(i: number): void {
    invariant(i <= this.committed, `applying ${i} beyond committed ${this.committed}`);
    if (i > this.applying) this.applying = i;
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  commitTo(toCommit: number): void {
    if (this.committed < toCommit) {
      invariant(
        toCommit <= this.lastIndex(),
        `commit ${toCommit} is out of range [last index ${this.lastIndex()}]`,
      );
      this.committed = toCommit;
    }
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    invariant(
      i <= this.committed && i >= this.applied,
      `applied ${i} is out of range [prev applied ${this.applied}, committed ${this.committed}]`,
    );
    this.applied = i;
    if (i > this.applying) this.applying = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  lastTerm(): number {
    return this.term(this.lastIndex());
  }

  /**
   * Term of entry i. Returns 0 for indexes outside [firstIndex-1, lastIndex]; throws
   * RaftError Compacted/Unavailable when the storage cannot answer.
   */
  term(i: number): number {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return 0;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    return this.storage.term(i);
  }

  /** term(i), or 0 when it is unknown (compacted or unavailable). */
  zeroTermOnError(i: number): number {
    try {
      return this.term(i);
    } catch (e) {
      if (e instanceof RaftError) return 0;
      throw e;
    }
  }

  matchTerm(i: number, t: number): boolean {
    try {
      return this.term(i) === t;
    } catch (e) {
      if (e instanceof RaftError) return false;
      throw e;
    }
  }

  /** Entries from i on, at most maxSize bytes (at least one). */
  entries(i: number, maxSize: number): Entry[] {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSize);
  }

  /** All entries from firstIndex on (tests, debugging). */
  allEntries(): Entry[] {
    return this.entries(this.firstIndex(), Infinity);
  }

  /** Paper §5.4.1: is a candidate's log (lastIndex, term) at least as up to date as ours? */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  maybeCommit(maxIndex: number, term: number): boolean {
    // Only entries of the leader's current term are committed by counting (paper §5.4.2).
    if (maxIndex > this.committed && this.zeroTermOnError(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries in [lo, hi), at most maxSize bytes. Throws RaftError Compacted if lo is compacted. */
  slice(lo: number, hi: number, maxSize: number): Entry[] {
    this.checkOutOfBounds(lo, hi);
    if (lo === hi) return [];
    let ents: Entry[] = [];
    const uoff = this.unstable.offset;
    if (lo < uoff) {
      const storedHi = Math.min(hi, uoff);
      let stored: Entry[];
      try {
        stored = this.storage.entries(lo, storedHi, maxSize);
      } catch (e) {
        if (e instanceof RaftError && e.code === "Unavailable") {
          throw new Error(
            `raft invariant violated: entries [${lo},${storedHi}) unavailable from storage`,
          );
        }
        throw e;
      }
      // The storage already hit the size limit.
      if (stored.length < storedHi - lo) return stored;
      ents = stored;
    }
    if (hi > uoff) {
      const u = this.unstable.slice(Math.max(lo, uoff), hi);
      ents = ents.length > 0 ? [...ents, ...u] : u;
    }
    return limitSize(ents, maxSize);
  }

  private checkOutOfBounds(lo: number, hi: number): void {
    invariant(lo <= hi, `invalid slice ${lo} > ${hi}`);
    const fi = this.firstIndex();
    if (lo < fi) {
      throw new RaftError("Compacted", `entry ${lo} is compacted (first available is ${fi})`);
    }
    const length = this.lastIndex() + 1 - fi;
    invariant(hi <= fi + length, `slice [${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
  }
}
