// Errors of the store, named after what went wrong, with the etcd wording clients already know.
// The API layer maps each code to etcd's gRPC code and HTTP status (lib/store/api/errors.ts).

export type StoreErrorCode =
  /** The outcome is unknown (no leader, timeout, leader changed): the write may still commit. */
  | "unavailable"
  /** A read or watch asked for a revision that compaction already removed. */
  | "compacted"
  /** A read or compaction asked for a revision the store has not reached. */
  | "futureRevision"
  | "leaseNotFound"
  | "leaseExists"
  | "leaseTtlTooLarge"
  /** The request itself is wrong (duplicate keys in a txn, missing key, bad field). */
  | "invalidArgument"
  /** The request is larger than the store accepts. */
  | "tooLarge"
  /** A definite internal failure (a bug): the request did not succeed. */
  | "internal";

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string) {
    super(message);
    this.name = "StoreError";
    this.code = code;
  }
}

/** etcd's own messages for the errors it shares with us, as its JSON gateway shows them. */
export const ETCD_MESSAGES = {
  compacted: "etcdserver: mvcc: required revision has been compacted",
  futureRevision: "etcdserver: mvcc: required revision is a future revision",
  leaseNotFound: "etcdserver: requested lease not found",
  leaseExists: "etcdserver: lease already exists",
  leaseTtlTooLarge: "etcdserver: too large lease TTL",
  duplicateKey: "etcdserver: duplicate key given in txn request",
  emptyKey: "etcdserver: key is not provided",
  timeout: "etcdserver: request timed out",
  noLeader: "etcdserver: no leader",
  tooManyOps: "etcdserver: too many operations in txn request",
  requestTooLarge: "etcdserver: request is too large",
  serverStopped: "etcdserver: server stopped",
  valueProvided: "etcdserver: value is provided",
  leaseProvided: "etcdserver: lease is provided",
  keyNotFound: "etcdserver: key not found",
} as const;

export function storeError(code: StoreErrorCode, message: string): StoreError {
  return new StoreError(code, message);
}
