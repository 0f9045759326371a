// The trust side of a store member (shared/DESIGN.md "Trust"): who a peer request comes from,
// the leader's handling of joins (join secret, one live credential per node name, a signed
// serving certificate), certificate signing for learners, admin-credential registration,
// remove-node, and the replicated trust data seeded at --init. Every write goes through Raft, so
// all members see the same credentials; only hashes of credentials are ever stored.
import type { RaftKv } from "../raft_kv.ts";
import type { Command } from "../kv.ts";
import { StoreError } from "../errors.ts";
import {
  CA_CERT_KEY,
  CA_KEY_KEY,
  type Caller,
  CredentialIndex,
  credentialKey,
  encodeCredentialEntry,
  JOIN_SECRET_KEY,
  readText,
} from "../trust.ts";
import { type ClusterCa, loadClusterCa } from "../../pki/ca.ts";
import { createCredential, hashCredential } from "../../pki/credential.ts";
import { joinSecretMatches } from "../../pki/join_token.ts";
import { signCertificateRequest } from "../../pki/member_cert.ts";
import { splitHostPort } from "../../net/address.ts";
import type { Logger } from "../../log.ts";
import {
  type JoinRequest,
  type JoinResponse,
  PeerRefusal,
  type RemoveNodeResult,
} from "./peer_routes.ts";

/** Header a forwarding member sets to the sha256 of its caller's credential. */
export const CALLER_HEADER = "x-twill-caller";
export const WRONG_SECRET = "join refused: wrong join secret";

export interface MemberTlsOptions {
  /** pki/member.crt: the serving certificate followed by the CA certificate. */
  certPem: string;
  keyPem: string;
  /** pki/ca.crt */
  caPem: string;
  /** pki/ca.key on a voter; otherwise taken from the replicated data when needed. */
  caKeyPem?: string;
  /** Lifetime of renewed serving certificates (default one year). */
  certLifetimeMs?: number;
}

export interface MemberTrustOptions {
  /** This member's credential (<data-dir>/credential): its peer identity. */
  credential: string;
  /** --init: the trust data to seed once this member leads. */
  init?: { joinSecret: string; adminCredential: string };
}

const enc = new TextEncoder();

export class TrustState {
  readonly index: CredentialIndex;
  #ca: ClusterCa | undefined;

  constructor(
    private readonly kv: RaftKv,
    private readonly tls: MemberTlsOptions,
    private readonly log: Logger,
  ) {
    this.index = new CredentialIndex(kv.sm);
  }

  /** The caller of a peer request: its credential's identity, or, when a member forwards, the
   *  caller it names (honoured only from member credentials). */
  authenticate(req: Request): Caller | null {
    const direct = this.index.authenticate(req.headers.get("authorization"));
    const forwarded = req.headers.get(CALLER_HEADER);
    if (!direct || forwarded === null || direct.kind !== "member") return direct;
    return this.index.byHash(forwarded);
  }

  /** The CA with its key (from pki/ca.key, else the replicated copy); the key may be absent. */
  async ca(): Promise<ClusterCa> {
    if (this.#ca?.privateKey) return this.#ca;
    const keyPem = this.tls.caKeyPem ?? readText(this.kv.sm, CA_KEY_KEY);
    this.#ca = await loadClusterCa(this.tls.caPem, keyPem);
    return this.#ca;
  }

  caKeyPem(): string | null {
    return this.tls.caKeyPem ?? readText(this.kv.sm, CA_KEY_KEY);
  }

  /** A serving certificate chain for the member at `address`, signed from its request. */
  async signFor(address: string, name: string, csrPem: string): Promise<string> {
    const [host] = splitHostPort(address);
    try {
      const signed = await signCertificateRequest(await this.ca(), csrPem, {
        advertiseHost: host,
        name,
        lifetimeMs: this.tls.certLifetimeMs,
      });
      return signed.chainPem;
    } catch (e) {
      throw new StoreError("invalidArgument", `cannot sign: ${(e as Error).message}`);
    }
  }

  /** Refuses a join whose secret is not the cluster's (the same answer whatever the name). */
  checkSecret(req: JoinRequest): void {
    const stored = readText(this.kv.sm, JOIN_SECRET_KEY);
    if (stored === null || !joinSecretMatches(req.secret, stored)) {
      this.log("warn", "join_refused", { address: req.address, reason: "wrong join secret" });
      throw new PeerRefusal(401, WRONG_SECRET);
    }
  }

  /** Refuses a name that still has a live credential. */
  checkNameFree(name: string): void {
    if (this.index.ofNode(name).length > 0) {
      throw new PeerRefusal(
        409,
        `node ${name} already has a live credential; run twill ctl remove-node ${name} on a member first`,
      );
    }
  }

  /** Creates and records a credential; returns the credential itself (never stored). */
  async createCredential(name: string, kind: "node" | "member", memberId: number) {
    const credential = createCredential();
    await this.putRecord(hashCredential(credential), name, kind, memberId);
    return credential;
  }

  async putRecord(hash: string, node: string, kind: string, memberId: number): Promise<void> {
    await this.kv.write({
      op: "put",
      requestId: crypto.randomUUID(),
      key: credentialKey(hash),
      value: encodeCredentialEntry({ node, kind: kind as "node", memberId }),
      lease: "0",
      prevKv: false,
    });
  }

  async deleteRecords(hashes: string[]): Promise<void> {
    if (hashes.length === 0) return;
    await this.kv.write({
      op: "txn",
      requestId: crypto.randomUUID(),
      compare: [],
      success: hashes.map((h) => ({
        deleteRange: { key: credentialKey(h), rangeEnd: new Uint8Array(), prevKv: false },
      })),
      failure: [],
    });
  }

  /** --init: the join secret, the CA and the first credentials, written once. */
  async seed(selfName: string, selfId: number, credential: string, init: {
    joinSecret: string;
    adminCredential: string;
  }): Promise<void> {
    if (readText(this.kv.sm, JOIN_SECRET_KEY) !== null) return;
    if (!this.tls.caKeyPem) throw new Error("--init needs the CA key to seed the cluster");
    const put = (key: string, value: Uint8Array): Command => ({
      op: "put",
      requestId: `init-${key}`,
      key: enc.encode(key),
      value,
      lease: "0",
      prevKv: false,
    });
    for (
      const cmd of [
        put(CA_CERT_KEY, enc.encode(this.tls.caPem)),
        put(CA_KEY_KEY, enc.encode(this.tls.caKeyPem)),
      ]
    ) await this.kv.write(cmd);
    await this.putRecord(hashCredential(credential), selfName, "member", selfId);
    await this.putRecord(hashCredential(init.adminCredential), selfName, "admin", selfId);
    // Last: its presence means the seed is complete.
    await this.kv.write(put(JOIN_SECRET_KEY, enc.encode(init.joinSecret)));
    this.log("info", "trust_seeded", { node: selfName });
  }

  /** The answer to a join once admitted. */
  response(
    base: Omit<JoinResponse, "credential" | "caPem" | "certPem">,
    credential: string,
    certPem: string,
  ): JoinResponse {
    return { ...base, credential, caPem: this.tls.caPem, certPem };
  }

  /** Leases granted by node `name`. */
  leasesOf(name: string): string[] {
    return this.kv.sm.leases().filter((l) => l.owner === name).map((l) => l.id);
  }

  async revokeLeases(ids: string[]): Promise<number> {
    let n = 0;
    for (const id of ids) {
      try {
        await this.kv.write({ op: "leaseRevoke", requestId: crypto.randomUUID(), id });
        n++;
      } catch (e) {
        if (!(e instanceof StoreError && e.code === "leaseNotFound")) throw e;
      }
    }
    return n;
  }

  /** remove-node's first two steps: credentials, then leases. */
  async revokeNode(name: string): Promise<Omit<RemoveNodeResult, "member">> {
    const creds = this.index.ofNode(name);
    await this.deleteRecords(creds.map((c) => c.hash));
    const leases = await this.revokeLeases(this.leasesOf(name));
    this.log("info", "node_revoked", { node: name, credentials: creds.length, leases });
    return { credentials: creds.length, leases };
  }

  /** Admin records of members that are no longer voters (the leader deletes them). */
  staleAdmins(voters: number[]): string[] {
    return this.index.all()
      .filter((c) => c.kind === "admin" && c.memberId !== undefined)
      .filter((c) => !voters.includes(c.memberId!))
      .map((c) => c.hash);
  }
}
