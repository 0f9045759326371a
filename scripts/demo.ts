// deno task demo — a 3-node twill cluster in network namespaces on this machine, in one command.
//
//   deno task demo                 build it, attach pods, ping every pod from every pod, tear down
//   deno task demo -- --keep       leave it running and print how to look around
//   deno task demo -- --down       remove everything a previous demo made (by exact name)
//
// Layout (every name starts with "twdemo-"; the root namespace is never touched):
//   twdemo-ul          the underlay: bridge br0 holding 172.30.99.254/24
//   twdemo-nN          node N: eth0 = 172.30.99.N/24 (veth to br0), runs `twill agent`
//   twdemo-nN-pM       pod M of node N, attached by the CNI face (CNI_COMMAND=ADD)
// Everything a node writes (data dir, subnet.env, CNI state, agent log) lives under the state dir
// (/run/twill-demo by default), which also holds state.json: the namespaces made and the pids of
// the agents started, so `--down` from another process removes exactly those.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { formatCIDR, tryParseCIDR } from "../lib/net/cidr.ts";
import { DEMO_PACKAGES, ensurePackages as installPackages, InstallError } from "./install-deps.ts";
import { parseSubnetEnvSubnets } from "../lib/subnet/subnet_env.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const PREFIX = "twdemo-";
export const DEFAULT_STATE_DIR = "/run/twill-demo";
const UNDERLAY_BRIDGE = "br0";
const UNDERLAY_NET = "172.30.99";
const STORE_PORT = 8473;
const HEALTH_PORT = 9099;
export const POD_NETWORK = "10.244.0.0/16";

// ---------------------------------------------------------------------------------------------
// The plan: every name and address the demo uses, computed up front (pure).

export interface NodePlan {
  name: string; // n1
  ns: string; // twdemo-n1
  address: string; // 172.30.99.1
  underlayLink: string; // the veth end in the underlay namespace
  dir: string; // <state>/n1
  dataDir: string;
  subnetFile: string;
  cniDataDir: string;
  ipamDir: string;
  log: string;
}

export interface PodPlan {
  name: string; // n1-p1
  node: string; // n1
  ns: string; // twdemo-n1-p1
  containerId: string;
}

export interface DemoPlan {
  stateDir: string;
  stateFile: string;
  netConfFile: string;
  /** A `twill` launcher (deno run main.ts) in the state dir, what "the binary" is here. */
  launcher: string;
  /** Every namespace name starts with this ("twdemo-" unless --prefix says "twdemo-…-"). */
  prefix: string;
  underlayNs: string;
  nodes: NodePlan[];
  pods: PodPlan[];
}

export function planDemo(
  stateDir: string,
  nodeCount: number,
  podsPerNode: number,
  prefix = PREFIX,
): DemoPlan {
  if (!validPrefix(prefix)) throw new Error(`bad namespace prefix "${prefix}"`);
  const nodes: NodePlan[] = [];
  const pods: PodPlan[] = [];
  for (let n = 1; n <= nodeCount; n++) {
    const name = `n${n}`;
    const dir = join(stateDir, name);
    nodes.push({
      name,
      ns: `${prefix}${name}`,
      address: `${UNDERLAY_NET}.${n}`,
      underlayLink: `to-${name}`,
      dir,
      dataDir: join(dir, "data"),
      subnetFile: join(dir, "subnet.env"),
      cniDataDir: join(dir, "cni", "flannel"),
      ipamDir: join(dir, "cni", "networks"),
      log: join(dir, "agent.log"),
    });
    for (let p = 1; p <= podsPerNode; p++) {
      pods.push({
        name: `${name}-p${p}`,
        node: name,
        ns: `${prefix}${name}-p${p}`,
        containerId: `twdemo${n}${p}`.padEnd(16, "0"),
      });
    }
  }
  return {
    stateDir,
    stateFile: join(stateDir, "state.json"),
    netConfFile: join(stateDir, "net-conf.json"),
    launcher: join(stateDir, "twill"),
    prefix,
    underlayNs: `${prefix}ul`,
    nodes,
    pods,
  };
}

/** A namespace prefix the demo may use: "twdemo-" or "twdemo-<letters/digits>-". */
export function validPrefix(prefix: string): boolean {
  return prefix === PREFIX || /^twdemo-[a-z0-9]{1,12}-$/.test(prefix);
}

/** Flannel's net-conf.json for the demo network. */
export function netConf(): string {
  return JSON.stringify({ Network: POD_NETWORK, Backend: { Type: "vxlan" } }, null, 2) + "\n";
}

/**
 * The flannel plugin's network config as a container runtime hands it to the plugin from the
 * kube-flannel conflist (name and cniVersion copied in), with every path moved into the demo's
 * state dir.
 */
export function cniConfig(node: NodePlan): Record<string, unknown> {
  return {
    cniVersion: "0.3.1",
    name: "cbr0",
    type: "flannel",
    subnetFile: node.subnetFile,
    dataDir: node.cniDataDir,
    ipam: { dataDir: node.ipamDir },
    delegate: { hairpinMode: true, isDefaultGateway: true },
  };
}

/** subnet.env's FLANNEL_SUBNET ("10.244.7.1/24", the gateway) as the subnet it names. */
export function subnetOf(flannelSubnet: string | undefined): string {
  const c = flannelSubnet ? tryParseCIDR(flannelSubnet) : null;
  return c ? formatCIDR(c) : "?";
}

/** Reads KEY=VALUE lines (subnet.env). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2].trim();
  }
  return out;
}

/** The first IPv4 address (without prefix length) in a CNI ADD result of any version. */
export function podAddress(result: unknown): string | undefined {
  const ips = (result as { ips?: { address?: string }[] })?.ips ?? [];
  for (const ip of ips) {
    const addr = ip.address?.split("/")[0];
    if (addr && addr.includes(".")) return addr;
  }
  const legacy = (result as { ip4?: { ip?: string } })?.ip4?.ip; // CNI 0.2.0 shape
  return legacy?.split("/")[0];
}

/**
 * Finds each member's role in `twill ctl --json status` output, whatever its exact nesting:
 * any object carrying a role plus an address or name counts as a member. Keys are the member's
 * address (host part) and name.
 */
export function rolesFromStatus(status: unknown): Map<string, string> {
  const roles = new Map<string, string>();
  const visit = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(visit);
    if (v === null || typeof v !== "object") return;
    const o = v as Record<string, unknown>;
    if (typeof o.role === "string") {
      for (const k of ["address", "advertise", "peerAddress", "addr", "url", "name", "id"]) {
        const val = o[k];
        if (typeof val === "string" || typeof val === "number") {
          const s = String(val).replace(/^https?:\/\//, "");
          roles.set(s, o.role);
          roles.set(s.replace(/:\d+$/, ""), o.role);
        }
      }
    }
    Object.values(o).forEach(visit);
  };
  visit(status);
  return roles;
}

/** Maps a store's role vocabulary to the demo's: leader / voter / learner / client. */
export function displayRole(role: string | undefined): string {
  if (!role) return "?";
  const r = role.toLowerCase();
  if (r.includes("leader")) return "leader";
  if (r.includes("learner")) return "learner";
  if (r.includes("follower") || r.includes("voter") || r.includes("candidate")) return "voter";
  if (r.includes("client")) return "client";
  return r;
}

// ---------------------------------------------------------------------------------------------
// The report: what the demo found, and how it is shown (pure).

export interface NodeReport {
  name: string;
  ns: string;
  address: string;
  subnet: string;
  vtepMac: string;
  role: string;
}
export interface PodReport {
  name: string;
  node: string;
  ns: string;
  ip: string;
}
export interface DemoReport {
  ok: boolean;
  nodes: NodeReport[];
  pods: PodReport[];
  /** matrix[from][to] = true when `from` got a ping reply from `to`. */
  matrix: Record<string, Record<string, boolean>>;
  steps: { step: string; seconds: number }[];
  failedStep?: string;
  error?: string;
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(headers), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function renderNodes(report: DemoReport): string {
  return table(
    ["node", "namespace", "address", "subnet", "vtep mac", "store", "pods"],
    report.nodes.map((n) => [
      n.name,
      n.ns,
      n.address,
      n.subnet,
      n.vtepMac,
      n.role,
      report.pods.filter((p) => p.node === n.name).map((p) => `${p.name}=${p.ip}`).join(" "),
    ]),
  );
}

/** Where each node's Prometheus metrics are (its health server, in its namespace). */
export function renderMetricsWhere(report: DemoReport): string {
  return report.nodes.map((n) =>
    `  ${n.name}: ip netns exec ${n.ns} curl -s http://127.0.0.1:${HEALTH_PORT}/metrics`
  ).join("\n");
}

export function renderMatrix(report: DemoReport): string {
  const names = report.pods.map((p) => p.name);
  const rows = names.map((from) => [
    from,
    ...names.map((to) => from === to ? "-" : report.matrix[from]?.[to] ? "ok" : "FAIL"),
  ]);
  return table(["from \\ to", ...names], rows);
}

/** What to type to look around a cluster left up by --keep. */
export function keepHints(plan: DemoPlan, report: DemoReport): string {
  const n1 = plan.nodes[0];
  const n2 = plan.nodes[1] ?? n1;
  const from = report.pods[0];
  const to = report.pods[report.pods.length - 1];
  return [
    "the cluster is still running; look around:",
    `  ip netns list | grep ${plan.prefix}`,
    `  ip netns exec ${n1.ns} ip -d link show flannel.1`,
    `  ip netns exec ${n1.ns} ip route`,
    `  ip netns exec ${n1.ns} bridge fdb show dev flannel.1`,
    `  cat ${n1.subnetFile}`,
    // ctl finds the CA, a credential and a member in a node's data dir: nothing secret to type.
    `  ip netns exec ${n1.ns} ${plan.launcher} ctl --data-dir ${n1.dataDir} status`,
    `  ip netns exec ${n2.ns} ${plan.launcher} ctl --data-dir ${n2.dataDir} leases`,
    ...(from && to ? [`  ip netns exec ${from.ns} ping -c 3 ${to.ip}`] : []),
    `  tail ${n1.log}`,
    "remove it all with: npx -y deno@2.9.6 task demo -- --down",
  ].join("\n");
}

export function matrixAllGreen(report: DemoReport): boolean {
  const names = report.pods.map((p) => p.name);
  if (names.length < 2) return false;
  return names.every((from) =>
    names.every((to) => from === to || report.matrix[from]?.[to] === true)
  );
}

// ---------------------------------------------------------------------------------------------
// I/O: commands, namespaces, processes.

const decoder = new TextDecoder();

class StepError extends Error {}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  cmd: string,
  args: string[],
  opts: { stdin?: string; env?: Record<string, string>; signal?: AbortSignal } = {},
): Promise<RunResult> {
  let child;
  try {
    child = new Deno.Command(cmd, {
      args,
      stdin: opts.stdin !== undefined ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      env: opts.env,
      signal: opts.signal,
    }).spawn();
  } catch (e) {
    throw new StepError(`cannot run ${cmd}: ${(e as Error).message}`);
  }
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Runs a command that must succeed; its failure becomes the step's one-line reason. */
async function must(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    const why = (r.stderr.trim() || r.stdout.trim()).split("\n").pop();
    throw new StepError(`\`${cmd} ${args.join(" ")}\` failed: ${why}`);
  }
  return r.stdout;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function netnsList(): Promise<string[]> {
  const r = await run("ip", ["-j", "netns", "list"]);
  if (r.code !== 0 || !r.stdout.trim()) return [];
  return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// State kept on disk so `--down` (possibly another process) removes exactly what was made.
interface DemoState {
  namespaces: string[];
  agents: { node: string; pid: number; dataDir: string }[];
}

async function readState(plan: DemoPlan): Promise<DemoState> {
  try {
    return JSON.parse(await Deno.readTextFile(plan.stateFile));
  } catch {
    return { namespaces: [], agents: [] };
  }
}

async function writeState(plan: DemoPlan, state: DemoState): Promise<void> {
  await Deno.mkdir(plan.stateDir, { recursive: true });
  const tmp = plan.stateFile + ".tmp";
  await Deno.writeTextFile(tmp, JSON.stringify(state, null, 2) + "\n");
  await Deno.rename(tmp, plan.stateFile);
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie is as good as gone
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ");
  } catch {
    return "";
  }
}

const children = new Map<number, Deno.ChildProcess>();
/** Aborted by Ctrl-C / SIGTERM: waits and probes stop, the failure path cleans up. */
const abort = new AbortController();

function checkInterrupted(): void {
  if (abort.signal.aborted) throw new StepError("interrupted (Ctrl-C or SIGTERM)");
}

async function stopProcess(pid: number): Promise<void> {
  const kill = (sig: Deno.Signal) => {
    try {
      Deno.kill(pid, sig);
    } catch { /* already gone */ }
  };
  kill("SIGTERM");
  for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
  if (alive(pid)) kill("SIGKILL");
  const child = children.get(pid);
  if (child) {
    await child.status;
    children.delete(pid);
  }
}

/**
 * Removes everything the demo made: agents it started (pids from the state file, checked against
 * their command line), any other process still inside one of its namespaces, the namespaces (by
 * exact name, from the state file and the plan), and the state dir.
 */
export async function teardown(plan: DemoPlan): Promise<string[]> {
  const removed: string[] = [];
  const state = await readState(plan);
  const ownAgents = state.agents.filter((a) => alive(a.pid) && cmdline(a.pid).includes(a.dataDir));
  await Promise.all(ownAgents.map((a) => stopProcess(a.pid)));
  for (const a of ownAgents) removed.push(`agent ${a.node} (pid ${a.pid})`);
  const planned = [plan.underlayNs, ...plan.nodes.map((n) => n.ns), ...plan.pods.map((p) => p.ns)];
  const ours = new Set(
    [...state.namespaces, ...planned].filter((n) =>
      n.startsWith(plan.prefix) && n.startsWith(PREFIX)
    ),
  );
  const present = new Set(await netnsList());
  for (const ns of ours) {
    if (!present.has(ns)) continue;
    const pids = (await run("ip", ["netns", "pids", ns])).stdout.split(/\s+/).filter(Boolean);
    await Promise.all(pids.map(Number).map(stopProcess));
  }
  // Pods first, then nodes, then the underlay: each veth goes with its namespace.
  const order = [...ours].sort((a, b) => b.length - a.length);
  for (const ns of order) {
    if (!present.has(ns)) continue;
    const r = await run("ip", ["netns", "delete", ns]);
    if (r.code === 0) removed.push(`namespace ${ns}`);
    else console.error(`demo: could not delete namespace ${ns}: ${r.stderr.trim()}`);
  }
  if (await exists(plan.stateDir)) {
    await Deno.remove(plan.stateDir, { recursive: true });
    removed.push(`state dir ${plan.stateDir}`);
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// The steps.

async function ensurePackages(): Promise<string> {
  try {
    return await installPackages(DEMO_PACKAGES);
  } catch (e) {
    if (e instanceof InstallError) throw new StepError(e.message);
    throw e;
  }
}

/** `twill` for this checkout: deno run main.ts from the cache (node namespaces have no internet). */
export function launcherScript(deno: string, root: string): string {
  return `#!/bin/sh\nexec ${JSON.stringify(deno)} run -A --cached-only ${
    JSON.stringify(join(root, "main.ts"))
  } "$@"\n`;
}

async function cacheModules(plan: DemoPlan): Promise<string> {
  const faces = [...Deno.readDirSync(join(ROOT, "cmd"))]
    .filter((e) => e.isFile && e.name.endsWith(".ts"))
    .map((e) => join(ROOT, "cmd", e.name));
  const r = await run(Deno.execPath(), ["cache", join(ROOT, "main.ts"), ...faces]);
  if (r.code !== 0) {
    throw new StepError(`deno cache main.ts failed: ${r.stderr.trim().split("\n").pop()}`);
  }
  await Deno.writeTextFile(plan.launcher, launcherScript(Deno.execPath(), ROOT), { mode: 0o755 });
  return `main.ts cached (node namespaces have no internet); ${plan.launcher} runs twill`;
}

async function addNamespace(plan: DemoPlan, state: DemoState, ns: string): Promise<void> {
  state.namespaces.push(ns);
  await writeState(plan, state); // recorded before it exists, so a failure still cleans it up
  await must("ip", "netns", "add", ns);
  await must("ip", "-n", ns, "link", "set", "lo", "up");
}

async function buildUnderlay(plan: DemoPlan, state: DemoState): Promise<string> {
  const ul = plan.underlayNs;
  await addNamespace(plan, state, ul);
  await must("ip", "-n", ul, "link", "add", UNDERLAY_BRIDGE, "type", "bridge");
  await must("ip", "-n", ul, "addr", "add", `${UNDERLAY_NET}.254/24`, "dev", UNDERLAY_BRIDGE);
  await must("ip", "-n", ul, "link", "set", UNDERLAY_BRIDGE, "up");
  for (const node of plan.nodes) {
    await addNamespace(plan, state, node.ns);
    await must(
      "ip",
      "-n",
      ul,
      "link",
      "add",
      node.underlayLink,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      node.ns,
    );
    await must("ip", "-n", ul, "link", "set", node.underlayLink, "master", UNDERLAY_BRIDGE, "up");
    await must("ip", "-n", node.ns, "addr", "add", `${node.address}/24`, "dev", "eth0");
    await must("ip", "-n", node.ns, "link", "set", "eth0", "up");
    await must("ip", "-n", node.ns, "route", "add", "default", "via", `${UNDERLAY_NET}.254`);
    // A node forwards between its pods' bridge and the overlay (inside its own namespace only).
    // (/proc/sys/net is the namespace's own; no procps needed.)
    const forward = "echo 1 > /proc/sys/net/ipv4/ip_forward";
    await must("ip", "netns", "exec", node.ns, "sh", "-c", forward);
    await Deno.mkdir(node.dataDir, { recursive: true });
    await Deno.mkdir(node.cniDataDir, { recursive: true });
    await Deno.mkdir(node.ipamDir, { recursive: true });
  }
  return `${ul} with ${UNDERLAY_BRIDGE}, ${
    plan.nodes.map((n) => `${n.ns}=${n.address}`).join(" ")
  }`;
}

function agentArgs(
  plan: DemoPlan,
  node: NodePlan,
  token: string,
  init: boolean,
  extra: string[],
): string[] {
  const args = [
    "agent",
    ...(init
      ? ["--init", "--net-config-path", plan.netConfFile]
      : ["--join", `${plan.nodes[0].address}:${STORE_PORT}`]),
    "--token",
    token,
    "--name",
    node.name,
    "--data-dir",
    node.dataDir,
    "--listen",
    `${node.address}:${STORE_PORT}`,
    "--advertise",
    `${node.address}:${STORE_PORT}`,
    "--iface",
    "eth0",
    "--subnet-file",
    node.subnetFile,
    "--healthz-port",
    String(HEALTH_PORT),
    ...extra,
  ];
  return args;
}

async function startAgent(
  plan: DemoPlan,
  state: DemoState,
  node: NodePlan,
  token: string,
  init: boolean,
  extra: string[],
): Promise<void> {
  // `sh` redirects the agent's output to its log and execs; `ip netns exec` execs too, so the
  // pid we keep is the agent's own. detached: the agent outlives the demo under --keep.
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      'log="$1"; shift; exec "$@" >>"$log" 2>&1',
      "sh",
      node.log,
      "ip",
      "netns",
      "exec",
      node.ns,
      plan.launcher,
      ...agentArgs(plan, node, token, init, extra),
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    env: { NO_COLOR: "1" },
    detached: true,
  }).spawn();
  children.set(child.pid, child);
  state.agents.push({ node: node.name, pid: child.pid, dataDir: node.dataDir });
  await writeState(plan, state);
}

async function tail(file: string, lines = 6): Promise<string> {
  try {
    const text = (await Deno.readTextFile(file)).trimEnd().split("\n");
    return text.slice(-lines).map((l) => `    | ${l}`).join("\n");
  } catch {
    return "    | (no log)";
  }
}

/** Probes http://127.0.0.1:9099/readyz inside a node's namespace until 200, in one process. */
const READY_PROBE = `
const deadline = Date.now() + Number(Deno.args[0]);
let last = "no answer";
while (Date.now() < deadline) {
  try {
    const r = await fetch("http://127.0.0.1:${HEALTH_PORT}/readyz");
    last = r.status + " " + (await r.text()).trim().slice(0, 200);
    if (r.status === 200) Deno.exit(0);
  } catch (e) { last = String(e.message ?? e).split("\\n")[0]; }
  await new Promise((r) => setTimeout(r, 200));
}
console.log(last);
Deno.exit(1);
`;

async function waitReady(state: DemoState, node: NodePlan, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const pid = state.agents.find((a) => a.node === node.name)?.pid ?? 0;
  while (!(await exists(node.subnetFile))) {
    checkInterrupted();
    if (!alive(pid)) {
      throw new StepError(
        `the agent on ${node.name} exited; its log ends:\n${await tail(node.log)}`,
      );
    }
    if (Date.now() > deadline) {
      throw new StepError(
        `${node.name} wrote no subnet file (${node.subnetFile}) within ${
          timeoutMs / 1000
        } s; its log ends:\n${await tail(node.log)}`,
      );
    }
    await sleep(100);
  }
  const left = Math.max(1000, deadline - Date.now());
  const r = await run("ip", [
    "netns",
    "exec",
    node.ns,
    Deno.execPath(),
    "eval",
    READY_PROBE,
    String(left),
  ], { signal: abort.signal });
  checkInterrupted();
  if (r.code !== 0) {
    throw new StepError(
      `${node.name}'s /readyz did not answer 200 (last: ${
        r.stdout.trim() || r.stderr.trim()
      }); its log ends:\n${await tail(node.log)}`,
    );
  }
  const env = parseSubnetEnvSubnets(await Deno.readTextFile(node.subnetFile));
  return `${node.name} ready, subnet ${env.subnet ? formatCIDR(env.subnet) : "?"}`;
}

async function cniAdd(plan: DemoPlan, node: NodePlan, pod: PodPlan): Promise<string> {
  await must("ip", "-n", pod.ns, "link", "set", "lo", "up");
  const r = await run("ip", ["netns", "exec", node.ns, plan.launcher], {
    stdin: JSON.stringify(cniConfig(node)),
    env: {
      ...Deno.env.toObject(),
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: pod.containerId,
      CNI_NETNS: `/var/run/netns/${pod.ns}`,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/opt/cni/bin",
      NO_COLOR: "1",
    },
  });
  let result: unknown;
  try {
    result = JSON.parse(r.stdout);
  } catch {
    throw new StepError(
      `CNI ADD for ${pod.name} printed no JSON (exit ${r.code}): ${
        (r.stderr.trim() || r.stdout.trim()).split("\n").pop()
      }`,
    );
  }
  if (r.code !== 0) {
    const e = result as { code?: number; msg?: string; details?: string };
    throw new StepError(
      `CNI ADD for ${pod.name} failed with code ${e.code}: ${e.msg}${
        e.details ? ` (${e.details})` : ""
      }`,
    );
  }
  const ip = podAddress(result);
  if (!ip) {
    throw new StepError(`CNI ADD for ${pod.name} returned no IPv4 address: ${r.stdout.trim()}`);
  }
  return ip;
}

async function pingOnce(from: PodReport, to: PodReport): Promise<boolean> {
  for (let attempt = 0; attempt < 3 && !abort.signal.aborted; attempt++) {
    const ping = ["netns", "exec", from.ns, "ping", "-n", "-q", "-c", "1", "-W", "2", to.ip];
    const r = await run("ip", ping, { signal: abort.signal });
    if (r.code === 0) return true;
  }
  return false;
}

function votersIn(plan: DemoPlan, roles: Map<string, string>): number {
  return plan.nodes.filter((n) => {
    const r = displayRole(roles.get(n.address) ?? roles.get(n.name));
    return r === "leader" || r === "voter";
  }).length;
}

async function storeRoles(plan: DemoPlan): Promise<Map<string, string>> {
  const first = plan.nodes[0];
  const r = await run("ip", [
    "netns",
    "exec",
    first.ns,
    plan.launcher,
    "ctl",
    "--server",
    `${first.address}:${STORE_PORT}`,
    "--data-dir",
    first.dataDir,
    "--json",
    "status",
  ]);
  if (r.code !== 0) return new Map();
  try {
    return rolesFromStatus(JSON.parse(r.stdout));
  } catch {
    return new Map();
  }
}

async function vtepMac(node: NodePlan): Promise<string> {
  const r = await run("ip", ["-n", node.ns, "-j", "link", "show", "flannel.1"]);
  if (r.code !== 0) return "?";
  return (JSON.parse(r.stdout) as { address?: string }[])[0]?.address ?? "?";
}

// ---------------------------------------------------------------------------------------------
// Main.

const USAGE = `usage: deno task demo [-- --keep | --down] [--state-dir D] [--report F]
  (no flag)      build a ${3}-node cluster in namespaces ${PREFIX}*, attach pods, ping, tear down
  --keep         leave the cluster running and print how to look around
  --down         remove everything a previous demo made (agents, namespaces, state dir)
  --state-dir D  where nodes keep their data (default ${DEFAULT_STATE_DIR})
  --report F     also write the result (nodes, pods, ping matrix, step timings) as JSON to F
  --nodes N      how many nodes (default 3, 1..9); --pods N: pods per node (default 2)
  --agent-args A more flags for every \`twill agent\`, e.g. --agent-args="--ip-masq"
  --prefix P     namespace prefix, "${PREFIX}" or "${PREFIX}<letters/digits>-" (default ${PREFIX})`;

/** The join token the --init node wrote to <data-dir>/join-token (0600). */
async function readJoinToken(node: NodePlan): Promise<string> {
  return (await Deno.readTextFile(`${node.dataDir}/join-token`)).trim();
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function demo(argv: string[]): Promise<number> {
  let flags;
  try {
    flags = parseArgs({
      // `deno task demo -- --keep` hands the script a literal "--" first.
      args: argv.filter((a, i) => !(a === "--" && i === 0)),
      options: {
        keep: { type: "boolean", default: false },
        down: { type: "boolean", default: false },
        "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
        report: { type: "string" },
        nodes: { type: "string", default: "3" },
        pods: { type: "string", default: "2" },
        "agent-args": { type: "string", default: "" },
        prefix: { type: "string", default: PREFIX },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: false,
    }).values;
  } catch (e) {
    console.error(`demo: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  const nodeCount = Number(flags.nodes);
  const podsPerNode = Number(flags.pods);
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 9) {
    console.error(`demo: --nodes must be a whole number from 1 to 9, not "${flags.nodes}"`);
    return 2;
  }
  if (!Number.isInteger(podsPerNode) || podsPerNode < 1 || podsPerNode > 9) {
    console.error(`demo: --pods must be a whole number from 1 to 9, not "${flags.pods}"`);
    return 2;
  }
  if (Deno.uid() !== 0) {
    console.error("demo: needs root (it creates network namespaces); run it with sudo or as root");
    return 1;
  }
  if (!validPrefix(flags.prefix!)) {
    console.error(
      `demo: --prefix must be "${PREFIX}" or "${PREFIX}" + up to 12 letters/digits + "-", not "${flags.prefix}"`,
    );
    return 2;
  }
  const plan = planDemo(flags["state-dir"]!, nodeCount, podsPerNode, flags.prefix);
  const extraArgs = flags["agent-args"]!.split(/\s+/).filter(Boolean);

  if (flags.down) {
    const removed = await teardown(plan);
    console.log(removed.length ? `demo: removed ${removed.join(", ")}` : "demo: nothing to remove");
    return 0;
  }

  const report: DemoReport = { ok: false, nodes: [], pods: [], matrix: {}, steps: [] };
  const total = 9;
  let n = 0;
  const started = performance.now();
  const step = async (title: string, fn: () => Promise<string>): Promise<void> => {
    n++;
    const t0 = performance.now();
    const label = `[${String(n).padStart(2)}/${total}] ${title}`;
    try {
      checkInterrupted();
      const detail = await fn();
      checkInterrupted();
      const secs = (performance.now() - t0) / 1000;
      report.steps.push({ step: title, seconds: Number(secs.toFixed(3)) });
      console.log(`${label.padEnd(44)} ${secs.toFixed(2).padStart(6)} s  ${detail}`);
    } catch (e) {
      const secs = (performance.now() - t0) / 1000;
      console.log(`${label.padEnd(44)} ${secs.toFixed(2).padStart(6)} s  FAILED`);
      report.failedStep = title;
      report.error = (e as Error).message;
      throw e;
    }
  };

  // Ctrl-C or SIGTERM: the running step is cut short at its next check, then the usual failure
  // path removes what was made and the demo exits 130. A second signal exits at once.
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) {
      console.log(
        `demo: interrupted again; run 'npx -y deno@2.9.6 task demo -- --down' to clean up`,
      );
      Deno.exit(130);
    }
    interrupted = true;
    abort.abort();
    console.log("\ndemo: interrupted; removing what it made once the current step stops");
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  // The join secret the first node starts with; joiners get its join token (K10<ca hash>::secret)
  // from its data dir once it has made the cluster CA.
  const secret = randomToken();
  const state: DemoState = { namespaces: [], agents: [] };
  let code = 1;
  try {
    await step("check packages", ensurePackages);
    await step("remove a previous demo", async () => {
      const removed = await teardown(plan);
      return removed.length ? `removed ${removed.length} leftovers` : "none found";
    });
    await writeState(plan, state);
    await step("cache twill's modules", () => cacheModules(plan));
    await step("build underlay and nodes", () => buildUnderlay(plan, state));
    await step(`start agent ${plan.nodes[0].name} (--init)`, async () => {
      await Deno.writeTextFile(plan.netConfFile, netConf());
      await startAgent(plan, state, plan.nodes[0], secret, true, extraArgs);
      return await waitReady(state, plan.nodes[0], 30_000);
    });
    if (plan.nodes.length > 1) {
      await step(`join ${plan.nodes.slice(1).map((x) => x.name).join(", ")} (--join)`, async () => {
        const joinToken = await readJoinToken(plan.nodes[0]);
        for (const node of plan.nodes.slice(1)) {
          await startAgent(plan, state, node, joinToken, false, extraArgs);
        }
        const lines = await Promise.all(
          plan.nodes.slice(1).map((node) => waitReady(state, node, 45_000)),
        );
        return lines.join("; ");
      });
    } else {
      n++;
    }
    await step(`attach ${plan.pods.length} pods (CNI ADD)`, async () => {
      for (const pod of plan.pods) await addNamespace(plan, state, pod.ns);
      const ips = await Promise.all(
        plan.pods.map((pod) => cniAdd(plan, plan.nodes.find((x) => x.name === pod.node)!, pod)),
      );
      report.pods = plan.pods.map((pod, i) => ({
        name: pod.name,
        node: pod.node,
        ns: pod.ns,
        ip: ips[i],
      }));
      return report.pods.map((p) => `${p.name}=${p.ip}`).join(" ");
    });
    await step("ping every pod from every pod", async () => {
      const pairs = report.pods.flatMap((from) =>
        report.pods.filter((to) => to !== from).map((to) => [from, to] as const)
      );
      const results = await Promise.all(pairs.map(([from, to]) => pingOnce(from, to)));
      pairs.forEach(([from, to], i) => {
        (report.matrix[from.name] ??= {})[to.name] = results[i];
      });
      const good = results.filter(Boolean).length;
      return `${good}/${pairs.length} pairs answered`;
    });
    await step("collect status", async () => {
      // Learners are promoted one at a time once caught up: give that a moment, so the table
      // shows the settled store (up to 3 voters, the default --voters) rather than a snapshot.
      const wanted = Math.min(plan.nodes.length, 3);
      let roles = await storeRoles(plan);
      for (let i = 0; i < 25 && votersIn(plan, roles) < wanted; i++) {
        checkInterrupted();
        await sleep(200);
        roles = await storeRoles(plan);
      }
      for (const node of plan.nodes) {
        const env = parseSubnetEnvSubnets(await Deno.readTextFile(node.subnetFile));
        report.nodes.push({
          name: node.name,
          ns: node.ns,
          address: node.address,
          subnet: env.subnet ? formatCIDR(env.subnet) : "?",
          vtepMac: await vtepMac(node),
          role: displayRole(roles.get(node.address) ?? roles.get(node.name)),
        });
      }
      return roles.size
        ? "store roles from twill ctl status"
        : "store roles unknown (twill ctl status gave none)";
    });
    report.ok = matrixAllGreen(report);
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    console.log(
      `\nnodes (pod network ${POD_NETWORK}, vxlan VNI 1 on UDP 8472):\n${renderNodes(report)}`,
    );
    console.log(`\n/metrics of each node:\n${renderMetricsWhere(report)}`);
    console.log(`\npod-to-pod ping matrix:\n${renderMatrix(report)}\n`);
    console.log(
      report.ok
        ? `demo: all pods reach each other (${secs} s)`
        : `demo: some pods cannot reach each other (${secs} s)`,
    );
    code = report.ok ? 0 : 1;
  } catch (e) {
    if (!report.error) {
      report.failedStep = "(unexpected)";
      report.error = (e as Error).message;
    }
    console.error(`demo: step "${report.failedStep}" failed: ${report.error}`);
    code = interrupted ? 130 : 1;
  }
  if (flags.report) await Deno.writeTextFile(flags.report, JSON.stringify(report, null, 2) + "\n");
  if (interrupted && code === 0) code = 130; // interrupted after the last step: still clean up
  if (flags.keep && code === 0) {
    for (const c of children.values()) c.unref();
    console.log("\n" + keepHints(plan, report));
  } else {
    if (flags.keep) console.log("demo: not keeping a cluster that failed");
    const t0 = performance.now();
    await teardown(plan);
    console.log(
      `demo: removed everything it made (${((performance.now() - t0) / 1000).toFixed(2)} s)`,
    );
  }
  Deno.removeSignalListener("SIGINT", onSignal);
  Deno.removeSignalListener("SIGTERM", onSignal);
  return code;
}

if (import.meta.main) Deno.exit(await demo(Deno.args));
