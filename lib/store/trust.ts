// The replicated trust data (shared/DESIGN.md "Trust", /work's TRUST contract) and the member's
// in-memory view of it. Trust data lives in the KV keyspace under /twill/, outside every network
// prefix, so only admin and member credentials reach it:
//   /twill/join-secret               the join secret (plain: admins read it for `ctl join-token`)
//   /twill/credentials/<sha256 hex>  {"node","kind","memberId"}: one live credential; deleting
//                                    the key revokes it. Only hashes are stored.
//   /twill/pki/ca.crt, ca.key        the cluster CA (PEM)
// CredentialIndex maps a presented credential to its identity from an index kept up to date as
// entries are applied (and rebuilt when a snapshot is restored), and tells open streams when
// their credential is revoked, so they close at once.
import type { KvStateMachine, RangeRequest, RevisionEvents } from "./kv.ts";
import type { Identity } from "../pki/authorize.ts";
import { bearerCredential, type CredentialKind, hashCredential } from "../pki/credential.ts";

export const TRUST_PREFIX = "/twill/";
export const JOIN_SECRET_KEY = "/twill/join-secret";
export const CREDENTIALS_PREFIX = "/twill/credentials/";
export const CA_CERT_KEY = "/twill/pki/ca.crt";
export const CA_KEY_KEY = "/twill/pki/ca.key";

/** The JSON value of a /twill/credentials/<hash> key. */
export interface CredentialEntry {
  node: string;
  kind: CredentialKind;
  /** The member's Raft id for kind "member" (and an admin's voter), else 0. */
  memberId: number;
}

/** An authenticated caller: its identity and the hash of the credential it presented. */
export interface Caller extends Identity {
  hash: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const HASH_RE = /^[0-9a-f]{64}$/;
const KINDS = new Set(["node", "member", "admin"]);

export function credentialKey(hash: string): Uint8Array {
  return enc.encode(CREDENTIALS_PREFIX + hash);
}

export function encodeCredentialEntry(e: CredentialEntry): Uint8Array {
  return enc.encode(JSON.stringify({ node: e.node, kind: e.kind, memberId: e.memberId }));
}

/** A stored record, checked where it enters the index; null when it is not one. */
export function decodeCredentialEntry(value: Uint8Array): CredentialEntry | null {
  try {
    const v = JSON.parse(dec.decode(value));
    if (typeof v?.node !== "string" || !KINDS.has(v.kind)) return null;
    const memberId = Number.isSafeInteger(v.memberId) && v.memberId > 0 ? v.memberId : 0;
    return { node: v.node, kind: v.kind, memberId };
  } catch {
    return null;
  }
}

export function callerOf(hash: string, e: CredentialEntry): Caller {
  const c: Caller = { hash, kind: e.kind, nodeName: e.node };
  if (e.memberId > 0) c.memberId = e.memberId;
  return c;
}

export class CredentialIndex {
  #byHash = new Map<string, CredentialEntry>();
  /** Member credentials a joining member learned from the leader's answer: it must accept its
   *  peers before their records reach it through the log. Dropped once it has caught up. */
  #provisional = new Map<string, CredentialEntry>();
  #revoked = new Map<string, Set<() => void>>();

  constructor(private readonly sm: KvStateMachine) {
    this.#rebuild();
    sm.subscribe((batch) => this.#applied(batch));
    sm.onRestore(() => this.#rebuild());
  }

  /** The caller behind an `Authorization` header; null for none, a malformed or unknown one. */
  authenticate(header: string | null | undefined): Caller | null {
    const credential = bearerCredential(header);
    if (credential === null) return null;
    return this.byHash(hashCredential(credential));
  }

  byHash(hash: string): Caller | null {
    const e = this.#byHash.get(hash) ?? this.#provisional.get(hash);
    return e ? callerOf(hash, e) : null;
  }

  trustProvisionally(entries: { hash: string; entry: CredentialEntry }[]): void {
    for (const { hash, entry } of entries) {
      if (HASH_RE.test(hash) && entry.kind === "member") this.#provisional.set(hash, entry);
    }
  }

  get provisional(): boolean {
    return this.#provisional.size > 0;
  }

  /** Drops provisional entries the log has confirmed (the record applied) or made moot (the
   *  member removed). */
  settleProvisional(removed: (memberId: number) => boolean): void {
    for (const [hash, e] of this.#provisional) {
      if (this.#byHash.has(hash) || removed(e.memberId)) this.#provisional.delete(hash);
    }
  }

  /** The hash of member `id`'s live credential, if any. */
  memberHash(id: number): string | undefined {
    for (const [hash, e] of this.#byHash) if (e.kind === "member" && e.memberId === id) return hash;
    return undefined;
  }

  /** Every live credential of node `name`. */
  ofNode(name: string): Caller[] {
    const out: Caller[] = [];
    for (const [hash, e] of this.#byHash) if (e.node === name) out.push(callerOf(hash, e));
    return out;
  }

  /** Every live credential. */
  all(): Caller[] {
    return [...this.#byHash].map(([hash, e]) => callerOf(hash, e));
  }

  /** Calls `fn` once when the credential with `hash` is revoked; returns an unsubscribe. */
  onRevoked(hash: string, fn: () => void): () => void {
    let set = this.#revoked.get(hash);
    if (!set) this.#revoked.set(hash, set = new Set());
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.#revoked.get(hash) === set) this.#revoked.delete(hash);
    };
  }

  #applied(batch: RevisionEvents): void {
    for (const ev of batch.events) {
      const key = dec.decode(ev.kv.key);
      if (!key.startsWith(CREDENTIALS_PREFIX)) continue;
      const hash = key.slice(CREDENTIALS_PREFIX.length);
      if (!HASH_RE.test(hash)) continue;
      const entry = ev.type === "PUT" ? decodeCredentialEntry(ev.kv.value) : null;
      if (entry) {
        this.#byHash.set(hash, entry);
      } else if (this.#byHash.delete(hash)) {
        this.#fire(hash);
      }
    }
  }

  #rebuild(): void {
    const next = new Map<string, CredentialEntry>();
    const from = enc.encode(CREDENTIALS_PREFIX);
    const end = enc.encode(CREDENTIALS_PREFIX.slice(0, -1) + "0"); // '/' + 1
    const r = this.sm.range(rangeOf(from, end));
    for (const kv of r.kvs) {
      const hash = dec.decode(kv.key).slice(CREDENTIALS_PREFIX.length);
      const entry = decodeCredentialEntry(kv.value);
      if (HASH_RE.test(hash) && entry) next.set(hash, entry);
    }
    const gone = [...this.#byHash.keys()].filter((h) => !next.has(h));
    this.#byHash = next;
    for (const h of gone) this.#fire(h);
  }

  #fire(hash: string): void {
    const set = this.#revoked.get(hash);
    if (!set) return;
    this.#revoked.delete(hash);
    for (const fn of set) {
      try {
        fn();
      } catch { /* a stream already gone */ }
    }
  }
}

/** A current, full range request over [key, end). */
export function rangeOf(key: Uint8Array, rangeEnd: Uint8Array): RangeRequest {
  return {
    key,
    rangeEnd,
    limit: 0,
    revision: "0",
    keysOnly: false,
    countOnly: false,
    serializable: true,
  };
}

/** The current value of `key` in `sm`, as text; null when absent. */
export function readText(sm: KvStateMachine, key: string): string | null {
  const r = sm.range(rangeOf(enc.encode(key), new Uint8Array()));
  return r.kvs.length ? dec.decode(r.kvs[0].value) : null;
}
