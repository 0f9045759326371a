// The CNI commands. Each takes the parsed environment and config and either returns what goes on
// stdout or throws CniError. Kernel work goes through kernel.ts, addresses through ipam/.
import { type CIDR, formatCIDR, formatIP, ipEqual } from "../net/cidr.ts";
import { NetlinkSocket } from "../net/netlink/socket.ts";
import { Netns, NetnsNotFoundError } from "../net/netns.ts";
import type { Env, NetConf } from "./config.ts";
import { CniError, ERR } from "./errors.ts";
import { allocate, collectGarbage, releaseAll } from "./ipam/ipam.ts";
import { ReservationStore } from "./ipam/store.ts";
import * as kernel from "./kernel.ts";
import { hostVethName, makePlan, type Plan } from "./plan.ts";
import { parseResult, type Result } from "./result.ts";
import { readSubnetEnv, type SubnetEnv, waitSubnetEnv } from "../subnet/subnet_env.ts";
import { LATEST, SUPPORTED_VERSIONS } from "./versions.ts";

function storeFor(conf: NetConf): ReservationStore {
  return new ReservationStore(`${conf.ipamDataDir}/${conf.name}`);
}

function openPodNetns(path: string): Netns {
  try {
    return Netns.open(path);
  } catch (e) {
    if (e instanceof NetnsNotFoundError) {
      throw new CniError(
        ERR.unknownContainer,
        `CNI_NETNS=${path} does not exist: the container is gone`,
      );
    }
    throw new CniError(ERR.invalidEnv, `cannot open CNI_NETNS=${path}: ${(e as Error).message}`);
  }
}

async function subnetEnvForAdd(conf: NetConf): Promise<SubnetEnv> {
  const got = await waitSubnetEnv(conf.subnetFile, conf.subnetFileWaitMs);
  if ("env" in got) return got.env;
  throw new CniError(
    ERR.tryAgainLater,
    `this node's pod subnet is not known yet (${got.problem}) after waiting ` +
      `${conf.subnetFileWaitMs / 1000}s; check that the twill agent runs on this node and has ` +
      `written ${conf.subnetFile}`,
  );
}

export async function cmdAdd(env: Env, conf: NetConf): Promise<Result> {
  const subnetEnv = await subnetEnvForAdd(conf);
  const plan = makePlan(conf, subnetEnv);
  if (plan.ranges.length === 0) {
    throw new CniError(ERR.invalidConfig, `${conf.subnetFile} gives this node no subnet`);
  }
  const pod = openPodNetns(env.netns);
  const store = storeFor(conf);
  let unlock: (() => void) | undefined;
  let node: NetlinkSocket | undefined;
  try {
    unlock = store.lock();
    const { ips, fresh } = allocate(store, plan.ranges, env.containerId, env.ifname);
    let hostName = "";
    let bridgeCreated: kernel.Wiring["bridge"] | undefined;
    try {
      node = NetlinkSocket.open();
      // A repeated ADD reuses (and replaces) the host end it made before; a new attachment takes
      // the first free name, so a hash collision can never touch another pod's veth.
      const before = fresh.length < ips.length ? readScratch(conf, env.containerId) : null;
      hostName = before?.ifname === env.ifname
        ? before.hostVeth
        : kernel.freeHostName(node, env.containerId, env.ifname);
      const { bridge, created } = kernel.ensureBridge(node, plan);
      if (created) bridgeCreated = bridge;
      const addresses: CIDR[] = ips.map((ip, i) => ({ ip, prefix: plan.ranges[i].subnet.prefix }));
      const wiring = kernel.attach(node, pod, plan, bridge, hostName, env.ifname, addresses);
      if (plan.ipMasq) {
        const { applyMasq } = await import("./masq.ts");
        applyMasq(plan.ranges.map((r) => r.subnet), plan.networks);
      }
      const result = buildResult(plan, conf, env, wiring, addresses);
      saveScratch(conf, env, plan, hostName);
      return result;
    } catch (e) {
      for (const ip of fresh) store.release(ip);
      if (node) {
        try {
          if (hostName) kernel.deleteHostVeth(node, hostName);
          if (bridgeCreated) kernel.removeBridgeIfUnused(node, bridgeCreated);
        } catch (undo) {
          console.error(`twill: cleanup after a failed ADD was incomplete: ${undo}`);
        }
      }
      throw e;
    }
  } finally {
    node?.close();
    unlock?.();
    pod.close();
  }
}

function buildResult(
  plan: Plan,
  conf: NetConf,
  env: Env,
  w: kernel.Wiring,
  addresses: CIDR[],
): Result {
  return {
    interfaces: [
      { name: w.bridge.name, mac: w.bridge.mac },
      { name: w.host.name, mac: w.host.mac },
      { name: w.pod.name, mac: w.pod.mac, sandbox: env.netns },
    ],
    ips: addresses.map((a, i) => ({ address: a, gateway: plan.ranges[i].gateway, interface: 2 })),
    routes: plan.routes.map((r) => ({ dst: r.dst, gw: r.gw })),
    dns: conf.dns,
  };
}

/**
 * Flannel keeps the delegate's config per container in dataDir for DEL. twill writes the same
 * shape (so upstream Flannel could still DEL these pods) plus what twill itself needs.
 */
function saveScratch(conf: NetConf, env: Env, plan: Plan, hostName: string): void {
  const delegate: Record<string, unknown> = {
    ...conf.delegate,
    cniVersion: conf.cniVersion,
    name: conf.name,
    type: "bridge",
    ipMasq: plan.ipMasq,
    mtu: plan.mtu,
    isGateway: plan.isGateway,
    ipam: {
      type: "host-local",
      ...(conf.ipamDataDir !== "/var/lib/cni/networks" ? { dataDir: conf.ipamDataDir } : {}),
      ranges: plan.ranges.map((r) => [{ subnet: formatCIDR(r.subnet) }]),
      // host-local's routes: the config's own, then the cluster networks (not the default
      // routes, which bridge adds for isDefaultGateway).
      routes: plan.routes.slice(0, conf.extraRoutes.length + plan.networks.length).map((r) =>
        r.gw ? { dst: formatCIDR(r.dst), gw: formatIP(r.gw) } : { dst: formatCIDR(r.dst) }
      ),
    },
    twill: { ifname: env.ifname, hostVeth: hostName, bridge: plan.bridge },
  };
  if (Object.keys(conf.runtimeConfig).length) delegate.runtimeConfig = conf.runtimeConfig;
  Deno.mkdirSync(conf.dataDir, { recursive: true, mode: 0o700 });
  const path = `${conf.dataDir}/${env.containerId}`;
  Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify(delegate), { mode: 0o600 });
  Deno.renameSync(`${path}.tmp`, path);
}

/** What an earlier ADD of this container recorded: its ifname and host veth. */
function readScratch(
  conf: NetConf,
  containerId: string,
): { ifname: string; hostVeth: string } | null {
  try {
    const t = JSON.parse(Deno.readTextFileSync(`${conf.dataDir}/${containerId}`))?.twill;
    if (typeof t?.ifname === "string" && typeof t?.hostVeth === "string") {
      return { ifname: t.ifname, hostVeth: t.hostVeth };
    }
  } catch {
    // absent or not ours (an upstream Flannel scratch file)
  }
  return null;
}

function removeScratch(conf: NetConf, containerId: string): void {
  try {
    Deno.removeSync(`${conf.dataDir}/${containerId}`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** DEL succeeds whenever the attachment is gone afterwards, however much of it existed. */
export function cmdDel(env: Env, conf: NetConf): void {
  let pod: Netns | null = null;
  if (env.netns) {
    try {
      pod = Netns.open(env.netns);
    } catch {
      pod = null; // already gone: its interfaces went with it
    }
  }
  const store = storeFor(conf);
  const unlock = store.lock();
  const node = NetlinkSocket.open();
  try {
    // The pod end goes with its namespace; the host end is removed by the name ADD recorded.
    const rec = readScratch(conf, env.containerId);
    kernel.detach(node, pod, rec?.ifname === env.ifname ? rec.hostVeth : null, env.ifname);
    releaseAll(store, env.containerId, env.ifname);
    removeScratch(conf, env.containerId);
  } finally {
    node.close();
    unlock();
    pod?.close();
  }
}

/** CHECK: the interface, its addresses and routes are still what ADD reported. */
export function cmdCheck(env: Env, conf: NetConf): void {
  if (!conf.prevResult) {
    throw new CniError(ERR.invalidConfig, `CHECK needs "prevResult" in the configuration`);
  }
  const prev = parseResult(conf.prevResult);
  let subnetEnv: SubnetEnv | null = null;
  try {
    subnetEnv = readSubnetEnv(conf.subnetFile);
  } catch {
    subnetEnv = null;
  }
  if (!subnetEnv) {
    throw new CniError(
      ERR.tryAgainLater,
      `${conf.subnetFile} is missing or invalid; check the twill agent`,
    );
  }
  const plan = makePlan(conf, subnetEnv);
  const pod = openPodNetns(env.netns);
  const node = NetlinkSocket.open();
  const problems: string[] = [];
  try {
    const sandboxIdx = prev.interfaces.findIndex((i) => i.sandbox && i.name === env.ifname);
    const hostEntry = prev.interfaces.find((i) => !i.sandbox && i.name !== plan.bridge);
    const hostName = hostEntry?.name ?? readScratch(conf, env.containerId)?.hostVeth ??
      hostVethName(env.containerId, env.ifname);
    const seen = kernel.observe(node, pod, plan.bridge, hostName, env.ifname);
    if (!seen.pod) {
      problems.push(`${env.ifname} is missing in ${env.netns}`);
    } else {
      problems.push(...podProblems(env, plan, prev, seen, sandboxIdx));
    }
    if (!seen.bridge) problems.push(`bridge ${plan.bridge} is missing`);
    if (!seen.host) problems.push(`host end ${hostName} is missing`);
    else {
      if (seen.bridge && seen.host.master !== seen.bridge.index) {
        problems.push(`${hostName} is not a port of ${plan.bridge}`);
      }
      if (seen.host.hairpin !== undefined && seen.host.hairpin !== plan.hairpin) {
        problems.push(
          `${hostName} has hairpin ${seen.host.hairpin ? "on" : "off"}, config says ${
            plan.hairpin ? "on" : "off"
          }`,
        );
      }
    }
    const reserved = storeFor(conf).list().filter((r) => r.containerId === env.containerId);
    for (const ip of prev.ips) {
      if (!reserved.some((r) => ipEqual(r.ip, ip.address.ip))) {
        problems.push(`address ${formatCIDR(ip.address)} is not reserved for this container`);
      }
    }
  } finally {
    node.close();
    pod.close();
  }
  if (problems.length) {
    throw new CniError(ERR.checkFailed, `CHECK failed: ${problems.join("; ")}`);
  }
}

/** What CHECK finds wrong inside the pod: the interface, its addresses and routes. */
function podProblems(
  env: Env,
  plan: ReturnType<typeof makePlan>,
  prev: ReturnType<typeof parseResult>,
  seen: ReturnType<typeof kernel.observe>,
  sandboxIdx: number,
): string[] {
  const pod = seen.pod!;
  const problems: string[] = [];
  if (sandboxIdx < 0) problems.push(`prevResult lists no interface ${env.ifname} in a sandbox`);
  else if (
    prev.interfaces[sandboxIdx].mac && prev.interfaces[sandboxIdx].mac !== pod.mac
  ) {
    problems.push(
      `${env.ifname} has MAC ${pod.mac}, not ${prev.interfaces[sandboxIdx].mac}`,
    );
  }
  if (pod.mtu !== plan.mtu) {
    problems.push(`${env.ifname} has MTU ${pod.mtu}, not ${plan.mtu}`);
  }
  if (!(pod.flags & 1)) problems.push(`${env.ifname} is down`);
  for (const ip of prev.ips) {
    if (ip.interface !== undefined && ip.interface !== sandboxIdx) continue;
    if (
      !seen.podAddresses.some((a) => ipEqual(a.ip, ip.address.ip) && a.prefix === ip.address.prefix)
    ) {
      problems.push(`${env.ifname} lacks address ${formatCIDR(ip.address)}`);
    }
  }
  for (const r of prev.routes) {
    const gw = r.gw ?? prev.ips.find((i) => i.address.ip.family === r.dst.ip.family)?.gateway;
    if (!seen.podRoutes.some((have) => kernel.routeMatches(have, r.dst, gw))) {
      problems.push(`route to ${formatCIDR(r.dst)} is missing in ${env.netns}`);
    }
  }
  return problems;
}

/** STATUS: ready when this node's subnet.env is present and valid. */
export function cmdStatus(conf: NetConf): void {
  let env: SubnetEnv | null;
  try {
    env = readSubnetEnv(conf.subnetFile);
  } catch (e) {
    throw new CniError(
      ERR.notAvailable,
      `not ready: ${(e as Error).message}; check the twill agent on this node`,
    );
  }
  if (!env) {
    throw new CniError(
      ERR.notAvailable,
      `not ready: ${conf.subnetFile} does not exist yet; check that the twill agent runs on this node`,
    );
  }
}

/** GC: release every address (and host veth, and scratch file) of attachments not listed valid. */
export function cmdGc(conf: NetConf): void {
  const valid = conf.validAttachments ?? [];
  const store = storeFor(conf);
  const unlock = store.lock();
  let node: NetlinkSocket | undefined;
  try {
    const released = collectGarbage(store, valid);
    if (released.length) node = NetlinkSocket.open();
    for (const r of released) {
      const rec = readScratch(conf, r.containerId);
      if (rec && rec.ifname === r.ifname) kernel.deleteHostVeth(node!, rec.hostVeth);
    }
    const keepIds = new Set(valid.map((a) => a.containerID));
    const gone = new Set(released.map((r) => r.containerId).filter((id) => !keepIds.has(id)));
    for (const id of gone) removeScratch(conf, id);
  } finally {
    node?.close();
    unlock();
  }
}

export function versionInfo(requested?: string): Record<string, unknown> {
  return {
    cniVersion: requested && (SUPPORTED_VERSIONS as readonly string[]).includes(requested)
      ? requested
      : LATEST,
    supportedVersions: [...SUPPORTED_VERSIONS],
  };
}

export type { Result };
