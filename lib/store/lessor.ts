// Lease liveness, kept only by the leader (as etcd does): when each lease expires, refreshed by
// keep-alives. Not replicated: a new leader calls promote(now), which gives every lease a full
// TTL from now. Expiry itself is replicated: the leader proposes a leaseExpire command for what
// expired(now) returns. The clock is injected (milliseconds); nothing here reads time.

import type { KvStateMachine } from "./kv.ts";

export class Lessor {
  readonly #sm: KvStateMachine;
  #deadlines = new Map<string, number>();

  constructor(sm: KvStateMachine) {
    this.#sm = sm;
  }

  /** Becoming leader: every known lease lives a full TTL from now. */
  promote(now: number): void {
    this.#deadlines.clear();
    this.track(now);
  }

  /** Starts the clock for leases granted since the last call; forgets revoked ones. Call after
   *  applying commands (cheap when nothing changed). */
  track(now: number): void {
    const live = new Set(this.#sm.leaseIds());
    for (const id of live) {
      if (this.#deadlines.has(id)) continue;
      const lease = this.#sm.lease(id);
      if (lease) this.#deadlines.set(id, now + lease.ttl * 1000);
    }
    for (const id of this.#deadlines.keys()) if (!live.has(id)) this.#deadlines.delete(id);
  }

  /** Refreshes a lease; returns its granted TTL (seconds), or null if it does not exist or has
   *  already expired (its revocation is on the way). */
  keepAlive(id: string, now: number): number | null {
    const lease = this.#sm.lease(id);
    if (!lease) return null;
    const deadline = this.#deadlines.get(lease.id);
    if (deadline !== undefined && deadline <= now) return null;
    this.#deadlines.set(lease.id, now + lease.ttl * 1000);
    return lease.ttl;
  }

  /** Whole seconds left (truncated, never negative), or null if the lease does not exist. */
  ttlLeft(id: string, now: number): number | null {
    const lease = this.#sm.lease(id);
    if (!lease) return null;
    let deadline = this.#deadlines.get(lease.id);
    if (deadline === undefined) {
      deadline = now + lease.ttl * 1000;
      this.#deadlines.set(lease.id, deadline);
    }
    return Math.max(0, Math.trunc((deadline - now) / 1000));
  }

  /** Ids whose deadline has passed, in deadline order (ties by id). */
  expired(now: number): string[] {
    this.track(now);
    return [...this.#deadlines.entries()]
      .filter(([, d]) => d <= now)
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([id]) => id);
  }
}
