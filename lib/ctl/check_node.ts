// `twill ctl check`, the I/O half: reads this node's subnet.env, the network config and the
// leases from the store, the kernel (links and addresses, the backend's per-peer entries over
// rtnetlink or ip -j, the masquerade tables, the forward-hook chains of every table) and pings
// each peer through the overlay; check.ts turns that into findings.
//
// Reachability is probed here, by ctl on the node, rather than read from the agents: a ping of
// the peer's <subnet>.0 leaves through this node's flannel device, so the request crosses UDP
// 8472 one way and the reply the other, through exactly the path pods use, at the moment the
// operator asks, and it works while the agent is down (often the case when someone runs check).
import { expectedState } from "../backend/registry.ts";
import { backendConfigParser } from "../backend/registry.ts";
import { rtnlReader } from "../backend/kernel.ts";
import type { FdbEntry, NeighEntry, RouteEntry } from "../backend/dataplane.ts";
import type { ExpectedState } from "../backend/backend.ts";
import { type CIDR, cidrEqual, formatCIDR, formatIP, networkOf } from "../net/cidr.ts";
import { bridgeJson, ipJson, runCommand } from "../net/ip_batch.ts";
import { ruleCount } from "../net/nftables.ts";
import { parseNetConfig } from "../subnet/config.ts";

import { leaseFromKv } from "../subnet/manager.ts";
import { parseSubnetEnv, type SubnetEnv } from "../subnet/subnet_env.ts";
import {
  type CheckInput,
  checkNode,
  type Finding,
  findingLine,
  forwardChains,
  type KernelView,
  type LinkView,
  type ProbeResult,
} from "./check.ts";
import { ClusterApi, CtlError } from "./cluster_api.ts";
import type { WgCheckInput } from "./check_wireguard.ts";
import { wgPeerOf, wgSides, WIREGUARD, type WireguardConfig } from "../backend/wireguard.ts";
import { UapiClient } from "../net/wireguard/uapi.ts";
import { uapiSocketPath } from "../net/wireguard/userspace.ts";
import type { Lease } from "../subnet/lease.ts";
import type { CtlOptions } from "./commands.ts";

/** Pings at once, at most. */
const PROBE_CONCURRENCY = 16;

interface AddrJson {
  ifname: string;
  mtu: number;
  addr_info?: { local: string; prefixlen: number }[];
}

async function readLinks(): Promise<LinkView[]> {
  const links = (await ipJson<AddrJson[]>(["addr", "show"])) ?? [];
  return links.map((l) => ({
    name: l.ifname,
    mtu: l.mtu,
    addrs: (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`),
  }));
}

/** The routes, permanent neighbours and FDB entries on the devices `e` names. */
async function readEntries(
  e: ExpectedState | null,
): Promise<Omit<KernelView, "links" | "masqRules" | "forwardChains">> {
  const devs = new Set([
    ...(e?.dataPlane.routes ?? []).map((r) => r.dev),
    ...(e?.dataPlane.neighs ?? []).map((n) => n.dev),
  ]);
  const out = { routes: [] as RouteEntry[], neighs: [] as NeighEntry[], fdbs: [] as FdbEntry[] };
  const nl = rtnlReader();
  for (const dev of devs) {
    const routes = nl
      ? nl.routes(4, dev)
      : await ipJson<RouteJson[]>(["-4", "route", "show", "dev", dev]);
    const neighs = nl
      ? nl.neighs(4, dev)
      : await ipJson<NeighJson[]>(["-4", "neigh", "show", "dev", dev]);
    const fdbs = nl ? nl.fdbs(dev) : await bridgeJson<FdbJson[]>(["fdb", "show", "dev", dev]);
    for (const r of routes ?? []) {
      out.routes.push({
        dst: r.dst,
        via: r.gateway ?? "",
        dev,
        onlink: (r.flags ?? []).includes("onlink"),
      });
    }
    for (const n of neighs ?? []) {
      if (!n.lladdr || !(n.state ?? []).includes("PERMANENT")) continue;
      out.neighs.push({ ip: n.dst, mac: n.lladdr.toLowerCase(), dev });
    }
    for (const f of fdbs ?? []) {
      if (f.dst) out.fdbs.push({ mac: f.mac.toLowerCase(), dst: f.dst, dev });
    }
  }
  return out;
}

interface RouteJson {
  dst: string;
  gateway?: string;
  flags?: string[];
}
interface NeighJson {
  dst: string;
  lladdr?: string;
  state?: string[];
}
interface FdbJson {
  mac: string;
  dst?: string;
}

async function readForward(network: CIDR) {
  const r = await runCommand("nft", ["-j", "list", "ruleset"]);
  if (r.code !== 0) throw new CtlError(`nft -j list ruleset failed: ${r.stderr.trim()}`);
  return forwardChains(JSON.parse(r.stdout), network);
}

async function ping(target: string): Promise<boolean> {
  try {
    const r = await runCommand("ping", ["-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", target]);
    return r.code === 0;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new CtlError("ping is not installed (Debian: iputils-ping); it probes each peer");
    }
    throw e;
  }
}

async function probeAll(e: ExpectedState | null): Promise<ProbeResult[]> {
  const todo = [...(e?.probes ?? [])];
  const out: ProbeResult[] = [];
  const worker = async () => {
    for (let p = todo.shift(); p; p = todo.shift()) {
      out.push({
        target: p.target,
        peer: p.peer.subnet ? `${formatIP(p.peer.subnet.ip)}/${p.peer.subnet.prefix}` : "",
        publicIP: p.peer.attrs.publicIP,
        path: p.path,
        ok: await ping(p.target),
      });
    }
  };
  await Promise.all(Array.from({ length: PROBE_CONCURRENCY }, worker));
  return out;
}

async function readEnv(path: string): Promise<SubnetEnv> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new CtlError(
      `cannot read ${path} (${(e as Error).message}): the agent has not written it; is the twill ` +
        "agent running on this node? (curl -s localhost:9099/readyz)",
    );
  }
  try {
    return parseSubnetEnv(text, path);
  } catch (e) {
    throw new CtlError((e as Error).message);
  }
}

/** The network config and the leases, ours picked out by the subnet in subnet.env. */
async function readStore(o: CtlOptions, env: SubnetEnv, path: string) {
  const api = ClusterApi.of(o);
  const [cfgKv] = await api.range(`${o.prefix}/config`);
  if (!cfgKv) throw new CtlError(`no network config at ${o.prefix}/config`);
  const cfg = parseNetConfig(cfgKv.value, backendConfigParser);
  const kvs = await api.range(`${o.prefix}/subnets/`, { prefix: true });
  const leases = kvs.flatMap((kv) => {
    const l = leaseFromKv({ ...kv, modRevision: BigInt(kv.modRevision), lease: BigInt(kv.lease) });
    return l ? [l] : [];
  });
  const mine = env.subnet ? networkOf(env.subnet) : null;
  const own = leases.find((l) => l.subnet && mine && cidrEqual(l.subnet, mine));
  if (!own || !cfg.network) {
    throw new CtlError(
      `lease: the store holds no lease for ${mine ? `${formatIP(mine.ip)}/${mine.prefix}` : "?"} ` +
        `(FLANNEL_SUBNET in ${path}); fix: the agent re-acquires it; read its log`,
    );
  }
  return { cfg, network: cfg.network, own, peers: leases.filter((l) => l !== own) };
}

/** Everything check.ts needs, read from this node and the store. */
export async function gatherCheck(o: CtlOptions, subnetFile: string): Promise<CheckInput> {
  const env = await readEnv(subnetFile);
  const { cfg, network, own, peers } = await readStore(o, env, subnetFile);
  const links = await readLinks();
  const pub = own.attrs.publicIP;
  const underlay = links.find((l) => l.addrs.some((a) => a.split("/")[0] === pub)) ?? null;
  const iface = underlay && {
    name: underlay.name,
    mtu: underlay.mtu,
    address: pub,
    prefixLen: Number(underlay.addrs.find((a) => a.startsWith(`${pub}/`))!.split("/")[1]),
  };
  const expected = iface
    ? expectedState(cfg.backend, {
      iface,
      publicIP: pub,
      own,
      peers,
      ipv6: !!env.ipv6Subnet,
      network,
    })
    : null;
  const [entries, masqIp, masqIp6, fwd, probes] = await Promise.all([
    readEntries(expected),
    env.ipMasq ? ruleCount("ip") : Promise.resolve(-1),
    env.ipMasq && env.ipv6Subnet ? ruleCount("ip6") : Promise.resolve(-1),
    readForward(network),
    probeAll(expected),
  ]);
  return {
    subnetFile,
    env,
    network,
    own,
    peers,
    underlay,
    expected,
    kernel: { links, ...entries, masqRules: { ip: masqIp, ip6: masqIp6 }, forwardChains: fwd },
    probes,
    // After the probes: their pings have just made each healthy tunnel handshake.
    wireguard: cfg.backend.type === WIREGUARD.type
      ? await readWireguard(o, cfg.backend as WireguardConfig, network, own, peers)
      : undefined,
  };
}

/** The peers the leases ask for on flannel-wg, and the device's own, read over UAPI when
 *  wireguard-go drives it; a kernel device is left unread (a note says so). */
async function readWireguard(
  o: CtlOptions,
  cfg: WireguardConfig,
  network: CIDR,
  own: Lease,
  peers: Lease[],
): Promise<WgCheckInput> {
  const side = wgSides(cfg, network, null)[0];
  const ownPublic = { v4: own.attrs.publicIP, v6: null };
  const want = peers.flatMap((l) => {
    const p = wgPeerOf(l, side, ownPublic, { psk: null, keepalive: 0 });
    if (!p || !p.endpoint || !l.subnet) return [];
    const subnet = formatCIDR(l.subnet);
    return [{ ...p, endpoint: p.endpoint, subnet, publicIP: l.attrs.publicIP }];
  });
  const base = { device: side.dev, port: side.port, want, have: null, note: "" };
  const nowSec = () => Math.floor(Date.now() / 1000);
  const [link] = (await ipJson<LinkJson[]>(["-d", "link", "show", "dev", side.dev])) ?? [];
  if (!link) return { ...base, note: `not read: ${side.dev} is missing`, nowSec: nowSec() };
  if (link.linkinfo?.info_kind === "wireguard") {
    return { ...base, note: "not read: kernel WireGuard device", nowSec: nowSec() };
  }
  const dataDir = o.dataDir ?? "/var/lib/twill";
  const sock = uapiSocketPath(dataDir, side.dev);
  try {
    const state = await new UapiClient(sock).get();
    return { ...base, have: state.peers, note: `read from ${sock}`, nowSec: nowSec() };
  } catch (e) {
    return {
      ...base,
      note: `not read: ${sock}: ${(e as Error).message} (is --data-dir this node's?)`,
      nowSec: nowSec(),
    };
  }
}

interface LinkJson {
  linkinfo?: { info_kind?: string };
}

/** `twill ctl check [SUBNET_FILE]`: 0 when nothing is wrong, 1 with one line per finding. */
export async function check(
  o: CtlOptions,
  subnetFile = "/run/flannel/subnet.env",
): Promise<number> {
  const input = await gatherCheck(o, subnetFile);
  const findings: Finding[] = checkNode(input);
  if (o.json) {
    o.out(
      JSON.stringify({ ok: findings.length === 0, findings, summary: summary(input) }, null, 2),
    );
  } else if (findings.length === 0) {
    o.out(`ok: ${summary(input)}`);
  } else {
    for (const f of findings) o.out(findingLine(f));
  }
  return findings.length ? 1 : 0;
}

function summary(i: CheckInput): string {
  const e = i.expected;
  const wg = i.wireguard
    ? `; WireGuard peers of ${i.wireguard.device}: ${i.wireguard.want.length} wanted, ` +
      i.wireguard.note
    : "";
  const dev = e?.device ? `${e.device.name} ${e.device.address} MTU ${e.device.mtu}, ` : "";
  return `${dev}${i.peers.length} peer(s) with route, neighbour, FDB entry and reachability ` +
    `checked; FLANNEL_MTU ${i.env.mtu}; masquerade ${i.env.ipMasq ? "on" : "off"}; ` +
    `${i.kernel.forwardChains.length} forward chain(s) in other tables${wg}`;
}
