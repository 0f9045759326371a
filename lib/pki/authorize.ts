// Who may do what on TCP 8473 (shared/DESIGN.md, "Trust" → "Authorization"), as one pure
// decision over an authenticated identity, a parsed request and a read-only view of ownership.
//
// Identities: "admin" (a voter's admin-credential) may do everything. "node" (every node's
// credential) may read the network config, range/watch the subnet leases, read status and
// members, create a subnet lease that does not exist, renew/update/delete only its own leases,
// and grant store leases and keep alive/revoke/inspect only its own. "member" (a store member's
// credential, which is also its agent's) has a node's rights plus the peer routes under /raft/,
// where every Raft message it carries must come from its own member id. No credential: only
// /raft/join, which the join secret authenticates. Everything else is etcd's
// `etcdserver: permission denied` (gRPC 7, HTTP 403).
//
// Ownership of a subnet lease. Flannel's lease value (LeaseAttrs: PublicIP, PublicIPv6,
// BackendType, BackendData, BackendV6Data) names no node, so the owner is recorded by the
// store instead: every store lease remembers the node name of the credential that granted it,
// and a subnet key belongs to the owner of the store lease it is attached to. Why this and not
// a field in the value or a second owner key:
// - the store must record each store lease's grantor anyway, to authorize keepalive, revoke and
//   timetolive; one fact then answers both questions and the two can never disagree;
// - it is written by the store from the authenticated identity, never by the client, so it
//   cannot be forged, and the lease value stays byte for byte Flannel's JSON (the contract,
//   the upstream CNI plugin and mixed readers see no change);
// - a second owner key would have to be written in the same txn by every agent and could be
//   orphaned; a field in the value would have to be checked against the caller on every write;
// - `remove-node` revoking a node's store leases deletes its subnet keys with etcd's own
//   semantics, and an expired lease frees its subnet exactly as before.
// Consequence: a key attached to no store lease (lease 0, a Flannel-style reservation) has no
// node owner, so only an admin writes it, and a node's put must attach a store lease it owns.
//
// Where to call it: writes must be decided against the state they apply to, so the store calls
// this in its apply path with the entry's identity (deterministic: every replica decides the
// same); calling it also when a request arrives rejects early, before anything is proposed.
import { parseSubnetKey, subnetKeyName } from "../net/subnet_key.ts";
import type { CredentialKind } from "./credential.ts";

export interface Identity {
  kind: CredentialKind;
  nodeName: string;
  /** The Raft id of a member ("member" kind): the only sender its peer messages may name. */
  memberId?: number;
}

/** A key or a range, as the etcd API carries it: rangeEnd empty = just `key`, [0] = to the end. */
export interface KeyRange {
  key: Uint8Array;
  rangeEnd?: Uint8Array;
}

export interface PutShape {
  key: Uint8Array;
  /** Decimal store lease id, "0" for none. */
  lease: string;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}

export interface TxnShape {
  compare: KeyRange[];
  success: OpShape[];
  failure: OpShape[];
}

/** The store's RequestOp, structurally (lib/store/kv.ts's types satisfy it). */
export type OpShape =
  | { range: KeyRange }
  | { put: PutShape }
  | { deleteRange: KeyRange }
  | { txn: TxnShape };

export type AuthRequest =
  | { route: "/v3/kv/range" | "/v3/watch"; range: KeyRange }
  | { route: "/v3/kv/put"; put: PutShape }
  | { route: "/v3/kv/deleterange"; range: KeyRange }
  | { route: "/v3/kv/txn"; txn: TxnShape }
  | { route: "/v3/lease/revoke" | "/v3/lease/keepalive" | "/v3/lease/timetolive"; leaseId: string }
  | { route: "/raft/msg" | "/raft/stream" | "/raft/snapshot"; senders: number[] }
  | {
    route:
      | "/v3/kv/compaction"
      | "/v3/lease/grant"
      | "/v3/lease/leases"
      | "/v3/maintenance/status"
      | "/raft/join"
      | "/raft/status"
      | "/raft/members"
      | "/raft/lease/keepalive"
      | "/raft/lease/timetolive";
  }
  /** Any other path: admin only. */
  | { route: "other"; path: string };

/** What authorization needs to know of the store's state, read-only. */
export interface OwnershipView {
  /** Node name that granted store lease `id`; undefined when no such lease exists. */
  leaseOwner(id: string): string | undefined;
  /** Store lease id ("0" = none) of an existing key; undefined when the key does not exist. */
  keyLease(key: Uint8Array): string | undefined;
}

export interface Policy {
  /** The etcd prefix (--etcd-prefix), e.g. "/coreos.com/network". */
  prefix: string;
}

export type Decision =
  | { allow: true }
  | {
    allow: false;
    /** HTTP status and gRPC code the API answers with. */
    status: 401 | 403;
    grpcCode: 7 | 16;
    /** etcd's wording, safe to send. */
    message: string;
    /** Why, for the server's log line (never contains a secret). */
    reason: string;
  };

export const PERMISSION_DENIED = "etcdserver: permission denied";
export const UNAUTHENTICATED = "etcdserver: invalid auth token";
const ALLOW: Decision = { allow: true };

export function deny(reason: string): Decision {
  return { allow: false, status: 403, grpcCode: 7, message: PERMISSION_DENIED, reason };
}

function unauthenticated(): Decision {
  return {
    allow: false,
    status: 401,
    grpcCode: 16,
    message: UNAUTHENTICATED,
    reason: "no valid credential",
  };
}

/** The decision for `request` by `who` (null: no valid credential was presented). */
export function authorize(
  who: Identity | null,
  request: AuthRequest,
  view: OwnershipView,
  policy: Policy,
): Decision {
  if (request.route === "/raft/join") return ALLOW; // the join secret is checked by the handler
  if (who === null) return unauthenticated();
  if (who.kind === "admin") return ALLOW;
  switch (request.route) {
    case "/raft/msg":
    case "/raft/stream":
    case "/raft/snapshot":
      return peerMessages(who, request.senders);
    case "/raft/lease/keepalive":
    case "/raft/lease/timetolive":
      return who.kind === "member" ? ALLOW : deny(`${request.route} is for members`);
    case "/v3/maintenance/status":
    case "/raft/status":
    case "/raft/members":
    case "/v3/lease/grant":
      return ALLOW;
    default:
      return nodeRequest(who, request, view, new Scope(policy.prefix));
  }
}

function peerMessages(who: Identity, senders: number[]): Decision {
  if (who.kind !== "member" || who.memberId === undefined) {
    return deny("peer routes are for member credentials");
  }
  const other = senders.find((s) => s !== who.memberId);
  if (other !== undefined) {
    return deny(`message from member ${other} carried by member ${who.memberId}`);
  }
  return ALLOW;
}

function nodeRequest(
  who: Identity,
  request: AuthRequest,
  view: OwnershipView,
  scope: Scope,
): Decision {
  switch (request.route) {
    case "/v3/kv/range":
    case "/v3/watch":
      return scope.readable(request.range) ? ALLOW : deny("read outside the network config/leases");
    case "/v3/kv/put":
      return putDecision(who, request.put, view, scope);
    case "/v3/kv/deleterange":
      return deleteDecision(who, request.range, view, scope);
    case "/v3/kv/txn":
      return txnDecision(who, request.txn, view, scope);
    case "/v3/lease/revoke":
    case "/v3/lease/keepalive":
    case "/v3/lease/timetolive":
      return leaseDecision(who, request.leaseId, view);
    default:
      return deny(`${request.route === "other" ? request.path : request.route} is admin only`);
  }
}

function leaseDecision(who: Identity, id: string, view: OwnershipView): Decision {
  const owner = view.leaseOwner(id);
  // A lease that does not exist is no one's: the store answers "not found", which tells a node
  // nothing it could use (ids are random and listed in every range answer anyway).
  if (owner === undefined || owner === who.nodeName) return ALLOW;
  return deny(`store lease ${id} belongs to ${owner}`);
}

function putDecision(
  who: Identity,
  put: PutShape,
  view: OwnershipView,
  scope: Scope,
): Decision {
  if (!scope.isSubnetKey(put.key)) return deny("write outside the subnet leases");
  if (put.ignoreLease || put.ignoreValue) return deny("ignore_lease/ignore_value are admin only");
  if (put.lease === "0" || put.lease === "") {
    return deny("a node's subnet lease must be attached to a store lease it owns");
  }
  const newOwner = view.leaseOwner(put.lease);
  if (newOwner !== who.nodeName) {
    return deny(`store lease ${put.lease} is not ${who.nodeName}'s`);
  }
  return ownsOrAbsent(who, put.key, view);
}

function deleteDecision(
  who: Identity,
  range: KeyRange,
  view: OwnershipView,
  scope: Scope,
): Decision {
  if (range.rangeEnd && range.rangeEnd.length > 0) return deny("range deletes are admin only");
  if (!scope.isSubnetKey(range.key)) return deny("delete outside the subnet leases");
  // Deleting a key that does not exist changes nothing, so a node racing its own lease's
  // expiry is not refused.
  return ownsOrAbsent(who, range.key, view);
}

function ownsOrAbsent(who: Identity, key: Uint8Array, view: OwnershipView): Decision {
  const lease = view.keyLease(key);
  if (lease === undefined) return ALLOW;
  const owner = lease === "0" ? undefined : view.leaseOwner(lease);
  if (owner === who.nodeName) return ALLOW;
  return deny(`subnet lease belongs to ${owner ?? "no node (a reservation)"}`);
}

function txnDecision(
  who: Identity,
  txn: TxnShape,
  view: OwnershipView,
  scope: Scope,
): Decision {
  // A compare reads its key (a VALUE compare can probe any value byte by byte), so it needs
  // read permission; every op in both branches must be allowed, whichever one runs.
  for (const c of txn.compare) {
    if (!scope.readable(c)) return deny("txn compares a key outside the network config/leases");
  }
  for (const op of [...txn.success, ...txn.failure]) {
    const d = opDecision(who, op, view, scope);
    if (!d.allow) return d;
  }
  return ALLOW;
}

function opDecision(who: Identity, op: OpShape, view: OwnershipView, scope: Scope): Decision {
  if ("range" in op) {
    return scope.readable(op.range) ? ALLOW : deny("read outside the network config/leases");
  }
  if ("put" in op) return putDecision(who, op.put, view, scope);
  if ("deleteRange" in op) return deleteDecision(who, op.deleteRange, view, scope);
  return deny("nested txns are admin only");
}

/** The keys a node may touch under one etcd prefix. */
class Scope {
  private config: Uint8Array;
  private subnets: Uint8Array;
  private subnetsEnd: Uint8Array;
  private subnetsText: string;

  constructor(prefix: string) {
    const p = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
    const te = new TextEncoder();
    this.config = te.encode(`${p}/config`);
    this.subnetsText = `${p}/subnets/`;
    this.subnets = te.encode(this.subnetsText);
    this.subnetsEnd = afterPrefix(this.subnets);
  }

  /** The config key alone, or any key or range inside <prefix>/subnets/. */
  readable(r: KeyRange): boolean {
    const end = r.rangeEnd ?? new Uint8Array();
    if (end.length === 0) {
      return equalBytes(r.key, this.config) || this.inSubnets(r.key);
    }
    if (end.length === 1 && end[0] === 0) return false; // every key from `key` on
    return this.inSubnets(r.key) && compareBytes(end, this.subnetsEnd) <= 0;
  }

  /** A single key <prefix>/subnets/<a subnet key name Flannel would write>. */
  isSubnetKey(key: Uint8Array): boolean {
    if (!this.inSubnets(key)) return false;
    const text = new TextDecoder("utf-8", { fatal: false }).decode(key);
    const name = text.slice(this.subnetsText.length);
    const parsed = parseSubnetKey(name);
    return parsed !== null && subnetKeyName(parsed.subnet, parsed.ipv6Subnet) === name;
  }

  private inSubnets(key: Uint8Array): boolean {
    return compareBytes(key, this.subnets) >= 0 && compareBytes(key, this.subnetsEnd) < 0;
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return compareBytes(a, b) === 0;
}

/** The first key after every key that starts with `prefix`, which ends in "/" (never 0xff).
 *  Not lib/etcd's prefixEnd: lib/etcd depends on lib/store, which depends on this folder. */
function afterPrefix(prefix: Uint8Array): Uint8Array {
  const p = prefix.slice();
  p[p.length - 1]++;
  return p;
}
