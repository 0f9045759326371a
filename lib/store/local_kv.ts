// A single-process Kv: always the leader, applies commands directly. Used by unit tests,
// the first differential test, and anywhere a one-member store without Raft is enough.

import { type Command, type Kv, StoreError, unwrapApplyResult } from "./kv.ts";
import { ETCD_MESSAGES } from "./errors.ts";
import { compactionDue, DEFAULT_RETAIN_REVISIONS } from "./auto_compactor.ts";
import { Lessor } from "./lessor.ts";
import { MvccStateMachine } from "./state_machine.ts";

export interface LocalKvOptions {
  /** Milliseconds clock (default Date.now). */
  clock?: () => number;
  /** How often expired leases are looked for; 0 disables the timer (call expireLeases). */
  expiryCheckMs?: number;
  clusterId?: string;
  memberId?: string;
  /** Revisions of history kept by auto-compaction (checked with the lease timer); 0: never. */
  retainRevisions?: number;
}

export class LocalKv implements Kv {
  readonly sm: MvccStateMachine = new MvccStateMachine();
  readonly lessor: Lessor = new Lessor(this.sm);
  readonly #clock: () => number;
  readonly #clusterId: string;
  readonly #memberId: string;
  #index = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #expiring = false;
  readonly #retain: number;

  constructor(opts: LocalKvOptions = {}) {
    this.#clock = opts.clock ?? Date.now;
    this.#clusterId = opts.clusterId ?? "1";
    this.#memberId = opts.memberId ?? "1";
    this.#retain = opts.retainRevisions ?? DEFAULT_RETAIN_REVISIONS;
    this.lessor.promote(this.#clock());
    const every = opts.expiryCheckMs ?? 500;
    if (every > 0) {
      this.#timer = setInterval(() => {
        void this.expireLeases().catch(() => {});
        void this.autoCompact().catch(() => {});
      }, every);
    }
  }

  write(cmd: Command): Promise<unknown> {
    try {
      const result = this.sm.apply(++this.#index, cmd);
      this.lessor.track(this.#clock());
      return Promise.resolve(unwrapApplyResult(result));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  readBarrier(): Promise<void> {
    return Promise.resolve();
  }

  leaseKeepAlive(id: string): Promise<{ ttl: number }> {
    const ttl = this.lessor.keepAlive(id, this.#clock());
    if (ttl === null) {
      return Promise.reject(new StoreError("leaseNotFound", ETCD_MESSAGES.leaseNotFound));
    }
    return Promise.resolve({ ttl });
  }

  leaseTimeToLive(id: string): Promise<{ ttl: number; grantedTtl: number } | null> {
    const lease = this.sm.lease(id);
    const left = this.lessor.ttlLeft(id, this.#clock());
    if (!lease || left === null) return Promise.resolve(null);
    return Promise.resolve({ ttl: left, grantedTtl: lease.ttl });
  }

  header(): { clusterId: string; memberId: string; raftTerm: string } {
    return { clusterId: this.#clusterId, memberId: this.#memberId, raftTerm: "1" };
  }

  raftStatus(): { leader: string; commitIndex: string } {
    // One process, always the leader; everything it committed is applied at once.
    return { leader: this.#memberId, commitIndex: String(this.sm.appliedIndex) };
  }

  /** Revokes (through a leaseExpire command) every lease whose deadline has passed. */
  async expireLeases(): Promise<string[]> {
    if (this.#expiring) return [];
    this.#expiring = true;
    try {
      const ids = this.lessor.expired(this.#clock());
      if (ids.length === 0) return [];
      await this.write({ op: "leaseExpire", requestId: crypto.randomUUID(), ids });
      return ids;
    } finally {
      this.#expiring = false;
    }
  }

  /** Compacts old history when compactionDue says so; returns the revision compacted to. */
  async autoCompact(): Promise<string | null> {
    if (this.#retain <= 0) return null;
    const revision = compactionDue(this.sm, this.#retain);
    if (revision === null) return null;
    await this.write({ op: "compact", requestId: crypto.randomUUID(), revision });
    return revision;
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
