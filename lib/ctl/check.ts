// `twill ctl check`, the pure half: what the kernel of this node has, what the store and
// subnet.env say it should have, and the backend's expected state (lib/backend/registry.ts) →
// findings, one line each with its fix. No I/O here: check_node.ts reads the kernel, the store
// and the files, and runs the probes.
import type { ExpectedState } from "../backend/backend.ts";
import type { FdbEntry, NeighEntry, RouteEntry } from "../backend/dataplane.ts";
import { type CIDR, contains, formatCIDR, parseCIDR, tryParseCIDR } from "../net/cidr.ts";
import { MASQ_RULES, TABLE } from "../net/nftables.ts";
import type { Lease } from "../subnet/lease.ts";
import type { SubnetEnv } from "../subnet/subnet_env.ts";
import { checkWireguardPeers, type WgCheckInput } from "./check_wireguard.ts";

export interface Finding {
  /** What was checked: device, route, neighbour, fdb, mtu, cni0, masquerade, forward, … */
  check: string;
  problem: string;
  fix: string;
}

export function findingLine(f: Finding): string {
  return `${f.check}: ${f.problem}; fix: ${f.fix}`;
}

export interface LinkView {
  name: string;
  mtu: number;
  /** Addresses with their prefix length, host bits kept: "10.50.1.0/32". */
  addrs: string[];
}

/** A base chain on the forward hook, outside twill's own table. */
export interface ForwardChain {
  family: string;
  table: string;
  chain: string;
  policy: string;
  /** Some rule of the chain accepts traffic of the cluster network. */
  acceptsNetwork: boolean;
}

export interface KernelView {
  links: LinkView[];
  /** The entries on the devices the expected data plane names. */
  routes: RouteEntry[];
  neighs: NeighEntry[];
  fdbs: FdbEntry[];
  /** Rules in table ip/ip6 twill; -1 when the table is absent. */
  masqRules: { ip: number; ip6: number };
  forwardChains: ForwardChain[];
}

export interface ProbeResult {
  target: string;
  /** The peer's subnet and public IP, to name it. */
  peer: string;
  publicIP: string;
  path: string;
  ok: boolean;
}

export interface CheckInput {
  subnetFile: string;
  env: SubnetEnv;
  network: CIDR;
  own: Lease;
  peers: Lease[];
  /** The interface that holds the lease's public IP, null when none does. */
  underlay: LinkView | null;
  /** null: the backend contributes no expectations. */
  expected: ExpectedState | null;
  kernel: KernelView;
  probes: ProbeResult[];
  /** The wireguard backend's peers, wanted and read from the device; absent for other backends. */
  wireguard?: WgCheckInput;
}

/** Every finding, in the order an operator should work through them. */
export function checkNode(i: CheckInput): Finding[] {
  const out: Finding[] = [];
  if (!i.underlay) {
    const ip = i.own.attrs.publicIP;
    out.push({
      check: "lease",
      problem: `this node's lease ${sub(i.own)} names public IP ${ip}, which no interface here has`,
      fix: "start the agent with --iface or --public-ip naming this node's underlay address",
    });
  }
  if (i.expected) {
    out.push(...checkDevice(i.expected, i.kernel));
    out.push(...checkPeers(i.expected, i.kernel));
  }
  if (i.wireguard) out.push(...checkWireguardPeers(i.wireguard));
  out.push(...checkMtu(i));
  out.push(...checkCni0(i));
  out.push(...checkMasq(i));
  out.push(...checkForward(i));
  out.push(...checkProbes(i, out));
  return out;
}

function sub(l: Lease): string {
  return l.subnet ? formatCIDR(l.subnet) : "(no IPv4 subnet)";
}

function link(k: KernelView, name: string): LinkView | undefined {
  return k.links.find((l) => l.name === name);
}

function checkDevice(e: ExpectedState, k: KernelView): Finding[] {
  if (!e.device) return [];
  const d = e.device;
  const have = link(k, d.name);
  if (!have) {
    return [{
      check: "device",
      problem: `${d.name} is missing`,
      fix: "restart the twill agent on this node (it creates the device)",
    }];
  }
  if (have.addrs.includes(d.address)) return [];
  const v4 = have.addrs.filter((a) => !a.includes(":"));
  return [{
    check: "device",
    problem: `${d.name} lacks its address ${d.address}` +
      (v4.length ? ` (it has ${v4.join(", ")})` : " (it has none)"),
    fix: `ip addr replace ${d.address} dev ${d.name}` +
      v4.map((a) => `; ip addr del ${a} dev ${d.name}`).join(""),
  }];
}

function routeText(r: RouteEntry): string {
  const via = r.via ? ` via ${r.via}` : "";
  return `${r.dst}${via} dev ${r.dev}${r.onlink ? " onlink" : ""}`;
}

/** A route, a permanent neighbour and an FDB entry per peer, as the backend wants them. */
function checkPeers(e: ExpectedState, k: KernelView): Finding[] {
  const out: Finding[] = [];
  for (const r of e.dataPlane.routes) {
    const have = k.routes.filter((x) => x.dst === r.dst);
    if (have.some((x) => routeText(x) === routeText(r))) continue;
    out.push({
      check: "route",
      problem: have.length
        ? `${r.dst} goes ${have.map(routeText).join(", ")}, not ${routeText(r)}`
        : `no route ${routeText(r)}`,
      fix: `ip route replace ${routeText(r)}`,
    });
  }
  for (const n of e.dataPlane.neighs) {
    if (k.neighs.some((x) => x.ip === n.ip && x.mac === n.mac && x.dev === n.dev)) continue;
    out.push({
      check: "neighbour",
      problem: `no permanent neighbour ${n.ip} lladdr ${n.mac} on ${n.dev}`,
      fix: `ip neigh replace ${n.ip} lladdr ${n.mac} dev ${n.dev} nud permanent`,
    });
  }
  for (const f of e.dataPlane.fdbs) {
    if (k.fdbs.some((x) => x.mac === f.mac && x.dst === f.dst && x.dev === f.dev)) continue;
    out.push({
      check: "fdb",
      problem: `no FDB entry ${f.mac} dst ${f.dst} on ${f.dev}`,
      fix: `bridge fdb replace ${f.mac} dev ${f.dev} dst ${f.dst}`,
    });
  }
  return out;
}

/** Underlay → device → subnet.env → cni0: each must fit inside the one before. */
function checkMtu(i: CheckInput): Finding[] {
  const out: Finding[] = [];
  const e = i.expected;
  const d = e?.device && link(i.kernel, e.device.name);
  if (e?.device && d && d.mtu !== e.device.mtu) {
    out.push({
      check: "mtu",
      problem: `${d.name} has MTU ${d.mtu}, want ${e.device.mtu} (${e.device.mtuWhy})`,
      fix: `ip link set ${d.name} mtu ${e.device.mtu}`,
    });
  }
  if (e && i.env.mtu !== e.mtu) {
    out.push({
      check: "mtu",
      problem: `${i.subnetFile} has FLANNEL_MTU=${i.env.mtu}, want ${e.mtu} (${e.mtuWhy})`,
      fix: "restart the twill agent (it rewrites the file); pods created since keep the old MTU " +
        "until they are recreated",
    });
  }
  const cni0 = link(i.kernel, "cni0");
  if (cni0 && cni0.mtu !== i.env.mtu) {
    out.push({
      check: "mtu",
      problem: `cni0 has MTU ${cni0.mtu}, FLANNEL_MTU is ${i.env.mtu}`,
      fix: `ip link set cni0 mtu ${i.env.mtu}`,
    });
  }
  return out;
}

/** A cni0 address outside this node's lease: the bridge of an earlier subnet. */
function checkCni0(i: CheckInput): Finding[] {
  const cni0 = link(i.kernel, "cni0");
  if (!cni0) return [];
  const mine = [i.own.subnet, i.own.ipv6Subnet].filter((s): s is CIDR => s !== null);
  return cni0.addrs.flatMap((a) => {
    const c = tryParseCIDR(a, true);
    if (!c || (c.ip.family === 6 && c.ip.value >> 118n === 0x3fan)) return []; // link-local
    if (mine.some((s) => s.ip.family === c.ip.family && contains(s, c.ip))) return [];
    return [{
      check: "cni0",
      problem: `cni0 has ${a}, outside this node's lease ${sub(i.own)}`,
      fix: `ip addr del ${a} dev cni0 once no pod uses it`,
    }];
  });
}

function checkMasq(i: CheckInput): Finding[] {
  if (!i.env.ipMasq) return [];
  const fams: ("ip" | "ip6")[] = i.env.ipv6Subnet ? ["ip", "ip6"] : ["ip"];
  return fams.flatMap((fam) => {
    const n = i.kernel.masqRules[fam];
    if (n === MASQ_RULES) return [];
    return [{
      check: "masquerade",
      problem: (n < 0 ? `table ${fam} ${TABLE} is missing` : `table ${fam} ${TABLE} has ${n} of ` +
        `${MASQ_RULES} rules`) + ` while ${i.subnetFile} says FLANNEL_IPMASQ=true`,
      fix: "the agent restores it within its reconcile interval (5 s); if it stays, restart the " +
        "twill agent and read its log",
    }];
  });
}

/** A DROP policy on the forward hook in another table wins over twill's accept rules. */
function checkForward(i: CheckInput): Finding[] {
  const net = formatCIDR(i.network);
  return i.kernel.forwardChains
    .filter((c) => c.policy === "drop" && !c.acceptsNetwork && c.table !== TABLE)
    .map((c) => {
      const iptables = c.family === "ip" && c.table === "filter" && c.chain === "FORWARD";
      return {
        check: "forward",
        problem: `chain ${c.family} ${c.table} ${c.chain} drops forwarded traffic (policy drop) ` +
          `and accepts nothing of ${net}, so pod traffic between nodes is dropped`,
        fix: iptables
          ? `iptables -I FORWARD -s ${net} -j ACCEPT; iptables -I FORWARD -d ${net} -j ACCEPT`
          : `nft insert rule ${c.family} ${c.table} ${c.chain} ip saddr ${net} accept; ` +
            `nft insert rule ${c.family} ${c.table} ${c.chain} ip daddr ${net} accept`,
      };
    });
}

/** A lost probe says something only when the peer's entries here are in place. */
function checkProbes(i: CheckInput, found: Finding[]): Finding[] {
  const me = i.own.attrs.publicIP;
  return i.probes.filter((p) => !p.ok).flatMap((p) => {
    const named = (f: Finding) =>
      [p.publicIP, p.peer, `${p.target} `].some((x) => f.problem.includes(x));
    if (found.some(named)) return [];
    if (found.some((f) => f.check === "device" || f.check === "lease")) return [];
    return [{
      check: "reachability",
      problem: `no answer from peer ${p.peer} (${p.publicIP}) through the overlay (ping ` +
        `${p.target}): ${p.path} is blocked between ${me} and ${p.publicIP}, or the peer lacks ` +
        "its entries for this node",
      fix: `open ${p.path} between ${me} and ${p.publicIP} (host firewall, security group); ` +
        "run twill ctl check on the peer",
    }];
  });
}

/** The forward-hook base chains of `nft -j list ruleset`, and whether each accepts `network`. */
export function forwardChains(ruleset: unknown, network: CIDR): ForwardChain[] {
  const items = (ruleset as { nftables?: Record<string, Record<string, unknown>>[] })?.nftables;
  if (!Array.isArray(items)) return [];
  const net = parseCIDR(formatCIDR(network));
  const addr = `"addr":"${formatCIDR(net).split("/")[0]}","len":${net.prefix}`;
  const out: ForwardChain[] = [];
  for (const it of items) {
    const c = it.chain;
    if (!c || c.hook !== "forward" || c.table === TABLE) continue;
    const rules = items.filter((r) =>
      r.rule && r.rule.family === c.family && r.rule.table === c.table && r.rule.chain === c.name
    );
    out.push({
      family: String(c.family),
      table: String(c.table),
      chain: String(c.name),
      policy: String(c.policy ?? "accept"),
      acceptsNetwork: rules.some((r) => {
        const t = JSON.stringify(r.rule.expr ?? []);
        return t.includes(addr) && t.includes('"accept"');
      }),
    });
  }
  return out;
}
