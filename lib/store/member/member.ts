// One running store member: durable Raft storage in the data dir, the Raft driver, the peer
// transport, the client API and the peer routes on one HTTP server, the tick timer, and the
// leader's membership policy (promote learners, replace dead voters, drop dead learners), and
// trust (member_trust.ts): every request authenticated, TLS only, certificates renewed.
import { HEARTBEAT_RTT } from "../../metrics.ts";
import { join } from "node:path";
import { bootstrapSnapshot } from "../../raft/bootstrap.ts";
import type { ConfChange, ConfState, Message, NodeId } from "../../raft/types.ts";
import { type LeaderRpc, RaftKv } from "../raft_kv.ts";
import { MvccStateMachine } from "../state_machine.ts";
import { Lessor } from "../lessor.ts";
import { ETCD_MESSAGES, StoreError } from "../errors.ts";
import { DurableStorage } from "../wal/durable_storage.ts";
import type { LogStore } from "./log_store.ts";
import { type ConfChangeContext, type MemberInfo, MemberTable } from "./members.ts";
import { decodeSnapshotData, encodeSnapshotData } from "./snapshot_envelope.ts";
import { HttpTransport } from "./transport.ts";
import {
  createPeerApp,
  type JoinRequest,
  type JoinResponse,
  type MembersResponse,
  type PeerHandler,
  PeerRefusal,
  type RemoveNodeResult,
  type SelfStatus,
} from "./peer_routes.ts";
import {
  CALLER_HEADER,
  type MemberTlsOptions,
  type MemberTrustOptions,
  TrustState,
} from "./member_trust.ts";
import { VoterFiles } from "./voter_files.ts";
import { startMemberRenewal } from "./renewal.ts";
import type { Renewal } from "../../pki/cert_renewal.ts";
import { createApiApp } from "../api/app.ts";
import { credentialAuth } from "../api/auth.ts";
import type { Caller } from "../trust.ts";
import { hashCredential } from "../../pki/credential.ts";
import { decideMembership, type MembershipAction } from "./membership.ts";
import type { MemberIdentity } from "./identity.ts";
import type { Logger } from "../../log.ts";
import { splitHostPort } from "../../net/address.ts";
import { HttpClient } from "../../http/client.ts";
import { serve, type StoreServer } from "../../http/serve.ts";
import { VERSION } from "../../version.ts";
import { writeTextFileAtomic } from "../../fs_atomic.ts";

export interface StoreMemberOptions {
  dataDir: string;
  /** host:port to serve the store API and peer routes on. */
  listen: string;
  identity: MemberIdentity;
  /** The serving certificate, its key and the cluster CA (all of 8473 is TLS). */
  tls: MemberTlsOptions;
  /** This member's credential and, at --init, the trust data to seed. */
  trust: MemberTrustOptions;
  /** The network's etcd prefix, which bounds what node credentials may touch. */
  etcdPrefix?: string;
  /** Voters wanted (1..7). */
  voters: number;
  /** Learners kept as standby (beyond them, joiners that need not be members become clients). */
  standbyLearners?: number;
  deadVoterTimeoutMs: number;
  snapshotCount: number;
  /** MVCC revisions of history kept by the leader's auto-compaction (0: never; default 10,000). */
  retainRevisions?: number;
  tickMs: number;
  /** Election timeout in ticks (the daemon's --election-ticks). */
  electionTick: number;
  logger: Logger;
  /** --init: create a cluster whose only voter is this member (data dir must be empty). */
  bootstrap?: boolean;
  /** --join: the members the leader told us about. */
  initialMembers?: (MemberInfo & { credentialHash?: string })[];
  /** Use in-memory storage (tests only). */
  inMemory?: boolean;
}

const PEERS_FILE = "peers.json";

export class StoreMember implements PeerHandler {
  readonly kv: RaftKv;
  readonly transport: HttpTransport;
  readonly storage: LogStore;
  private server: StoreServer | undefined;
  private renewal: Renewal | undefined;
  readonly trust: TrustState;
  private readonly voterFiles: VoterFiles;
  private timer: ReturnType<typeof setInterval> | undefined;
  private readonly lastContact = new Map<NodeId, number>();
  private leaderSince = 0;
  private readonly joins = new Map<string, JoinResponse>();
  private membershipBusy = false;
  private ticks = 0;
  private readonly log: Logger;
  /** Peer streams into this member, closed when it stops. */
  private readonly streams = new Set<WebSocket>();
  /** Forwards requests to the leader with the cluster credential. */
  private readonly http: HttpClient;

  private constructor(
    readonly opts: StoreMemberOptions,
    storage: LogStore,
    kv: RaftKv,
    transport: HttpTransport,
  ) {
    this.storage = storage;
    this.kv = kv;
    this.transport = transport;
    this.log = opts.logger;
    this.http = new HttpClient({
      token: opts.trust.credential,
      tls: { caCerts: [opts.tls.caPem] },
      timeoutMs: 5000,
    });
    this.trust = new TrustState(kv, opts.tls, opts.logger);
    this.trustJoinAnswer(opts);
    this.voterFiles = new VoterFiles({
      dataDir: opts.dataDir,
      caKeyPem: () => this.trust.caKeyPem(),
      registerAdmin: (hash) => this.registerAdminHash(hash),
      log: opts.logger,
    });
  }

  /** A member that has just joined knows its peers' and its own credential from the join
   *  answer before their records reach it through the log: it accepts them until then, so its
   *  peers can replicate to it and the agent beside it is served at once. */
  private trustJoinAnswer(opts: StoreMemberOptions): void {
    const joined = opts.initialMembers ?? [];
    if (joined.length === 0) return;
    const { identity } = opts;
    const entries = joined.flatMap((m) =>
      m.credentialHash
        ? [{
          hash: m.credentialHash,
          entry: { node: m.name, kind: "member" as const, memberId: m.id },
        }]
        : []
    );
    entries.push({
      hash: hashCredential(opts.trust.credential),
      entry: { node: identity.name, kind: "member", memberId: identity.nodeId },
    });
    this.trust.index.trustProvisionally(entries);
  }

  /** The port the store API listens on (useful with port 0). */
  get port(): number {
    return this.server!.port;
  }

  private fatalListeners: ((e: Error) => void)[] = [];
  private fatalError: Error | undefined;

  /** Resolves with the error that stopped this member, if one ever does. */
  whenFailed(): Promise<Error> {
    if (this.fatalError) return Promise.resolve(this.fatalError);
    return new Promise((resolve) => this.fatalListeners.push(resolve));
  }

  private failed(e: Error): void {
    this.fatalError = e;
    for (const l of this.fatalListeners.splice(0)) l(e);
  }

  get id(): NodeId {
    return this.opts.identity.nodeId;
  }

  static async start(opts: StoreMemberOptions): Promise<StoreMember> {
    const { identity, logger } = opts;
    const storage = await openStorage(opts);
    const snap = storage.snapshot();
    const { sm, members, known } = await restoreState(opts, snap.data);
    let member: StoreMember | undefined = undefined;
    const kv = StoreMember.createKv(opts, storage, sm, members, () => member);
    const transport = createTransport(opts, kv);
    for (const m of known.values()) if (m.address) transport.setPeer(m.id, m.address);
    kv.setTransport(transport);
    member = new StoreMember(opts, storage, kv, transport);
    await member.listen();
    member.timer = setInterval(() => member!.onTick(), opts.tickMs);
    logger("info", "store_member_started", {
      id: identity.nodeId,
      cluster: identity.clusterId,
      listen: opts.listen,
      advertise: identity.advertise,
      applied: snap.metadata.index,
      last_index: storage.lastIndex(),
    });
    if (opts.bootstrap) kv.campaign();
    if (opts.bootstrap && opts.trust.init) {
      await member.ready(30_000);
      await member.trust.seed(
        identity.name,
        identity.nodeId,
        opts.trust.credential,
        opts.trust.init,
      );
    }
    return member;
  }

  /** Serves the client API and the peer routes over TLS, and keeps the certificate fresh. */
  private async listen(): Promise<void> {
    const { opts } = this;
    const auth = credentialAuth(
      this.trust.index,
      this.kv.sm,
      opts.etcdPrefix ?? "/coreos.com/network",
      (who, path, reason) =>
        this.log("info", "request_refused", {
          path,
          node: who?.nodeName ?? "",
          kind: who?.kind ?? "none",
          reason,
        }),
    );
    const app = createApiApp(this.kv, { auth });
    app.route("/raft", createPeerApp(this));
    const [hostname, port] = splitHostPort(opts.listen);
    this.server = await serve({
      hostname,
      port,
      handler: app.fetch,
      logger: this.log,
      tls: { certPem: opts.tls.certPem, keyPem: opts.tls.keyPem },
    });
    this.renewal = startMemberRenewal(this, this.server);
  }

  /** The Raft-backed kv; its events reach the member once it exists (`member()`). */
  private static createKv(
    opts: StoreMemberOptions,
    storage: LogStore,
    sm: MvccStateMachine,
    members: MemberTable,
    member: () => StoreMember | undefined,
  ): RaftKv {
    const lessor = new Lessor(sm);
    const leaderRpc: LeaderRpc = {
      keepAlive: (leader, id) => member()!.callLeader(leader, "/raft/lease/keepalive", { id }),
      timeToLive: async (leader, id) =>
        (await member()!.callLeader<{ lease: { ttl: number; grantedTtl: number } | null }>(
          leader,
          "/raft/lease/timetolive",
          { id },
        )).lease,
    };
    return new RaftKv({
      id: opts.identity.nodeId,
      clusterId: opts.identity.clusterId,
      storage,
      sm,
      members,
      applied: storage.snapshot().metadata.index,
      rand: (n) => Math.floor(Math.random() * n),
      now: () => Date.now(),
      lessor: {
        promote: (now) => lessor.promote(now),
        keepAlive: (id, now) => lessor.keepAlive(id, now),
        expired: (now) => lessor.expired(now),
        ttlLeft: (id, now) => lessor.ttlLeft(id, now),
      },
      leaderRpc,
      tickMs: opts.tickMs,
      electionTick: opts.electionTick,
      heartbeatTick: 1,
      snapshotCount: opts.snapshotCount,
      retainRevisions: opts.retainRevisions,
      logger: opts.logger,
      onConfChange: (cc, conf) => member()?.onConfChange(cc, conf),
      onMembersRestored: () => member()?.syncPeers(),
      onLeaderChange: (lead) => member()?.onLeaderChange(lead),
      onFatal: (e) => member()?.failed(e),
    });
  }

  async close(): Promise<void> {
    await this.handOffLeadership();
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.renewal?.stop();
    this.kv.stop();
    this.transport.close();
    for (const s of this.streams) {
      try {
        s.close();
      } catch { /* already closed */ }
    }
    this.streams.clear();
    await this.server?.shutdown().catch(() => {});
    await this.storage.close();
  }

  /** A leader that is stopping hands leadership to its most caught-up voter first, so a
   *  rolling restart costs no election timeout. Best effort, at most ~2 s. */
  private async handOffLeadership(): Promise<void> {
    const b = this.kv;
    if (b.isStopped || b.currentRole !== "leader") return;
    const st = b.status();
    const candidates = st.config.voters.filter((id) => id !== this.id)
      .map((id) => ({ id, match: st.progress?.get(id)?.match ?? 0 }))
      .sort((x, y) => y.match - x.match);
    if (candidates.length === 0) return;
    const to = candidates[0].id;
    b.transferLeadership(to);
    const end = Date.now() + 2000;
    while (Date.now() < end && b.currentRole === "leader") {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.log(b.currentRole === "leader" ? "warn" : "info", "leadership_handed_off", {
      to,
      done: b.currentRole !== "leader",
    });
  }

  /** Resolves once this member knows a leader and has applied the leader's commit index. */
  async ready(timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (true) {
      try {
        await this.kv.readBarrier();
        return;
      } catch (e) {
        if (Date.now() > end) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  // ----- events -------------------------------------------------------------------------------

  private onTick(): void {
    this.kv.tick();
    if (this.kv.isStopped) return;
    this.ticks++;
    if (this.kv.currentRole === "leader" && this.ticks % 5 === 0) {
      void this.runMembershipPolicy();
      void this.dropStaleAdmins();
    }
    if (this.trust.index.provisional) {
      this.trust.index.settleProvisional((id) => this.isRemoved(id));
    }
    if (this.ticks % 5 === 0 && this.kv.leader !== 0 && !this.opts.inMemory) {
      void this.voterFiles.sync(this.kv.confState.voters.includes(this.id));
    }
  }

  private onLeaderChange(lead: NodeId): void {
    if (lead === this.id) this.leaderSince = Date.now();
  }

  private onConfChange(cc: ConfChange, conf: ConfState): void {
    if (cc.type === "removeNode" && this.kv.members.get(cc.nodeId)?.demoting) {
      // Half of a demotion: it stays a peer and comes back as a learner next.
      this.lastContact.set(cc.nodeId, Date.now());
    } else if (cc.type === "removeNode") {
      this.transport.removePeer(cc.nodeId);
      this.lastContact.delete(cc.nodeId);
      if (cc.nodeId === this.id) {
        this.log("warn", "removed_from_cluster", {
          detail: "this member was removed; remove its data dir and re-join to serve again",
        });
      }
    } else {
      // A new member gets a full --dead-voter-timeout of grace before the policy may call it dead.
      if (!this.lastContact.has(cc.nodeId)) this.lastContact.set(cc.nodeId, Date.now());
      const m = this.kv.members.get(cc.nodeId);
      if (m?.address) this.transport.setPeer(cc.nodeId, m.address);
      if (cc.type === "addNode" && conf.voters.includes(cc.nodeId)) {
        this.log("info", "voter_added", { node: cc.nodeId, address: m?.address });
      } else {
        this.log("info", "peer_added", { node: cc.nodeId, address: m?.address, kind: "learner" });
      }
    }
    void writePeers(this.opts.dataDir, this.kv.members.all(), this.opts.inMemory);
  }

  private syncPeers(): void {
    for (const m of this.kv.members.all()) {
      if (m.address) this.transport.setPeer(m.id, m.address);
    }
    void writePeers(this.opts.dataDir, this.kv.members.all(), this.opts.inMemory);
  }

  private async runMembershipPolicy(): Promise<void> {
    if (this.membershipBusy || this.kv.hasPendingConfChange()) return;
    const st = this.kv.status();
    if (!st.progress) return;
    const match = new Map<NodeId, number>();
    for (const [id, p] of st.progress) match.set(id, p.match);
    const action = decideMembership({
      now: Date.now(),
      self: this.id,
      voters: st.config.voters,
      learners: st.config.learners,
      commit: st.hardState.commit,
      match,
      lastContact: this.lastContact,
      leaderSince: this.leaderSince,
      desiredVoters: this.opts.voters,
      deadVoterTimeoutMs: this.opts.deadVoterTimeoutMs,
      freshContactMs: Math.max(2000, this.opts.tickMs * 20),
      catchUpSlack: 100,
      pendingConfChange: false,
      demoting: this.kv.members.demoting(),
    });
    if (!action) return;
    this.membershipBusy = true;
    try {
      await this.carryOut(action);
    } catch (e) {
      this.log("warn", "membership_change_failed", {
        action: action.type,
        node: action.id,
        error: e,
      });
    } finally {
      this.membershipBusy = false;
    }
  }

  /** Proposes the policy's one change and logs it once applied. */
  private async carryOut(action: MembershipAction): Promise<void> {
    const m = this.kv.members.get(action.id);
    const ctx = m ? { address: m.address, name: m.name } : undefined;
    const change = {
      promote: { type: "addNode", ctx },
      removeVoter: { type: "removeNode", ctx: undefined },
      removeLearner: { type: "removeNode", ctx: undefined },
      // Keeps the member's entry (so no one tells it it was removed) until it is a learner.
      demote: { type: "removeNode", ctx: ctx && { ...ctx, demote: true } },
      readdLearner: { type: "addLearner", ctx },
    }[action.type] as { type: ConfChange["type"]; ctx?: ConfChangeContext };
    await this.kv.changeMembership({ type: change.type, nodeId: action.id }, change.ctx);
    const event = {
      promote: action.reason === "replace_dead_voter" ? "voter_replaced" : "learner_promoted",
      removeVoter: "dead_voter_removed",
      removeLearner: "dead_learner_removed",
      demote: "voter_demoting",
      readdLearner: "voter_demoted",
    }[action.type];
    this.log("info", event, {
      node: action.id,
      address: m?.address,
      replacing: action.type === "promote" ? action.replacing : undefined,
      voters: action.type === "demote" ? this.opts.voters : undefined,
    });
  }

  // ----- PeerHandler --------------------------------------------------------------------------

  clusterId(): string {
    return this.opts.identity.clusterId;
  }

  authenticate(req: Request): Caller | null {
    return this.trust.authenticate(req);
  }

  onRevoked(who: Caller, fn: () => void): () => void {
    return this.trust.index.onRevoked(who.hash, fn);
  }

  isRemoved(from: NodeId): boolean {
    const t = this.kv.members;
    return from > 0 && from <= t.maxId && t.get(from) === undefined;
  }

  streamOpened(socket: WebSocket): void {
    this.streams.add(socket);
    socket.addEventListener("close", () => this.streams.delete(socket));
  }

  receive(from: NodeId, msgs: Message[]): string | undefined {
    if (from) this.lastContact.set(from, Date.now());
    HEARTBEAT_RTT.received(from, msgs);
    const refused = this.kv.stepChecked(msgs);
    if (refused) this.log("warn", "peer_message_refused", { from, reason: refused });
    return refused;
  }

  status(): SelfStatus {
    const b = this.kv;
    const st = b.status();
    return {
      id: this.id,
      name: this.opts.identity.name,
      address: this.opts.identity.advertise,
      clusterId: this.clusterId(),
      role: st.config.learners.includes(this.id) ? "learner" : b.currentRole,
      term: st.hardState.term,
      leader: b.leader,
      commit: st.hardState.commit,
      applied: b.appliedIndex,
      revision: b.sm.revision,
      voters: st.config.voters,
      learners: st.config.learners,
      version: VERSION,
    };
  }

  async members(): Promise<MembersResponse> {
    const b = this.kv;
    if (b.currentRole !== "leader") {
      if (b.leader === 0) throw new StoreError("unavailable", ETCD_MESSAGES.noLeader);
      return await this.callLeader<MembersResponse>(b.leader, "/raft/members", {});
    }
    const st = b.status();
    const now = Date.now();
    const view = [
      ...st.config.voters.map((id) => [id, "voter"] as const),
      ...st.config.learners.map((id) => [id, "learner"] as const),
    ]
      .map(([id, kind]) => {
        const info = b.members.get(id);
        const seen = this.lastContact.get(id);
        return {
          id,
          name: info?.name ?? "",
          address: info?.address ?? "",
          kind,
          isLeader: id === this.id,
          match: st.progress?.get(id)?.match ?? 0,
          lastContactMs: id === this.id ? 0 : seen === undefined ? null : now - seen,
        };
      })
      .sort((a, c) => a.id - c.id);
    return {
      clusterId: this.clusterId(),
      leader: this.id,
      term: st.hardState.term,
      commit: st.hardState.commit,
      members: view,
    };
  }

  async join(req: JoinRequest): Promise<JoinResponse> {
    const b = this.kv;
    if (b.currentRole !== "leader") {
      if (b.leader === 0) {
        throw new StoreError("unavailable", "no leader at the moment; retry the join shortly");
      }
      return await this.callLeader<JoinResponse>(b.leader, "/raft/join", req);
    }
    // The secret first: a wrong one gets the same answer whatever the name or join id.
    this.trust.checkSecret(req);
    const done = this.joins.get(req.joinId);
    if (done) return done;
    this.trust.checkNameFree(req.name);
    const conf = b.confState;
    const standby = this.opts.standbyLearners ?? 2;
    const asClient = !req.wantMember && conf.learners.length >= standby &&
      conf.voters.length >= this.opts.voters;
    // Sign before changing anything, so a bad request leaves no trace.
    const certPem = asClient ? "" : await this.trust.signFor(req.address, req.name, req.csrPem);
    if (!asClient) await this.freeAddress(req.address);
    const id = asClient ? 0 : b.members.nextId();
    if (!asClient) {
      await b.changeMembership({ type: "addLearner", nodeId: id }, {
        address: req.address,
        name: req.name,
      });
    }
    const credential = await this.trust.createCredential(
      req.name,
      asClient ? "node" : "member",
      id,
    );
    const resp = this.trust.response(
      {
        clusterId: this.clusterId(),
        nodeId: id,
        role: asClient ? "client" : "learner",
        members: b.members.all().map((m) => ({
          ...m,
          credentialHash: this.trust.index.memberHash(m.id),
        })),
      },
      credential,
      certPem,
    );
    this.joins.set(req.joinId, resp);
    if (this.joins.size > 1000) this.joins.delete(this.joins.keys().next().value!);
    this.log("info", asClient ? "client_admitted" : "member_joined", {
      node: id,
      address: req.address,
      name: req.name,
    });
    return resp;
  }

  /** Signs a renewal of a member's serving certificate (names from its recorded address). */
  async sign(who: Caller, csrPem: string): Promise<{ certPem: string }> {
    const info = who.memberId ? this.kv.members.get(who.memberId) : undefined;
    if (!info) throw new PeerRefusal(403, "only a current member's certificate is signed");
    if (this.trust.caKeyPem() === null) {
      if (this.kv.leader === 0 || this.kv.leader === this.id) {
        throw new StoreError("unavailable", "no voter with the CA key is reachable");
      }
      return await this.callLeader(this.kv.leader, "/raft/sign", { csrPem });
    }
    return { certPem: await this.trust.signFor(info.address, info.name, csrPem) };
  }

  async registerAdmin(who: Caller, hash: string): Promise<void> {
    if (this.kv.currentRole !== "leader") {
      await this.callLeader(this.kv.leader, "/raft/admin-credential", { hash }, who);
      return;
    }
    if (who.kind !== "member" || !this.kv.confState.voters.includes(who.memberId ?? -1)) {
      throw new PeerRefusal(403, "only a voter registers an admin credential");
    }
    await this.trust.putRecord(hash, who.nodeName, "admin", who.memberId!);
    this.log("info", "admin_credential_registered", { node: who.nodeName, member: who.memberId });
  }

  /** This member's own admin credential hash: recorded locally when leading. */
  private async registerAdminHash(hash: string): Promise<void> {
    const self = this.trust.index.authenticate(`Bearer ${this.opts.trust.credential}`);
    if (!self) throw new Error("this member's credential is not live");
    if (this.kv.currentRole === "leader") return await this.registerAdmin(self, hash);
    if (this.kv.leader === 0) throw new StoreError("unavailable", "no leader");
    await this.callLeader(this.kv.leader, "/raft/admin-credential", { hash });
  }

  /** Revokes node `name`'s credentials and store leases; removes it if it is a member. */
  async removeNode(name: string, who?: Caller): Promise<RemoveNodeResult> {
    const b = this.kv;
    if (b.currentRole !== "leader") {
      if (b.leader === 0) throw new StoreError("unavailable", ETCD_MESSAGES.noLeader);
      const fwd = await this.callLeader<{ removed: RemoveNodeResult }>(
        b.leader,
        "/raft/remove-node",
        { name },
        who,
      );
      return fwd.removed;
    }
    const m = b.members.all().find((x) => x.name === name);
    if (!m && this.trust.index.ofNode(name).length === 0 && !this.trust.leasesOf(name).length) {
      throw new PeerRefusal(404, `no node named ${name}`);
    }
    if (m?.id === this.id) {
      throw new PeerRefusal(409, `${name} is the leader; retry once leadership has moved`);
    }
    const revoked = await this.trust.revokeNode(name);
    if (m) await b.changeMembership({ type: "removeNode", nodeId: m.id });
    this.log("info", "node_removed", { node: name, member: m?.id ?? 0 });
    return { ...revoked, member: m?.id ?? 0 };
  }

  /** The leader deletes the admin records of members that are no longer voters. */
  private async dropStaleAdmins(): Promise<void> {
    const stale = this.trust.staleAdmins(this.kv.confState.voters);
    if (stale.length === 0) return;
    try {
      await this.trust.deleteRecords(stale);
      this.log("info", "admin_credentials_revoked", { count: stale.length });
    } catch (e) {
      this.log("warn", "admin_revoke_failed", { error: (e as Error).message });
    }
  }

  /** Makes room for a joiner at `address` when a member already holds it: a stale learner is
   *  replaced; a voter only once it has been silent long enough to count as gone. */
  private async freeAddress(address: string): Promise<void> {
    const b = this.kv;
    const existing = b.members.byAddress(address);
    if (existing && b.confState.learners.includes(existing.id)) {
      // A learner at the same address: an earlier join whose answer was lost, or a node that
      // lost its data dir. A learner holds no vote, so it is safe to replace it.
      await b.changeMembership({ type: "removeNode", nodeId: existing.id });
      this.log("info", "stale_learner_removed", { node: existing.id, address });
    } else if (existing) {
      // A voter's address joining again means a node that lost its data dir (reinstalled with
      // the same address). If the old incarnation has been silent, it is gone: remove it (the
      // remaining voters are then all the voters) and let the node join afresh; the policy will
      // promote it once caught up. A voter still heard from is not touched.
      const seen = this.lastContact.get(existing.id) ?? this.leaderSince;
      const quietMs = Math.max(3000, this.opts.tickMs * this.opts.electionTick * 3);
      if (existing.id === this.id) {
        throw new StoreError(
          "invalidArgument",
          `address ${address} is the leader's own; give the joining node its own address`,
        );
      }
      if (Date.now() - seen < quietMs) {
        // Retryable: the old incarnation may have just died.
        throw new StoreError(
          "unavailable",
          `address ${address} belongs to voter ${existing.id}, heard from ${
            Date.now() - seen
          } ms ago; waiting until it has been silent ${quietMs} ms (if it is alive, restart it from its data dir instead of joining again)`,
        );
      }
      await b.changeMembership({ type: "removeNode", nodeId: existing.id });
      this.log("info", "rejoined_voter_removed", { node: existing.id, address });
    }
  }

  keepAlive(id: string): Promise<{ ttl: number }> {
    return this.kv.leaseKeepAlive(id);
  }

  timeToLive(id: string): Promise<{ ttl: number; grantedTtl: number } | null> {
    return this.kv.leaseTimeToLive(id);
  }

  /** POSTs to the leader's peer route; errors become StoreErrors ("unavailable" when unknown). */
  async callLeader<T>(leader: NodeId, path: string, body: unknown, as?: Caller): Promise<T> {
    const address = this.kv.members.get(leader)?.address ?? this.transport.peerAddress(leader);
    if (!address) {
      throw new StoreError("unavailable", `leader ${leader}'s address is not known yet`);
    }
    let res: { status: number; ok: boolean; text: string };
    try {
      res = await this.http.postJson(address, path, body, {
        headers: as ? { [CALLER_HEADER]: as.hash } : undefined,
      });
    } catch (e) {
      throw new StoreError(
        "unavailable",
        `leader ${leader} at ${address} did not answer: ${(e as Error).message}`,
      );
    }
    const text = res.text;
    if (res.ok) return JSON.parse(text) as T;
    let err: { error?: string; code?: string | number } = {};
    try {
      err = JSON.parse(text);
    } catch { /* not JSON */ }
    // A store error travels as its code name (a missing lease is a 404 too, and must stay
    // "leaseNotFound" so the API answers as etcd does); a refusal's code is a number.
    if (typeof err.code === "string") {
      throw new StoreError(
        err.code as StoreError["code"],
        err.error ?? `leader answered ${res.status}`,
      );
    }
    if ([401, 403, 404, 409].includes(res.status)) {
      throw new PeerRefusal(res.status as 401, err.error ?? `leader answered ${res.status}`);
    }
    const code = res.status === 503 ? "unavailable" : "internal";
    throw new StoreError(code, err.error ?? `leader answered ${res.status}`);
  }
}

/** Opens the member's log (in memory for tests); with --init, writes the one-voter bootstrap
 *  snapshot into an empty one. */
async function openStorage(opts: StoreMemberOptions): Promise<LogStore> {
  const { identity, logger } = opts;
  const storage: LogStore = opts.inMemory
    ? new (await import("./log_store.ts")).MemoryLogStore()
    : await DurableStorage.open(join(opts.dataDir, "raft"), {
      warn: (line) => logger("warn", "wal_warning", { detail: line }),
    });
  if (!opts.bootstrap) return storage;
  if (storage.lastIndex() > 0 || storage.snapshot().metadata.index > 0) {
    throw new Error(
      `${opts.dataDir} already holds a Raft log; refusing to create a second cluster`,
    );
  }
  const members = MemberTable.from({
    members: [{ id: identity.nodeId, address: identity.advertise, name: identity.name }],
    maxId: identity.nodeId,
  });
  const data = encodeSnapshotData({ members: members.toData(), sm: new Uint8Array() });
  await storage.save({
    snapshot: bootstrapSnapshot({ voters: [identity.nodeId], learners: [] }, data),
    entries: [],
    mustSync: true,
  });
  return storage;
}

/** The state machine and member table of the snapshot, and every peer address known so far. */
async function restoreState(opts: StoreMemberOptions, snapData: Uint8Array) {
  const sm = new MvccStateMachine();
  let members = new MemberTable();
  const content = decodeSnapshotData(snapData);
  if (content) {
    if (content.sm.length > 0) sm.restore(content.sm);
    members = MemberTable.from(content.members);
  }
  // Addresses learned since the snapshot (replayed from the log soon anyway) and those the
  // leader gave us when joining: enough to reach the cluster before the log is replayed.
  const known = new Map<NodeId, MemberInfo>();
  for (const m of await readPeers(opts.dataDir)) known.set(m.id, m);
  for (const m of opts.initialMembers ?? []) known.set(m.id, m);
  for (const m of members.all()) known.set(m.id, m);
  return { sm, members, known };
}

function createTransport(opts: StoreMemberOptions, kv: RaftKv): HttpTransport {
  const { identity } = opts;
  return new HttpTransport({
    selfId: identity.nodeId,
    clusterId: identity.clusterId,
    token: opts.trust.credential,
    tls: { caCerts: [opts.tls.caPem] },
    onUnreachable: (id) => kv.reportUnreachable(id),
    onSnapshotStatus: (id, ok) => kv.reportSnapshot(id, ok),
    onRemoved: (by) =>
      kv.halt(
        new Error(
          `member ${identity.nodeId} was removed from cluster ${identity.clusterId} (member ${by} says so); ` +
            `remove ${opts.dataDir} and join again to serve`,
        ),
      ),
    logger: opts.logger,
  });
}

export async function readPeers(dataDir: string): Promise<MemberInfo[]> {
  try {
    const v = JSON.parse(await Deno.readTextFile(join(dataDir, PEERS_FILE)));
    return Array.isArray(v)
      ? v.filter((m) => Number.isSafeInteger(m?.id) && typeof m?.address === "string")
      : [];
  } catch {
    return [];
  }
}

/** peers.json writes, one after another (each replaces the file atomically through the same
 *  temporary file, so two at once must not interleave). */
let peersWrites: Promise<void> = Promise.resolve();

export function writePeers(
  dataDir: string,
  members: MemberInfo[],
  inMemory?: boolean,
): Promise<void> {
  if (inMemory) return Promise.resolve();
  const text = JSON.stringify(members) + "\n";
  peersWrites = peersWrites.then(() =>
    writeTextFileAtomic(join(dataDir, PEERS_FILE), text).catch(() => {
      // a member's copy is only a cache of addresses (the log has them too); a client's is
      // rewritten at the next refresh
    })
  );
  return peersWrites;
}
