// An in-memory SubnetRegistry with etcd's revision semantics, for unit tests and benchmarks
// that need no store process. Time is injected: `expire(now)` drops keys of expired leases.
import type { RegistryEvent, StoredKv, SubnetRegistry, WatchItem } from "./registry.ts";

interface Entry extends StoredKv {
  version: number;
}

export class MemoryRegistry implements SubnetRegistry {
  revision = 1n;
  compactRevision = 0n;
  private kvs = new Map<string, Entry>();
  private leases = new Map<bigint, { ttl: number; deadline: number }>();
  private nextLease = 100n;
  private history: { revision: bigint; event: RegistryEvent }[] = [];
  private waiters = new Set<() => void>();
  /** Requests seen, for assertions: "grant", "txn-create", "txn-fenced", "delete", … */
  calls: string[] = [];
  /** When set, the next createIfAbsent for this key finds it taken by someone else first. */
  raceOnCreate: ((key: string) => boolean) | null = null;

  constructor(public now: () => number = () => 0) {}

  get(key: string): Promise<StoredKv | null> {
    const e = this.kvs.get(key);
    return Promise.resolve(e ? strip(e) : null);
  }

  list(prefix: string): Promise<{ kvs: StoredKv[]; revision: bigint }> {
    const out = [...this.kvs.values()].filter((e) => e.key.startsWith(prefix)).map(strip);
    out.sort((a, b) => (a.key < b.key ? -1 : 1));
    return Promise.resolve({ kvs: out, revision: this.revision });
  }

  grant(ttlSeconds: number): Promise<bigint> {
    this.calls.push("grant");
    const id = this.nextLease++;
    this.leases.set(id, { ttl: ttlSeconds, deadline: this.now() + ttlSeconds * 1000 });
    return Promise.resolve(id);
  }

  revoke(lease: bigint): Promise<void> {
    this.calls.push("revoke");
    this.leases.delete(lease);
    for (const e of [...this.kvs.values()]) if (e.lease === lease) this.remove(e.key);
    return Promise.resolve();
  }

  createIfAbsent(
    key: string,
    value: string,
    lease: bigint,
  ): Promise<{ ok: boolean; modRevision: bigint }> {
    this.calls.push("txn-create");
    if (this.raceOnCreate?.(key)) {
      this.raceOnCreate = null;
      this.set(key, '{"PublicIP":"192.0.2.99","PublicIPv6":null}', 0n);
    }
    if (this.kvs.has(key)) return Promise.resolve({ ok: false, modRevision: 0n });
    const rev = this.set(key, value, lease);
    return Promise.resolve({ ok: true, modRevision: rev });
  }

  putIfModRevision(
    key: string,
    value: string,
    lease: bigint,
    expected: bigint,
  ): Promise<{ ok: boolean; modRevision: bigint }> {
    this.calls.push("txn-fenced");
    const e = this.kvs.get(key);
    if (!e || e.modRevision !== expected) return Promise.resolve({ ok: false, modRevision: 0n });
    const rev = this.set(key, value, lease);
    return Promise.resolve({ ok: true, modRevision: rev });
  }

  delete(key: string): Promise<void> {
    this.calls.push("delete");
    this.remove(key);
    return Promise.resolve();
  }

  /** Test helper: a plain put (another node, or an operator writing a reservation). */
  put(key: string, value: string, lease = 0n): bigint {
    return this.set(key, value, lease);
  }

  /** Drops the keys of leases whose deadline has passed. */
  expire(): void {
    for (const [id, l] of [...this.leases]) {
      if (l.deadline <= this.now()) void this.revoke(id);
    }
  }

  compact(rev: bigint): void {
    this.compactRevision = rev;
    this.history = this.history.filter((h) => h.revision > rev);
  }

  leaseDeadline(id: bigint): number | undefined {
    return this.leases.get(id)?.deadline;
  }

  async *watch(
    prefix: string,
    fromRevision: bigint,
    signal: AbortSignal,
  ): AsyncIterable<WatchItem> {
    let next = fromRevision;
    while (!signal.aborted) {
      if (next <= this.compactRevision) {
        yield { kind: "compacted", compactRevision: this.compactRevision };
        return;
      }
      const evs = this.history.filter((h) => h.revision >= next);
      if (evs.length) {
        const mine = evs.filter((h) => keyOf(h.event).startsWith(prefix)).map((h) => h.event);
        next = evs[evs.length - 1].revision + 1n;
        if (mine.length) yield { kind: "events", events: mine, revision: next - 1n };
        continue;
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          this.waiters.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.waiters.add(done);
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  private set(key: string, value: string, lease: bigint): bigint {
    const rev = ++this.revision;
    const old = this.kvs.get(key);
    const e: Entry = { key, value, lease, modRevision: rev, version: (old?.version ?? 0) + 1 };
    this.kvs.set(key, e);
    this.publish(rev, { type: "put", kv: strip(e) });
    return rev;
  }

  private remove(key: string): void {
    if (!this.kvs.has(key)) return;
    this.kvs.delete(key);
    const rev = ++this.revision;
    this.publish(rev, { type: "delete", key, modRevision: rev });
  }

  private publish(revision: bigint, event: RegistryEvent): void {
    this.history.push({ revision, event });
    for (const w of [...this.waiters]) w();
  }
}

function keyOf(e: RegistryEvent): string {
  return e.type === "put" ? e.kv.key : e.key;
}

function strip(e: Entry): StoredKv {
  return { key: e.key, value: e.value, modRevision: e.modRevision, lease: e.lease };
}
