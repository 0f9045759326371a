// The network agent over a SubnetRegistry: config, backend, lease, subnet.env, masquerade, then
// four loops: watch (peer leases), renew (our lease), resync (re-list) and reconcile (kernel
// repair); a lost lease is re-acquired. Data flows one way: store → lease watcher → backend →
// kernel. The backend is whichever lib/backend/registry.ts builds for the config's Backend.Type.
// Nothing is torn down when the agent stops.
import type { CIDR } from "../net/cidr.ts";
import { formatCIDR } from "../net/cidr.ts";
import type { ChosenIface } from "../net/iface.ts";
import {
  applyRuleset,
  MASQ_RULES,
  renderMasqRuleset,
  renderMasqRuleset6,
  ruleCount,
} from "../net/nftables.ts";
import { type Backend, backendSwitches, backendSwitchMessage } from "../backend/backend.ts";
import { backendConfigParser, initBackend } from "../backend/registry.ts";
import { type NetConfig, NetConfigError } from "../subnet/config.ts";
import {
  decodeLeaseAttrs,
  describeLease,
  type Lease,
  parseSubnetKey,
  sameSubnets,
  subnetKeyName,
  subnetsPrefix,
} from "../subnet/lease.ts";
import {
  leaseFromKv,
  LeaseLostError,
  LeaseManager,
  NoNetworkConfigError,
  renewDelayMs,
  SubnetUnavailableError,
} from "../subnet/manager.ts";
import type { RegistryEvent, SubnetRegistry, WatchItem } from "../subnet/registry.ts";
import { readPreviousSubnets, renderSubnetEnv, writeSubnetEnv } from "../subnet/subnet_env.ts";
import { LeaseWatcher, type PeerEvent } from "../subnet/watcher.ts";
import type { Logger } from "../log.ts";
import { LEASE_EVENTS, LEASE_TO_KERNEL, RECONCILE_DURATION } from "../metrics.ts";
import { type BatchOrigin, PeerEventBatcher } from "./burst.ts";
import type { NetworkAgentOptions } from "./options.ts";
import type { AgentState } from "./state.ts";

const RESYNC_MS = 15_000;
/** Up to this many peer changes at once are logged one line each, more as one summary. */
const PEER_LOG_LINES = 16;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** What the agent has once it holds a lease: fixed for its lifetime except `own`. */
interface Running {
  cfg: NetConfig;
  network: CIDR;
  backend: Backend;
  own: Lease;
  watcher: LeaseWatcher;
}

export class NetworkAgent {
  private readonly manager: LeaseManager;
  private readonly now = () => Date.now();
  private readonly interval: number;
  private readonly batcher: PeerEventBatcher;
  private r!: Running;
  /** A reconcile pass is due (an event failed, or a lease changed). */
  private reconcileWanted = true;
  /** Wakes the reconcile loop early; set while it sleeps. */
  private wake: (() => void) | null = null;
  /** When each event that asked for a reconcile arrived (for lastEventToProgrammedSeconds). */
  private pendingSince: number[] = [];
  /** Kernel changes never interleave: watch batches and reconcile passes take turns. */
  private lock: Promise<unknown> = Promise.resolve();
  private reacquiring = false;

  constructor(
    private readonly opts: NetworkAgentOptions,
    private readonly reg: SubnetRegistry,
    private readonly iface: ChosenIface,
    private readonly publicIP: string,
    private readonly stop: AbortSignal,
    private readonly log: Logger,
    private readonly state: AgentState,
  ) {
    this.interval = opts.reconcileIntervalMs ?? 5000;
    this.manager = new LeaseManager(reg, {
      prefix: opts.prefix,
      ttlSeconds: opts.subnetLeaseTtlSeconds,
      now: this.now,
      randomInt: (n) => Math.floor(Math.random() * n),
      log,
    });
    this.batcher = new PeerEventBatcher(
      (evs, at, got) => this.applyBatch(evs, at, got),
      () => this.r.backend.batchesSpawn(),
    );
  }

  /** Runs until the stop signal; rejects with one clear line on a fatal error. */
  async run(): Promise<void> {
    const cfg = await this.waitForConfig();
    if (!cfg) return;
    const network = this.checkFamilies(cfg);
    const backend = await this.startBackend(cfg, network);
    await this.reportBackendSwitch(backend.type);
    const own = await this.acquireLease(cfg, backend);
    if (!own) return;
    this.r = { cfg, network, backend, own, watcher: new LeaseWatcher(own) };
    this.leaseTaken(own);
    const listed = await this.listWithRetry();
    this.logPeers(this.r.watcher.reset(listed.leases));
    await this.reconcileOnce("startup");
    await this.writeEnv();
    await this.applyMasq();
    this.log("info", "agent_ready", {
      subnet: this.state.subnet,
      peers: this.r.watcher.peers.size,
    });
    await Promise.all([
      this.reconcileLoop(),
      this.watchLoop(listed.revision + 1n),
      this.renewLoop(),
      this.resyncLoop(),
    ]);
    this.log("info", "agent_stopped", { subnet: this.state.subnet });
  }

  /** Waits while the store is unreachable or the config absent; a bad config is fatal. */
  private async waitForConfig(): Promise<NetConfig | null> {
    let lastErr = "";
    while (!this.stop.aborted) {
      try {
        const cfg = await this.manager.getNetworkConfig(backendConfigParser);
        this.state.storeOk(this.now());
        return cfg;
      } catch (e) {
        if (e instanceof NetConfigError && !(e instanceof NoNetworkConfigError)) throw e;
        this.state.storeFailed(this.now(), e);
        if (msg(e) !== lastErr) this.log("warn", "config_unavailable", { error: msg(e) });
        lastErr = msg(e);
        await sleep(1000, this.stop);
      }
    }
    return null;
  }

  /** The address families the config asks for must be ones this node and twill can serve. */
  private checkFamilies(cfg: NetConfig): CIDR {
    if (cfg.backendDefaulted) {
      this.log("info", "backend_defaulted", {
        type: cfg.backend.type,
        reason: "no Backend in net-conf",
      });
    }
    if (!cfg.enableIPv4 || !cfg.network) {
      throw new Error("IPv6-only networks are not supported by twill's backends yet; enable IPv4");
    }
    if (cfg.enableIPv6 && !this.iface.address6) {
      throw new Error(
        `IPv6 is enabled in the network config but ${this.iface.name} has no global IPv6 ` +
          "address; give it one or pick another --iface",
      );
    }
    return cfg.network;
  }

  private async startBackend(cfg: NetConfig, network: CIDR): Promise<Backend> {
    const backend = await initBackend(cfg.backend, {
      iface: this.iface,
      publicIP: this.publicIP,
      network,
      network6: cfg.enableIPv6 ? cfg.ipv6Network : null,
      dataDir: this.opts.dataDir,
      log: this.log,
    });
    this.log("info", "backend_chosen", {
      type: backend.type,
      ...backend.logFields(),
      mtu: backend.mtu,
    });
    return backend;
  }

  /** Says so when leases in the store were written by another backend type (best effort). */
  private async reportBackendSwitch(type: string): Promise<void> {
    try {
      const { leases } = await this.manager.listLeases();
      const text = backendSwitchMessage(backendSwitches(leases, type, this.publicIP), type);
      if (text) this.log("warn", "backend_type_mismatch", { message: text });
    } catch { /* the lease loop reports store trouble */ }
  }

  /** The first lease: retried while the store fails; no free subnet is fatal. */
  private async acquireLease(cfg: NetConfig, backend: Backend): Promise<Lease | null> {
    const previous = await readPreviousSubnets(this.opts.subnetFile);
    while (!this.stop.aborted) {
      try {
        const own = await this.manager.acquire(cfg, backend.leaseAttrs(), previous);
        this.state.storeOk(this.now());
        return own;
      } catch (e) {
        if (e instanceof SubnetUnavailableError) throw e;
        this.state.storeFailed(this.now(), e);
        this.log("warn", "lease_acquire_failed", { error: msg(e) });
        await sleep(1000, this.stop);
      }
    }
    return null;
  }

  /** Our lease is (again) `own`: the backend, the watcher and the figures follow it. */
  private leaseTaken(own: Lease): void {
    this.r.own = own;
    this.r.watcher.own = own;
    this.r.backend.setOwnLease(own);
    this.state.leaseHeld = true;
    this.state.subnet = describeLease(own);
    this.state.leaseExpiresAt = own.expiresAt;
  }

  private async listWithRetry(): Promise<{ leases: Lease[]; revision: bigint }> {
    for (;;) {
      try {
        const r = await this.manager.listLeases();
        this.state.storeOk(this.now());
        return r;
      } catch (e) {
        this.state.storeFailed(this.now(), e);
        this.log("warn", "lease_list_failed", { error: msg(e) });
        if (this.stop.aborted) throw e;
        await sleep(1000, this.stop);
      }
    }
  }

  private kick(eventAt?: number): void {
    this.reconcileWanted = true;
    if (eventAt !== undefined) this.pendingSince.push(eventAt);
    this.wake?.();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.lock.then(fn, fn);
    this.lock = p.catch(() => {});
    return p;
  }

  /** One batch of peer events straight to the kernel; a failure falls back to a reconcile. */
  private async applyBatch(evs: PeerEvent[], at: number, got: BatchOrigin): Promise<void> {
    if (!evs.length) return;
    try {
      let t0 = 0;
      const errors = await this.exclusive(() => {
        t0 = performance.now();
        return this.r.backend.applyEvents(evs);
      });
      const t1 = performance.now();
      this.state.lastEventToProgrammedSeconds = (t1 - at) / 1000;
      LEASE_TO_KERNEL.observe((t1 - at) / 1000);
      this.log("info", "peers_programmed", {
        events: evs.length,
        // watch responses (or listings) in this batch, first to last decoded
        responses: got.responses,
        span_ms: +got.span.toFixed(1),
        // from the first event's watch response being decoded to the kernel batch starting
        // (batching and the lock), then the batch; received_at is wall-clock ms, so a
        // benchmark can line it up with its own timeline
        wait_ms: +(t0 - at).toFixed(1),
        apply_ms: +(t1 - t0).toFixed(1),
        since_event_ms: +(t1 - at).toFixed(1),
        received_at: +(performance.timeOrigin + at).toFixed(1),
      });
      this.state.peersProgrammed = this.r.watcher.peers.size;
      if (errors) {
        this.log("warn", "peer_apply_partial", { errors, fallback: "reconcile" });
        this.kick(at);
      }
    } catch (e) {
      this.log("warn", "peer_apply_failed", { error: msg(e), fallback: "reconcile" });
      this.kick(at);
    }
  }

  /**
   * A line per peer for a few changes; a burst (a backlog, a bulk write, a re-list) gets one
   * summary line instead: a thousand synchronous writes to stderr cost more than decoding the
   * thousand events did.
   */
  private logPeers(evs: PeerEvent[]): void {
    for (const ev of evs) LEASE_EVENTS.inc({ type: ev.type });
    if (evs.length <= PEER_LOG_LINES) {
      for (const ev of evs) {
        this.log("info", ev.type === "added" ? "peer_added" : "peer_removed", {
          subnet: describeLease(ev.lease),
          public_ip: ev.lease.attrs.publicIP,
        });
      }
      return;
    }
    const added = evs.filter((e) => e.type === "added").length;
    this.log("info", "peers_changed", {
      added,
      removed: evs.length - added,
      first: describeLease(evs[0].lease),
      last: describeLease(evs[evs.length - 1].lease),
    });
  }

  private async writeEnv(): Promise<void> {
    const { cfg, own, backend } = this.r;
    const text = renderSubnetEnv(cfg, own.subnet, own.ipv6Subnet, backend.mtu, this.opts.ipMasq);
    await writeSubnetEnv(this.opts.subnetFile, text);
    this.state.subnetEnvWritten = true;
    this.log("info", "subnet_env_written", {
      path: this.opts.subnetFile,
      subnet: this.state.subnet,
    });
  }

  /** The IPv6 network and our IPv6 subnet when masquerade covers IPv6 too. */
  private masq6(): { network: CIDR; subnet: CIDR } | null {
    const { cfg, own } = this.r;
    if (!cfg.enableIPv6 || !cfg.ipv6Network || !own.ipv6Subnet) return null;
    return { network: cfg.ipv6Network, subnet: own.ipv6Subnet };
  }

  private async applyMasq(): Promise<void> {
    if (!this.opts.ipMasq) return;
    const { network, own } = this.r;
    let rules = renderMasqRuleset(formatCIDR(network), formatCIDR(own.subnet!));
    const v6 = this.masq6();
    if (v6) rules += renderMasqRuleset6(formatCIDR(v6.network), formatCIDR(v6.subnet));
    await applyRuleset(rules);
    this.log("info", "masquerade_applied", {
      network: formatCIDR(network),
      subnet: this.state.subnet,
    });
  }

  /** Periodic repair of the masquerade tables: a flushed or deleted one (either family). */
  private async repairMasq(): Promise<void> {
    const intact = (await ruleCount("ip")) === MASQ_RULES &&
      (!this.masq6() || (await ruleCount("ip6")) === MASQ_RULES);
    if (intact) return;
    await this.applyMasq();
    this.state.reconcileRepairs++;
    this.log("info", "reconcile_repaired", { masquerade: "reapplied" });
  }

  /** Reconcile loop: a pass every interval, or sooner when kicked. */
  private async reconcileLoop(): Promise<void> {
    let last = this.now();
    while (!this.stop.aborted) {
      if (!this.reconcileWanted) await this.sleepUntilKicked(last + this.interval);
      if (this.stop.aborted) return;
      const periodic = !this.reconcileWanted;
      await this.reconcileOnce(periodic ? "periodic" : "event");
      if (periodic) last = this.now();
    }
  }

  private sleepUntilKicked(until: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake = null;
        this.stop.removeEventListener("abort", done);
        resolve();
      };
      const t = setTimeout(done, Math.max(0, until - this.now()));
      this.wake = done;
      this.stop.addEventListener("abort", done, { once: true });
    });
  }

  private async reconcileOnce(why: string): Promise<void> {
    const t0 = performance.now();
    const waiting = this.pendingSince.splice(0);
    this.reconcileWanted = false;
    const { backend, watcher } = this.r;
    try {
      const r = await this.exclusive(() => backend.reconcile([...watcher.peers.values()]));
      const secs = (performance.now() - t0) / 1000;
      const st = this.state;
      st.reconcileCount++;
      st.lastReconcileSeconds = secs;
      st.reconcileSecondsSum += secs;
      RECONCILE_DURATION.observe(secs);
      st.peersProgrammed = r.peersProgrammed;
      st.backendProgrammed = true;
      if (waiting.length) {
        st.lastEventToProgrammedSeconds = (performance.now() - Math.min(...waiting)) / 1000;
        LEASE_TO_KERNEL.observe(st.lastEventToProgrammedSeconds);
      }
      if (r.errors) {
        st.reconcileErrors++;
        this.log("warn", "reconcile_partial", { why, errors: r.errors });
      }
      this.logReconciled(why, r);
      if (this.opts.ipMasq && why === "periodic" && st.subnetEnvWritten) await this.repairMasq();
    } catch (e) {
      this.state.reconcileErrors++;
      this.log("error", "reconcile_failed", { why, error: msg(e) });
    } finally {
      this.state.lastReconcileAt = this.now();
    }
  }

  private logReconciled(why: string, r: Awaited<ReturnType<Backend["reconcile"]>>): void {
    if (why === "periodic" && (r.added || r.removed || r.deviceChanged)) {
      this.state.reconcileRepairs += r.added + r.removed + (r.deviceChanged ? 1 : 0);
      this.log("info", "reconcile_repaired", {
        added: r.added,
        removed: r.removed,
        device: r.deviceRecreated ? "recreated" : r.deviceChanged ? "adjusted" : "ok",
        device_reason: r.deviceReason || undefined,
      });
    } else if (r.deviceChanged) {
      this.log("info", "device_ready", {
        recreated: r.deviceRecreated,
        reason: r.deviceReason || undefined,
      });
    }
  }

  /** Re-acquire: one at a time, however many loops noticed the loss. */
  private async reacquire(reason: string): Promise<void> {
    if (this.reacquiring) return;
    this.reacquiring = true;
    try {
      await this.reacquireLoop(reason);
    } finally {
      this.reacquiring = false;
    }
  }

  /** Asks for the same subnets again until the store grants a lease (maybe another subnet). */
  private async reacquireLoop(reason: string): Promise<void> {
    this.log("warn", "lease_lost", { subnet: this.state.subnet, reason });
    this.state.leaseHeld = false;
    while (!this.stop.aborted) {
      try {
        const old = this.r.own;
        const next = await this.manager.acquire(this.r.cfg, this.r.backend.leaseAttrs(), {
          subnet: old.subnet,
          ipv6Subnet: old.ipv6Subnet,
        });
        this.r.watcher.peers.delete(subnetKeyName(next.subnet, next.ipv6Subnet));
        this.leaseTaken(next);
        this.state.leaseReacquired++;
        this.state.storeOk(this.now());
        if (!sameSubnets(next, old)) {
          await this.writeEnv();
          await this.applyMasq();
        }
        this.kick();
        return;
      } catch (e) {
        this.state.storeFailed(this.now(), e);
        this.log("error", "lease_reacquire_failed", { error: msg(e) });
        await sleep(5000, this.stop);
      }
    }
  }

  /**
   * Every 15 s: list the leases again. It probes the store for /healthz (a silently dead watch
   * raises no error) and repairs any drift between the watch and the store. A listing older
   * than what the watch has already applied is skipped, so it never undoes a newer event.
   */
  private async resyncLoop(): Promise<void> {
    while (!this.stop.aborted) {
      await sleep(RESYNC_MS, this.stop);
      if (this.stop.aborted) return;
      try {
        await this.resyncOnce();
      } catch (e) {
        this.state.storeFailed(this.now(), e);
        this.log("warn", "store_probe_failed", { error: msg(e) });
      }
    }
  }

  private async resyncOnce(): Promise<void> {
    const at = performance.now();
    const seenBefore = this.state.watchRevision;
    const r = await this.manager.listLeases();
    this.state.storeOk(this.now());
    if (r.revision < this.state.watchRevision || this.state.watchRevision !== seenBefore) return;
    const own = this.r.own;
    if (this.state.leaseHeld && !this.reacquiring && !r.leases.some((l) => sameSubnets(l, own))) {
      void this.reacquire("our lease is no longer in the store");
      return;
    }
    const diff = this.r.watcher.reset(r.leases);
    if (diff.length) {
      this.log("warn", "resync_found_drift", { changes: diff.length, revision: r.revision });
      this.logPeers(diff);
      this.batcher.queue(diff, at);
    }
  }

  /** Watch loop: peer lease events from `from` on; resumes after errors, re-lists on compaction. */
  private async watchLoop(from: bigint): Promise<void> {
    const prefix = subnetsPrefix(this.opts.prefix);
    while (!this.stop.aborted) {
      try {
        for await (const item of this.reg.watch(prefix, from, this.stop)) {
          this.state.storeOk(this.now());
          if (item.kind === "compacted") {
            from = await this.relistAfterCompaction(item);
            break;
          }
          this.watchResponse(item.events, performance.now());
          this.state.watchRevision = item.revision;
          from = item.revision + 1n;
        }
      } catch (e) {
        if (this.stop.aborted) return;
        this.state.storeFailed(this.now(), e);
        this.log("warn", "watch_failed", { error: msg(e), resume_from: from });
        await sleep(1000, this.stop);
      }
    }
  }

  /** The watch's start was compacted away: list again, apply the difference, resume after it. */
  private async relistAfterCompaction(
    item: Extract<WatchItem, { kind: "compacted" }>,
  ): Promise<bigint> {
    this.log("warn", "watch_compacted", { compact_revision: item.compactRevision });
    const at = performance.now();
    const listed = await this.listWithRetry();
    const diff = this.r.watcher.reset(listed.leases);
    this.logPeers(diff);
    this.batcher.queue(diff, at);
    this.kick(at);
    return listed.revision + 1n;
  }

  /** One watch response: peer changes to the batcher; a change to our own key re-acquires. */
  private watchResponse(events: RegistryEvent[], at: number): void {
    const evs: PeerEvent[] = [];
    const own = this.r.own;
    for (const e of events) {
      const key = e.type === "put" ? e.kv.key : e.key;
      const parsed = parseSubnetKey(key);
      if (!parsed) continue;
      if (sameSubnets(own, { ...own, ...parsed })) {
        if (e.type === "delete") void this.reacquire("our lease key was deleted or expired");
        else if (!this.ourValue(e.kv.value)) void this.reacquire("our lease key was overwritten");
        continue;
      }
      const lease = e.type === "put"
        ? leaseFromKv(e.kv)
        : leaseFromKv({ key, value: "{}", modRevision: e.modRevision, lease: 0n });
      if (!lease) continue;
      const ev = this.r.watcher.update(e.type, lease);
      if (ev) evs.push(ev);
    }
    this.logPeers(evs);
    this.batcher.queue(evs, at);
  }

  private ourValue(v: string): boolean {
    try {
      return decodeLeaseAttrs(v).publicIP === this.publicIP;
    } catch {
      return false;
    }
  }

  /** Renew loop: renews our lease ahead of its expiry; a fenced-out renewal re-acquires. */
  private async renewLoop(): Promise<void> {
    const o = this.opts;
    while (!this.stop.aborted) {
      const delay = renewDelayMs(
        this.r.own,
        this.now(),
        o.subnetLeaseRenewMarginMinutes,
        o.subnetLeaseTtlSeconds,
      );
      if (delay === null) {
        await sleep(60_000, this.stop);
        continue;
      }
      await sleep(delay, this.stop);
      if (this.stop.aborted) return;
      if (!this.state.leaseHeld) continue;
      await this.renewOnce();
    }
  }

  private async renewOnce(): Promise<void> {
    try {
      const renewed = await this.manager.renew(this.r.own);
      this.r.own = renewed;
      this.r.watcher.own = renewed;
      this.state.leaseRenewals++;
      this.state.leaseExpiresAt = renewed.expiresAt;
      this.state.storeOk(this.now());
      this.log("info", "lease_renewed", {
        subnet: this.state.subnet,
        expires: new Date(renewed.expiresAt ?? 0).toISOString(),
      });
    } catch (e) {
      if (e instanceof LeaseLostError) {
        await this.reacquire(e.message);
        return;
      }
      this.state.storeFailed(this.now(), e);
      this.log("warn", "lease_renew_failed", { error: msg(e), retry_in: "60s" });
      await sleep(60_000, this.stop);
    }
  }
}
