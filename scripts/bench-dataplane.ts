// Data plane benchmark (run as root, under flock /tmp/twill-kernel.lock; everything lives in
// twbd* namespaces it creates and removes by exact name): two namespace nodes on one underlay
// bridge, a pod on each; pod-to-pod TCP throughput (iperf3, --seconds, default 10) and ping RTT
// p50, for the underlay itself (node to node), each backend run by real agents (host-gw, vxlan,
// ipip where the kernel has it, wireguard, and ipsec once a backend of that type is registered),
// and hand-built equivalents (plain routes for host-gw, a manually created vxlan pair, a manual
// ipip pair) so twill's data plane can be compared with the same kind of device set up by hand.
// Everything is reported as a ratio to the underlay.
// Usage: deno run -A scripts/bench-dataplane.ts [--seconds 10] [--rounds 1] [--json]
import { parseArgs } from "node:util";
import { backendConfigParser } from "../lib/backend/registry.ts";
import { BackendCluster, killNamespacePids } from "../tests/e2e/backend_scenario.ts";
import { inNs, sh, Topology } from "../tests/e2e/topology.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "10" },
    rounds: { type: "string", default: "1" },
    json: { type: "boolean" },
  },
});
const SECONDS = Number(values.seconds);
/** Measurements per set-up; the median of each figure is reported (the machine is shared). */
const ROUNDS = Math.max(1, Number(values.rounds) || 1);
const PREFIX = "twbd";

interface Figures {
  name: string;
  gbps: number;
  rttP50Ms: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** `measureOnce` ROUNDS times; the median throughput and the median RTT p50. */
async function measure(name: string, fromNs: string, toNs: string, to: string): Promise<Figures> {
  const runs: Figures[] = [];
  for (let i = 0; i < ROUNDS; i++) runs.push(await measureOnce(name, fromNs, toNs, to));
  return {
    name,
    gbps: median(runs.map((r) => r.gbps)),
    rttP50Ms: median(runs.map((r) => r.rttP50Ms)),
  };
}

/** Pod (or node) `from` → address `to`: iperf3 throughput and ping RTT p50. */
async function measureOnce(
  name: string,
  fromNs: string,
  toNs: string,
  to: string,
): Promise<Figures> {
  const server = new Deno.Command("ip", {
    args: inNs(toNs, ["iperf3", "-s", "-1", "-B", to]).slice(1),
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await new Promise((r) => setTimeout(r, 500));
    const r = await sh(inNs(fromNs, ["iperf3", "-c", to, "-t", String(SECONDS), "-J"]));
    const j = JSON.parse(r.out) as { end: { sum_received: { bits_per_second: number } } };
    const gbps = j.end.sum_received.bits_per_second / 1e9;
    const p = await sh(inNs(fromNs, ["ping", "-c", "41", "-i", "0.05", "-W", "1", to]));
    const rtts = [...p.out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    return { name, gbps, rttP50Ms: rtts[Math.floor(rtts.length / 2)] };
  } finally {
    try {
      server.kill("SIGKILL");
    } catch { /* exited after its one test */ }
    await server.status;
  }
}

/** Two agents on `backend`, a pod each, measured pod 1 → pod 2. */
async function withAgents(name: string, backend: Record<string, unknown>): Promise<Figures> {
  const c = await BackendCluster.create({ prefix: PREFIX, backend, nodes: 2 });
  try {
    await c.startAll();
    await c.addPods();
    await c.pingAllPairs(15_000);
    return await measure(name, c.topo.pod(1), c.topo.pod(2), c.podIp.get(2)!);
  } catch (e) {
    console.error(c.logs());
    throw e;
  } finally {
    await c.close();
  }
}

type Hand = "underlay" | "host-gw" | "vxlan" | "ipip";
const HAND_MTU: Record<Hand, number> = { underlay: 1500, "host-gw": 1500, vxlan: 1450, ipip: 1480 };

/** ip commands (run in node n's namespace) that build the kind's device and routes by hand. */
function handLines(kind: Hand, n: number, peer: number): string[][] {
  const sub = (k: number) => `10.50.${k}`;
  const mac = (k: number) => `02:00:00:00:00:0${k}`;
  switch (kind) {
    case "underlay":
      return [];
    case "host-gw":
      return [["route", "add", `${sub(peer)}.0/24`, "via", `10.99.0.${peer}`]];
    case "vxlan":
      return [
        [
          "link",
          "add",
          "flannel.1",
          "address",
          mac(n),
          "type",
          "vxlan",
          "id",
          "1",
          "local",
          `10.99.0.${n}`,
          "dev",
          "eth0",
          "dstport",
          "8472",
          "nolearning",
        ],
        ["link", "set", "flannel.1", "mtu", "1450", "up"],
        ["addr", "add", `${sub(n)}.0/32`, "dev", "flannel.1"],
        [
          "neigh",
          "add",
          `${sub(peer)}.0`,
          "lladdr",
          mac(peer),
          "dev",
          "flannel.1",
          "nud",
          "permanent",
        ],
        [
          "route",
          "add",
          `${sub(peer)}.0/24`,
          "via",
          `${sub(peer)}.0`,
          "dev",
          "flannel.1",
          "onlink",
        ],
      ];
    case "ipip":
      return [
        ["link", "add", "flannel.ipip", "type", "ipip", "local", `10.99.0.${n}`],
        ["link", "set", "flannel.ipip", "mtu", "1480", "up"],
        ["addr", "add", `${sub(n)}.0/32`, "dev", "flannel.ipip"],
        [
          "route",
          "add",
          `${sub(peer)}.0/24`,
          "via",
          `10.99.0.${peer}`,
          "dev",
          "flannel.ipip",
          "onlink",
        ],
      ];
  }
}

/** The same measurement over devices and routes made by hand (no agent). */
async function handBuilt(name: string, kind: Hand): Promise<Figures> {
  const dir = await Deno.makeTempDir({ prefix: `${PREFIX}-hand-` });
  const topo = new Topology(PREFIX, 2, dir);
  try {
    await topo.create();
    if (kind === "underlay") {
      return await measure(name, topo.node(1), topo.node(2), topo.nodeIp(2));
    }
    for (const [n, peer] of [[1, 2], [2, 1]]) {
      for (const l of handLines(kind, n, peer)) await sh(["ip", "-n", topo.node(n), ...l]);
      if (kind === "vxlan") {
        await sh(inNs(topo.node(n), [
          "bridge",
          "fdb",
          "append",
          `02:00:00:00:00:0${peer}`,
          "dev",
          "flannel.1",
          "dst",
          `10.99.0.${peer}`,
        ]));
      }
    }
    const ips = [];
    for (const n of [1, 2]) {
      const env = `FLANNEL_SUBNET=10.50.${n}.1/24\nFLANNEL_MTU=${HAND_MTU[kind]}\n`;
      ips.push(await topo.addPod(n, env));
    }
    return await measure(name, topo.pod(1), topo.pod(2), ips[1]);
  } finally {
    for (const ns of topo.namespaces) await killNamespacePids(ns);
    await topo.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function kernelHasIpip(): Promise<boolean> {
  const ns = `${PREFIX}-probe`;
  await sh(["ip", "netns", "add", ns]);
  try {
    const r = await sh(["ip", "-n", ns, "link", "add", "p0", "type", "ipip"], { allowFail: true });
    return r.code === 0;
  } finally {
    await sh(["ip", "netns", "del", ns], { allowFail: true });
  }
}

/**
 * ipsec joins the run once a backend of that type is registered (its module merged); its PSK
 * here is a benchmark constant, Flannel's minimum being 96 characters.
 */
const IPSEC_BACKEND = { Type: "ipsec", PSK: "twill-bench-".repeat(10) };

async function runAll(): Promise<Figures[]> {
  const ipip = await kernelHasIpip();
  const runs: [string, () => Promise<Figures>][] = [
    ["underlay", () => handBuilt("underlay", "underlay")],
    ["host-gw", () => withAgents("host-gw", { Type: "host-gw" })],
    ["host-gw by hand", () => handBuilt("host-gw by hand", "host-gw")],
    ["vxlan", () => withAgents("vxlan", { Type: "vxlan" })],
    ["vxlan by hand", () => handBuilt("vxlan by hand", "vxlan")],
    ["wireguard", () => withAgents("wireguard", { Type: "wireguard" })],
  ];
  if (ipip) {
    runs.push(["ipip", () => withAgents("ipip", { Type: "ipip" })]);
    runs.push(["ipip by hand", () => handBuilt("ipip by hand", "ipip")]);
  } else {
    console.error("ipip skipped: this kernel has no ipip tunnel support (CONFIG_NET_IPIP)");
  }
  if (backendConfigParser("ipsec")) runs.push(["ipsec", () => withAgents("ipsec", IPSEC_BACKEND)]);
  else console.error("ipsec skipped: no ipsec backend is registered in this build");
  const out: Figures[] = [];
  for (const [name, run] of runs) {
    console.error(`measuring ${name} …`);
    out.push(await run());
  }
  return out;
}

function report(figs: Figures[]): void {
  const base = figs.find((f) => f.name === "underlay")!;
  const rows = figs.map((f) => ({
    ...f,
    throughputRatio: f.gbps / base.gbps,
    rttRatio: f.rttP50Ms / base.rttP50Ms,
  }));
  const vs = (a: string, b: string) => {
    const x = figs.find((f) => f.name === a), y = figs.find((f) => f.name === b);
    return x && y
      ? { of: a, to: b, throughput: x.gbps / y.gbps, rtt: x.rttP50Ms / y.rttP50Ms }
      : null;
  };
  const pairs = [
    vs("host-gw", "host-gw by hand"),
    vs("vxlan", "vxlan by hand"),
    vs("ipip", "ipip by hand"),
  ]
    .filter((p) => p);
  if (values.json) {
    console.log(
      JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, rows, againstHandBuilt: pairs }, null, 2),
    );
    return;
  }
  console.log(
    `pod-to-pod, ${SECONDS} s iperf3 + 41 pings, median of ${ROUNDS}, ratios to the underlay`,
  );
  console.log("variant            Gbit/s   ×underlay   RTT p50 ms   ×underlay");
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(18)} ${r.gbps.toFixed(2).padStart(6)}   ${
        r.throughputRatio.toFixed(2).padStart(9)
      }` +
        `   ${r.rttP50Ms.toFixed(3).padStart(10)}   ${r.rttRatio.toFixed(2).padStart(9)}`,
    );
  }
  for (const p of pairs) {
    const within = Math.abs(1 - p!.throughput) <= 0.1 ? "within 10%" : "NOT within 10%";
    console.log(
      `${p!.of} / ${p!.to}: throughput ×${p!.throughput.toFixed(3)} (${within}), RTT ×${
        p!.rtt.toFixed(3)
      }`,
    );
  }
}

if (import.meta.main) {
  report(await runAll());
}
