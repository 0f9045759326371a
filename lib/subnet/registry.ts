// The store operations the lease manager and the lease watcher need, as a small port. One
// adapter speaks etcd's v3 API through lib/etcd/client.ts (twill's store or a real etcd); an
// in-memory one serves the unit tests. Revisions and lease ids are bigint.

export interface StoredKv {
  key: string;
  value: string;
  modRevision: bigint;
  /** The store lease the key is attached to; 0n = none (a reservation). */
  lease: bigint;
}

export type RegistryEvent =
  | { type: "put"; kv: StoredKv }
  | { type: "delete"; key: string; modRevision: bigint };

export type WatchItem =
  | { kind: "events"; events: RegistryEvent[]; revision: bigint }
  /** The requested start revision was compacted away: re-list and resume. */
  | { kind: "compacted"; compactRevision: bigint };

export interface SubnetRegistry {
  get(key: string): Promise<StoredKv | null>;
  /** Every key under the prefix, with the store revision the listing was taken at. */
  list(prefix: string): Promise<{ kvs: StoredKv[]; revision: bigint }>;
  /** Grants a store lease of `ttlSeconds`; returns its id. */
  grant(ttlSeconds: number): Promise<bigint>;
  revoke(lease: bigint): Promise<void>;
  /** Puts iff the key does not exist (version = 0), in one transaction. */
  createIfAbsent(
    key: string,
    value: string,
    lease: bigint,
  ): Promise<{ ok: boolean; modRevision: bigint }>;
  /** Puts iff the key's mod revision is still `expected` (fencing), in one transaction. */
  putIfModRevision(
    key: string,
    value: string,
    lease: bigint,
    expected: bigint,
  ): Promise<{ ok: boolean; modRevision: bigint }>;
  delete(key: string): Promise<void>;
  /** Events under the prefix from `fromRevision` on (inclusive), until `signal` aborts. */
  watch(prefix: string, fromRevision: bigint, signal: AbortSignal): AsyncIterable<WatchItem>;
}
