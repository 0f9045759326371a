// Who is calling the etcd API, and whether they may: the API's side of lib/pki/authorize.ts.
// The app authenticates every /v3/ request (401 without a live credential) and asks for a
// decision before each operation (403 with etcd's `permission denied`, nothing changed). Streams
// (watch, keepalive) end when their credential is revoked.
import {
  authorize,
  type AuthRequest,
  type Decision,
  type OwnershipView,
  PERMISSION_DENIED,
  UNAUTHENTICATED,
} from "../../pki/authorize.ts";
import type { KvStateMachine } from "../kv.ts";
import { type Caller, type CredentialIndex, rangeOf } from "../trust.ts";
import { bearerMatches } from "../../http/bearer.ts";
import { ApiError, GrpcCode } from "./errors.ts";

export interface ApiAuth {
  /** The caller of `req`, or null (no, malformed or unknown credential). */
  authenticate(req: Request): Caller | null;
  decide(who: Caller, request: AuthRequest): Decision;
  /** Calls `fn` once when `who`'s credential is revoked; returns an unsubscribe. */
  onRevoked(who: Caller, fn: () => void): () => void;
  /** True when this caller's writes need a fresh (linearizable) view before the decision. */
  needsFreshView(who: Caller): boolean;
  /** Where a refusal is logged (never with a secret). */
  refused?(who: Caller | null, path: string, reason: string): void;
}

export function permissionDenied(): ApiError {
  return new ApiError(GrpcCode.PermissionDenied, PERMISSION_DENIED);
}

export function unauthenticated(): ApiError {
  return new ApiError(GrpcCode.Unauthenticated, UNAUTHENTICATED);
}

/** Ownership as the state machine records it: a lease's granting node, a key's lease. */
export function ownershipView(sm: KvStateMachine): OwnershipView {
  return {
    leaseOwner: (id) => {
      const l = sm.lease(id);
      // A lease granted without an owner belongs to no node ("" never equals a node's name).
      return l ? l.owner ?? "" : undefined;
    },
    keyLease: (key) => {
      const r = sm.range(rangeOf(key, new Uint8Array()));
      return r.kvs.length ? r.kvs[0].lease : undefined;
    },
  };
}

/** Authorization for a store whose trust data is replicated (every member). */
export function credentialAuth(
  index: CredentialIndex,
  sm: KvStateMachine,
  prefix: string,
  refused?: ApiAuth["refused"],
): ApiAuth {
  const view = ownershipView(sm);
  return {
    authenticate: (req) => index.authenticate(req.headers.get("authorization")),
    decide: (who, request) => authorize(who, request, view, { prefix }),
    onRevoked: (who, fn) => index.onRevoked(who.hash, fn),
    needsFreshView: (who) => who.kind !== "admin",
    refused,
  };
}

/** One fixed credential that may do everything (tests and tools that run a bare API). */
export function tokenAuth(token: string): ApiAuth {
  const admin: Caller = { hash: "", kind: "admin", nodeName: "admin" };
  return {
    authenticate: (req) =>
      bearerMatches(req.headers.get("authorization") ?? undefined, token) ? admin : null,
    decide: () => ({ allow: true }),
    onRevoked: () => () => {},
    needsFreshView: () => false,
  };
}
