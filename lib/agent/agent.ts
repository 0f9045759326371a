// The network agent's runtime over a SubnetRegistry: lease, backend, subnet.env, masquerade,
// lease watch, renewal and a periodic reconcile. Data flows one way: store → lease watcher →
// backend → kernel. Nothing is torn down when `signal` aborts.
import { formatCIDR } from "../net/cidr.ts";
import { findInterface } from "../net/iface.ts";
import {
  applyRuleset,
  MASQ_RULES,
  renderMasqRuleset,
  renderMasqRuleset6,
  ruleCount,
} from "../net/nftables.ts";
import type { Backend } from "../backend/backend.ts";
import { HostGwBackend } from "../backend/hostgw.ts";
import { VxlanBackend } from "../backend/vxlan.ts";
import { randomVtepMac } from "../backend/vxlan_device.ts";
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
import { leaseFromKv, LeaseLostError, LeaseManager, renewDelayMs } from "../subnet/manager.ts";
import type { SubnetRegistry } from "../subnet/registry.ts";
import { readPreviousSubnets, renderSubnetEnv, writeSubnetEnv } from "../subnet/subnet_env.ts";
import { LeaseWatcher, mergePeerEvent, type PeerEvent } from "../subnet/watcher.ts";
import { healthHandler, serveHealth } from "./health.ts";
import { type Logger, makeLogger } from "../log.ts";
import type { NetworkAgentOptions } from "./options.ts";
import { AgentState } from "./state.ts";

const RESYNC_MS = 15_000;
/** Up to this many peer changes at once are logged one line each, more as one summary. */
const PEER_LOG_LINES = 16;
/** A batch this big is a burst: wait for the rest of it until the watch is quiet this long. */
const BURST_EVENTS = 64;
const BURST_QUIET_MS = 2;
const BURST_MAX_WAIT_MS = 30;

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

/** Loads the VTEP MAC kept in the data dir, or chooses one and keeps it. */
export async function loadVtepMac(dataDir: string, file = "vtep-mac"): Promise<string> {
  const path = `${dataDir}/${file}`;
  try {
    const text = (await Deno.readTextFile(path)).trim().toLowerCase();
    if (/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(text)) return text;
  } catch { /* first start */ }
  const mac = randomVtepMac(crypto.getRandomValues(new Uint8Array(6)));
  await Deno.mkdir(dataDir, { recursive: true });
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, mac + "\n");
  await Deno.rename(tmp, path);
  return mac;
}

export async function runAgentOnRegistry(
  opts: NetworkAgentOptions,
  reg: SubnetRegistry,
  signal: AbortSignal,
  log: Logger = makeLogger({ context: { node: opts.nodeName } }),
  state = new AgentState(),
): Promise<void> {
  const now = () => Date.now();
  const interval = opts.reconcileIntervalMs ?? 5000;

  const iface = await findInterface(opts.iface);
  const publicIP = opts.publicIp || iface.address;
  log("info", "interface_chosen", {
    iface: iface.name,
    address: iface.address,
    address6: iface.address6 ?? undefined,
    mtu: iface.mtu,
    public_ip: publicIP,
    how: opts.iface.length ? "--iface" : "default route",
  });

  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  const server = serveHealth(
    opts.healthzIp,
    opts.healthzPort,
    healthHandler(state, {
      now,
      storeThresholdMs: 30_000,
      reconcileStuckMs: Math.max(3 * interval, 30_000),
      storeStatus: opts.storeStatus,
    }),
    stop.signal,
  );

  const main = async () => {
    const manager = new LeaseManager(reg, {
      prefix: opts.prefix,
      ttlSeconds: opts.subnetLeaseTtlSeconds,
      now,
      randomInt: (n) => Math.floor(Math.random() * n),
      log,
    });

    // Config: wait while the store is unreachable or the key absent; a bad config is fatal.
    let cfg: NetConfig | null = null;
    let lastErr = "";
    while (!cfg) {
      if (signal.aborted) return;
      try {
        cfg = await manager.getNetworkConfig();
        state.storeOk(now());
      } catch (e) {
        if (e instanceof NetConfigError && !/^no network config/.test(e.message)) throw e;
        state.storeFailed(now(), e);
        if (msg(e) !== lastErr) log("warn", "config_unavailable", { error: msg(e) });
        lastErr = msg(e);
        await sleep(1000, signal);
      }
    }
    if (cfg.backendDefaulted) {
      log("info", "backend_defaulted", { type: "vxlan", reason: "no Backend in net-conf" });
    }
    if (!cfg.enableIPv4 || !cfg.network) {
      throw new Error("IPv6-only networks are not supported by twill's backends yet; enable IPv4");
    }
    const network = cfg.network;
    if (cfg.enableIPv6 && !iface.address6) {
      throw new Error(
        `IPv6 is enabled in the network config but ${iface.name} has no global IPv6 address; ` +
          "give it one or pick another --iface",
      );
    }
    let backend: Backend;
    if (cfg.backend.type === "vxlan") {
      const mac = await loadVtepMac(opts.dataDir);
      const v6 = cfg.enableIPv6 && cfg.ipv6Network
        ? {
          publicIPv6: iface.address6!,
          prefixLen: iface.prefixLen6,
          mac: await loadVtepMac(opts.dataDir, "vtep-mac-v6"),
          network: cfg.ipv6Network,
        }
        : null;
      backend = new VxlanBackend(cfg.backend, iface, publicIP, mac, network, v6);
      log("info", "backend_chosen", {
        type: "vxlan",
        vni: cfg.backend.vni,
        vtep_mac: mac,
        mtu: backend.mtu,
      });
    } else {
      backend = new HostGwBackend(
        iface,
        publicIP,
        network,
        cfg.enableIPv6 ? cfg.ipv6Network : null,
      );
      log("info", "backend_chosen", { type: "host-gw", mtu: backend.mtu });
    }

    // Lease.
    const previous = await readPreviousSubnets(opts.subnetFile);
    let own: Lease | null = null;
    while (!own) {
      if (signal.aborted) return;
      try {
        own = await manager.acquire(cfg, backend.leaseAttrs(), previous);
        state.storeOk(now());
      } catch (e) {
        if (/^out of subnets|^Max retries/.test(msg(e))) throw e;
        state.storeFailed(now(), e);
        log("warn", "lease_acquire_failed", { error: msg(e) });
        await sleep(1000, signal);
      }
    }
    backend.setOwnLease(own);
    state.leaseHeld = true;
    state.subnet = describeLease(own);
    state.leaseExpiresAt = own.expiresAt;
    const watcher = new LeaseWatcher(own);

    // Peers: list once, program, then watch from the listed revision.
    let listed = await listWithRetry();
    logPeers(watcher.reset(listed.leases));

    let reconcileWanted = true;
    let wake: (() => void) | null = null;
    const pendingSince: number[] = [];
    const kick = (eventAt?: number) => {
      reconcileWanted = true;
      if (eventAt !== undefined) pendingSince.push(eventAt);
      wake?.();
    };
    // Kernel changes never interleave: watch events and reconcile passes take turns.
    let lock: Promise<unknown> = Promise.resolve();
    const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
      const p = lock.then(fn, fn);
      lock = p.catch(() => {});
      return p;
    };

    await reconcileOnce("startup");
    await writeEnv();
    await applyMasq();
    log("info", "agent_ready", { subnet: state.subnet, peers: watcher.peers.size });

    async function listWithRetry(): Promise<{ leases: Lease[]; revision: bigint }> {
      for (;;) {
        try {
          const r = await manager.listLeases();
          state.storeOk(now());
          return r;
        } catch (e) {
          state.storeFailed(now(), e);
          log("warn", "lease_list_failed", { error: msg(e) });
          if (signal.aborted) throw e;
          await sleep(1000, signal);
        }
      }
    }

    /**
     * Watch events go straight to the kernel; while one batch is being applied the next ones
     * accumulate (one event per peer) and go in the following batch. A failure falls back to a
     * full reconcile.
     */
    const pendingEvents = new Map<string, PeerEvent>();
    let pendingAt: number | null = null;
    let pendingLastAt = 0;
    let pendingResponses = 0;
    let draining: Promise<void> | null = null;
    function queueEvents(evs: PeerEvent[], at: number) {
      if (!evs.length) return;
      for (const e of evs) mergePeerEvent(pendingEvents, e);
      pendingAt ??= at;
      pendingLastAt = at;
      pendingResponses++;
      draining ??= (async () => {
        // One event-loop turn first, so watch responses already buffered join this batch. What
        // arrives while a batch is being applied is the next batch. When a batch costs child
        // processes (the ip/bridge fallback), a big batch means a burst (a backlog after a
        // pause, a bulk write) whose responses follow each other within a millisecond or two:
        // wait while they keep coming (at most 30 ms), as one spawn beats two, the second of
        // which waits for the first. Over rtnetlink a batch costs about its entries alone, so
        // applying the first responses while the next arrive is faster (1,000 peers: 43 vs
        // 51-54 ms).
        await new Promise((r) => setTimeout(r, 0));
        if (backend.batchesSpawn() && pendingEvents.size >= BURST_EVENTS) {
          const t0 = performance.now();
          let seen = pendingResponses;
          while (performance.now() - t0 < BURST_MAX_WAIT_MS) {
            await new Promise((r) => setTimeout(r, BURST_QUIET_MS));
            if (pendingResponses === seen) break;
            seen = pendingResponses;
          }
        }
        while (pendingEvents.size) {
          const batch = [...pendingEvents.values()];
          const since = pendingAt!;
          const span = pendingLastAt - since;
          const responses = pendingResponses;
          pendingEvents.clear();
          pendingAt = null;
          pendingResponses = 0;
          await fastApply(batch, since, { responses, span });
        }
        draining = null;
      })();
    }

    async function fastApply(
      evs: PeerEvent[],
      at: number,
      got: { responses: number; span: number } = { responses: 1, span: 0 },
    ) {
      if (!evs.length) return;
      try {
        let t0 = 0;
        const errors = await exclusive(() => {
          t0 = performance.now();
          return backend.applyEvents(evs);
        });
        const t1 = performance.now();
        state.lastEventToProgrammedSeconds = (t1 - at) / 1000;
        log("info", "peers_programmed", {
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
        state.peersProgrammed = watcher.peers.size;
        if (errors) {
          log("warn", "peer_apply_partial", { errors, fallback: "reconcile" });
          kick(at);
        }
      } catch (e) {
        log("warn", "peer_apply_failed", { error: msg(e), fallback: "reconcile" });
        kick(at);
      }
    }

    /**
     * A line per peer for a few changes; a burst (a backlog, a bulk write, a re-list) gets one
     * summary line instead: a thousand synchronous writes to stderr cost more than decoding the
     * thousand events did.
     */
    function logPeers(evs: PeerEvent[]) {
      if (evs.length <= PEER_LOG_LINES) {
        for (const ev of evs) {
          log("info", ev.type === "added" ? "peer_added" : "peer_removed", {
            subnet: describeLease(ev.lease),
            public_ip: ev.lease.attrs.publicIP,
          });
        }
        return;
      }
      const added = evs.filter((e) => e.type === "added").length;
      log("info", "peers_changed", {
        added,
        removed: evs.length - added,
        first: describeLease(evs[0].lease),
        last: describeLease(evs[evs.length - 1].lease),
      });
    }

    async function writeEnv() {
      const text = renderSubnetEnv(cfg!, own!.subnet, own!.ipv6Subnet, backend.mtu, opts.ipMasq);
      await writeSubnetEnv(opts.subnetFile, text);
      state.subnetEnvWritten = true;
      log("info", "subnet_env_written", { path: opts.subnetFile, subnet: state.subnet });
    }

    async function applyMasq() {
      if (!opts.ipMasq) return;
      let rules = renderMasqRuleset(formatCIDR(network), formatCIDR(own!.subnet!));
      if (cfg!.enableIPv6 && cfg!.ipv6Network && own!.ipv6Subnet) {
        rules += renderMasqRuleset6(formatCIDR(cfg!.ipv6Network), formatCIDR(own!.ipv6Subnet));
      }
      await applyRuleset(rules);
      log("info", "masquerade_applied", { network: formatCIDR(network), subnet: state.subnet });
    }

    async function reconcileOnce(why: string) {
      const t0 = performance.now();
      const waiting = pendingSince.splice(0);
      reconcileWanted = false;
      try {
        const r = await exclusive(() => backend.reconcile([...watcher.peers.values()]));
        const secs = (performance.now() - t0) / 1000;
        state.reconcileCount++;
        state.lastReconcileSeconds = secs;
        state.reconcileSecondsSum += secs;
        state.peersProgrammed = r.peersProgrammed;
        state.backendProgrammed = true;
        if (waiting.length) {
          state.lastEventToProgrammedSeconds = (performance.now() - Math.min(...waiting)) / 1000;
        }
        if (r.errors) {
          state.reconcileErrors++;
          log("warn", "reconcile_partial", { why, errors: r.errors });
        }
        if (why === "periodic" && (r.added || r.removed || r.deviceChanged)) {
          state.reconcileRepairs += r.added + r.removed + (r.deviceChanged ? 1 : 0);
          log("info", "reconcile_repaired", {
            added: r.added,
            removed: r.removed,
            device: r.deviceRecreated ? "recreated" : r.deviceChanged ? "adjusted" : "ok",
            device_reason: r.deviceReason || undefined,
          });
        } else if (r.deviceChanged) {
          log("info", "device_ready", {
            recreated: r.deviceRecreated,
            reason: r.deviceReason || undefined,
          });
        }
        if (opts.ipMasq && why === "periodic" && state.subnetEnvWritten) {
          if ((await ruleCount()) !== MASQ_RULES) {
            await applyMasq();
            state.reconcileRepairs++;
            log("info", "reconcile_repaired", { masquerade: "reapplied" });
          }
        }
      } catch (e) {
        state.reconcileErrors++;
        log("error", "reconcile_failed", { why, error: msg(e) });
      } finally {
        state.lastReconcileAt = now();
      }
    }

    let reacquiring = false;
    async function reacquire(reason: string) {
      if (reacquiring) return;
      reacquiring = true;
      try {
        await reacquireLoop(reason);
      } finally {
        reacquiring = false;
      }
    }

    async function reacquireLoop(reason: string) {
      log("warn", "lease_lost", { subnet: state.subnet, reason });
      state.leaseHeld = false;
      for (;;) {
        if (stop.signal.aborted) return;
        try {
          const next = await manager.acquire(cfg!, backend.leaseAttrs(), {
            subnet: own!.subnet,
            ipv6Subnet: own!.ipv6Subnet,
          });
          const changed = !sameSubnets(next, own!);
          own = next;
          watcher.own = next;
          watcher.peers.delete(subnetKeyName(next.subnet, next.ipv6Subnet));
          backend.setOwnLease(next);
          state.leaseHeld = true;
          state.leaseReacquired++;
          state.subnet = describeLease(next);
          state.leaseExpiresAt = next.expiresAt;
          state.storeOk(now());
          if (changed) {
            await writeEnv();
            await applyMasq();
          }
          kick();
          return;
        } catch (e) {
          state.storeFailed(now(), e);
          log("error", "lease_reacquire_failed", { error: msg(e) });
          await sleep(5000, stop.signal);
        }
      }
    }

    const reconcileLoop = async () => {
      let last = now();
      while (!stop.signal.aborted) {
        if (!reconcileWanted) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(done, Math.max(0, last + interval - now()));
            function done() {
              clearTimeout(t);
              wake = null;
              stop.signal.removeEventListener("abort", done);
              resolve();
            }
            wake = done;
            stop.signal.addEventListener("abort", done, { once: true });
          });
        }
        if (stop.signal.aborted) return;
        const periodic = !reconcileWanted;
        await reconcileOnce(periodic ? "periodic" : "event");
        if (periodic) last = now();
      }
    };

    // Every 15 s: list the leases again. It probes the store for /healthz (a silently dead watch
    // raises no error) and repairs any drift between the watch and the store. A listing older
    // than what the watch has already applied is skipped, so it never undoes a newer event.
    const resyncLoop = async () => {
      while (!stop.signal.aborted) {
        await sleep(RESYNC_MS, stop.signal);
        if (stop.signal.aborted) return;
        try {
          const at = performance.now();
          const seenBefore = state.watchRevision;
          const r = await manager.listLeases();
          state.storeOk(now());
          if (r.revision < state.watchRevision || state.watchRevision !== seenBefore) continue;
          if (state.leaseHeld && !reacquiring && !r.leases.some((l) => sameSubnets(l, own!))) {
            void reacquire("our lease is no longer in the store");
            continue;
          }
          const diff = watcher.reset(r.leases);
          if (diff.length) {
            log("warn", "resync_found_drift", { changes: diff.length, revision: r.revision });
            logPeers(diff);
            queueEvents(diff, at);
          }
        } catch (e) {
          state.storeFailed(now(), e);
          log("warn", "store_probe_failed", { error: msg(e) });
        }
      }
    };

    const watchLoop = async () => {
      let from = listed.revision + 1n;
      while (!stop.signal.aborted) {
        try {
          for await (const item of reg.watch(subnetsPrefix(opts.prefix), from, stop.signal)) {
            state.storeOk(now());
            if (item.kind === "compacted") {
              log("warn", "watch_compacted", { compact_revision: item.compactRevision });
              const at = performance.now();
              listed = await listWithRetry();
              const diff = watcher.reset(listed.leases);
              logPeers(diff);
              from = listed.revision + 1n;
              queueEvents(diff, at);
              kick(at);
              break;
            }
            const at = performance.now();
            const evs: PeerEvent[] = [];
            for (const e of item.events) {
              const key = e.type === "put" ? e.kv.key : e.key;
              const parsed = parseSubnetKey(key);
              if (!parsed) continue;
              const isOwn = own && sameSubnets(own, { ...own, ...parsed });
              if (isOwn) {
                if (e.type === "delete") void reacquire("our lease key was deleted or expired");
                else if (!ourValue(e.kv.value)) {
                  void reacquire("our lease key was overwritten");
                }
                continue;
              }
              const lease = e.type === "put"
                ? leaseFromKv(e.kv)
                : leaseFromKv({ key, value: "{}", modRevision: e.modRevision, lease: 0n });
              if (!lease) continue;
              const ev = watcher.update(e.type, lease);
              if (ev) evs.push(ev);
            }
            state.watchRevision = item.revision;
            from = item.revision + 1n;
            logPeers(evs);
            queueEvents(evs, at);
          }
        } catch (e) {
          if (stop.signal.aborted) return;
          state.storeFailed(now(), e);
          log("warn", "watch_failed", { error: msg(e), resume_from: from });
          await sleep(1000, stop.signal);
        }
      }
    };

    function ourValue(v: string): boolean {
      try {
        return decodeLeaseAttrs(v).publicIP === publicIP;
      } catch {
        return false;
      }
    }

    const renewLoop = async () => {
      while (!stop.signal.aborted) {
        const delay = renewDelayMs(
          own!,
          now(),
          opts.subnetLeaseRenewMarginMinutes,
          opts.subnetLeaseTtlSeconds,
        );
        if (delay === null) {
          await sleep(60_000, stop.signal);
          continue;
        }
        await sleep(delay, stop.signal);
        if (stop.signal.aborted) return;
        if (!state.leaseHeld) continue;
        try {
          const renewed = await manager.renew(own!);
          own = renewed;
          watcher.own = renewed;
          state.leaseRenewals++;
          state.leaseExpiresAt = renewed.expiresAt;
          state.storeOk(now());
          log("info", "lease_renewed", {
            subnet: state.subnet,
            expires: new Date(renewed.expiresAt ?? 0).toISOString(),
          });
        } catch (e) {
          if (e instanceof LeaseLostError) {
            await reacquire(e.message);
            continue;
          }
          state.storeFailed(now(), e);
          log("warn", "lease_renew_failed", { error: msg(e), retry_in: "60s" });
          await sleep(60_000, stop.signal);
        }
      }
    };

    await Promise.all([reconcileLoop(), watchLoop(), renewLoop(), resyncLoop()]);
    log("info", "agent_stopped", { subnet: state.subnet });
  };

  try {
    await main();
  } finally {
    signal.removeEventListener("abort", onAbort);
    stop.abort();
    await server?.finished;
  }
}
