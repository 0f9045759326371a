// Test topology in network namespaces this test creates (prefix twa-), removed by exact name:
//   <p>ul   the underlay: bridge br0 10.99.0.254/24 (+ 203.0.113.1/24 playing "internet"),
//           etcd on 10.99.0.254:22379
//   <p>nN   node N: eth0 10.99.0.N/24 (veth to br0), default route via 10.99.0.254
//   <p>pN   a pod on node N: eth0 <subnet>.2 on the node's cni0 bridge (<subnet>.1)
// Nothing here touches the root namespace.
import { requireTools } from "../support/tools.ts";

export async function sh(
  args: string[],
  opts: { allowFail?: boolean; stdin?: string } = {},
): Promise<{ code: number; out: string; err: string }> {
  const c = new Deno.Command(args[0], {
    args: args.slice(1),
    stdin: opts.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = c.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const o = await c.output();
  const r = {
    code: o.code,
    out: new TextDecoder().decode(o.stdout),
    err: new TextDecoder().decode(o.stderr),
  };
  if (r.code !== 0 && !opts.allowFail) {
    throw new Error(`${args.join(" ")} failed (${r.code}): ${r.err.trim()}`);
  }
  return r;
}

export function inNs(ns: string, args: string[]): string[] {
  return ["ip", "netns", "exec", ns, ...args];
}

export class Topology {
  readonly ul: string;
  readonly namespaces: string[] = [];
  readonly dir: string;
  readonly prefix: string;
  /**
   * `base` + a random tag, so two runs of the suite at once (two engineers, CI) never touch
   * each other's namespaces: e.g. twa-v3kq-n1.
   */
  constructor(base: string, readonly nodes: number, dir: string, exact = false) {
    const tag = crypto.getRandomValues(new Uint32Array(1))[0].toString(36).slice(0, 4);
    this.prefix = exact ? base : `${base}${tag}-`;
    this.ul = `${this.prefix}ul`;
    this.dir = dir;
  }

  node(n: number): string {
    return `${this.prefix}n${n}`;
  }
  pod(n: number): string {
    return `${this.prefix}p${n}`;
  }
  nodeIp(n: number): string {
    return `10.99.0.${n}`;
  }

  private async addNs(name: string) {
    await sh(["ip", "netns", "del", name], { allowFail: true });
    await sh(["ip", "netns", "add", name]);
    this.namespaces.push(name);
    await sh(["ip", "-n", name, "link", "set", "lo", "up"]);
    if (this.ipv6) {
      // no duplicate address detection: addresses are usable at once
      for (const k of ["all", "default"]) {
        await sh(inNs(name, ["sysctl", "-qw", `net.ipv6.conf.${k}.accept_dad=0`]));
      }
    }
  }

  /** Dual stack: nodes get fd99::N/64 on eth0 too, pods an address of the IPv6 subnet. */
  ipv6 = false;

  async create(): Promise<void> {
    requireTools(["ip", "nft", "sysctl", "curl", "ping"]);
    await this.addNs(this.ul);
    const ul = this.ul;
    await sh(["ip", "-n", ul, "link", "add", "br0", "type", "bridge"]);
    await sh(["ip", "-n", ul, "addr", "add", "10.99.0.254/24", "dev", "br0"]);
    await sh(["ip", "-n", ul, "addr", "add", "203.0.113.1/24", "dev", "br0"]);
    await sh(["ip", "-n", ul, "link", "set", "br0", "up"]);
    for (let n = 1; n <= this.nodes; n++) {
      const ns = this.node(n);
      await this.addNs(ns);
      await sh([
        "ip",
        "-n",
        ul,
        "link",
        "add",
        `vn${n}`,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns,
      ]);
      await sh(["ip", "-n", ul, "link", "set", `vn${n}`, "master", "br0", "up"]);
      await sh(["ip", "-n", ns, "addr", "add", `${this.nodeIp(n)}/24`, "dev", "eth0"]);
      await sh(["ip", "-n", ns, "link", "set", "eth0", "up"]);
      await sh(["ip", "-n", ns, "route", "add", "default", "via", "10.99.0.254"]);
      await sh(inNs(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
      if (this.ipv6) {
        await sh(inNs(ns, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]));
        await sh(["ip", "-n", ns, "addr", "add", `fd99::${n}/64`, "dev", "eth0", "nodad"]);
      }
    }
    if (this.ipv6) {
      await sh(["ip", "-n", ul, "addr", "add", "fd99::fe/64", "dev", "br0", "nodad"]);
    }
  }

  /** A pod on node n: cni0 bridge with <subnet>.1, pod eth0 <subnet>.2, MTU from subnet.env. */
  async addPod(n: number, subnetEnv: string): Promise<string> {
    const vars = Object.fromEntries(
      subnetEnv.trim().split("\n").map((l) => l.split("=") as [string, string]),
    );
    const [gw, len] = vars.FLANNEL_SUBNET.split("/");
    const mtu = vars.FLANNEL_MTU;
    const podIp = gw.replace(/\.1$/, ".2");
    const node = this.node(n);
    const pod = this.pod(n);
    await this.addNs(pod);
    await sh(["ip", "-n", node, "link", "add", "cni0", "type", "bridge"], { allowFail: true });
    await sh(["ip", "-n", node, "addr", "replace", `${gw}/${len}`, "dev", "cni0"]);
    await sh(["ip", "-n", node, "link", "set", "cni0", "mtu", mtu, "up"]);
    await sh([
      "ip",
      "-n",
      node,
      "link",
      "add",
      `vp${n}`,
      "mtu",
      mtu,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      pod,
    ]);
    await sh(["ip", "-n", node, "link", "set", `vp${n}`, "master", "cni0", "up"]);
    await sh(["ip", "-n", pod, "link", "set", "eth0", "mtu", mtu, "up"]);
    await sh(["ip", "-n", pod, "addr", "add", `${podIp}/${len}`, "dev", "eth0"]);
    await sh(["ip", "-n", pod, "route", "add", "default", "via", gw]);
    if (vars.FLANNEL_IPV6_SUBNET) {
      const [gw6, len6] = vars.FLANNEL_IPV6_SUBNET.split("/");
      await sh(["ip", "-n", node, "addr", "replace", `${gw6}/${len6}`, "dev", "cni0", "nodad"]);
      const pod6 = gw6.replace(/::1$/, "::2");
      await sh(["ip", "-n", pod, "addr", "add", `${pod6}/${len6}`, "dev", "eth0", "nodad"]);
      await sh(["ip", "-n", pod, "-6", "route", "add", "default", "via", gw6]);
    }
    return podIp;
  }

  async destroy(): Promise<void> {
    for (const ns of [...this.namespaces].reverse()) {
      await sh(["ip", "netns", "del", ns], { allowFail: true });
    }
  }
}

export interface AgentProc {
  node: number;
  child: Deno.ChildProcess;
  log: () => string;
  stop(sig?: Deno.Signal): Promise<number>;
}

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** How an agent process is started. */
export type AgentMode =
  /** `main.ts agent --etcd-endpoints …` (the real binary, no embedded store) */
  | { kind: "main-etcd"; etcd: string }
  /** `main.ts agent` with the embedded store: --init on node 1, --join, or a plain restart */
  | { kind: "main-embedded"; token: string; role: "init" | "join" | "restart"; netConf?: string };

export function startAgent(
  t: Topology,
  n: number,
  extra: string[],
  mode: AgentMode,
): AgentProc {
  const dir = `${t.dir}/n${n}`;
  const common = [
    "--subnet-file",
    `${dir}/subnet.env`,
    "--data-dir",
    `${dir}/data`,
    "--healthz-ip",
    "127.0.0.1",
    "--healthz-port",
    "9099",
    "--name",
    `n${n}`,
  ];
  const deno = [Deno.execPath(), "run", "-A", "--no-check"];
  let cmd: string[];
  if (mode.kind === "main-etcd") {
    cmd = [...deno, "--config", CONFIG, MAIN, "agent", "--etcd-endpoints", mode.etcd, ...common];
  } else {
    const addr = `${t.nodeIp(n)}:8473`;
    const role = mode.role === "init"
      ? ["--init", "--token", mode.token, "--net-config-path", mode.netConf ?? ""]
      : mode.role === "join"
      ? ["--join", `${t.nodeIp(1)}:8473`, "--token", joinTokenFor(t, mode.token)]
      : [];
    cmd = [
      ...deno,
      "--config",
      CONFIG,
      MAIN,
      "agent",
      ...role,
      "--listen",
      addr,
      "--advertise",
      addr,
      ...common,
    ];
  }
  const args = ["netns", "exec", t.node(n), ...cmd, ...extra];
  // No update check: it would put a DNS query on the underlay that captures must not see.
  const child = new Deno.Command("ip", {
    args,
    env: { DENO_NO_UPDATE_CHECK: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    for await (const c of s) text += d.decode(c);
  };
  const done = Promise.all([pump(child.stdout), pump(child.stderr)]);
  return {
    node: n,
    child,
    log: () => text,
    async stop(sig: Deno.Signal = "SIGTERM") {
      try {
        child.kill(sig);
      } catch { /* exited */ }
      const st = await child.status;
      await done;
      return st.code;
    },
  };
}

/** A join needs the join token (K10<ca hash>::secret), which exists once node 1 made the CA: a
 *  bare secret given by a test becomes node 1's join token. */
export function joinTokenFor(t: Topology, given: string): string {
  if (given.startsWith("K10")) return given;
  return Deno.readTextFileSync(`${t.dir}/n1/data/join-token`).trim();
}

export async function httpStatus(ns: string, path: string): Promise<number> {
  const r = await sh(
    inNs(ns, [
      "curl",
      "-s",
      "-o",
      "/dev/null",
      "-m",
      "2",
      "-w",
      "%{http_code}",
      `http://127.0.0.1:9099${path}`,
    ]),
    { allowFail: true },
  );
  return Number(r.out) || 0;
}

export async function httpBody(ns: string, path: string): Promise<string> {
  return (await sh(inNs(ns, ["curl", "-s", "-m", "2", `http://127.0.0.1:9099${path}`]))).out;
}

export async function waitFor(
  what: string,
  fn: () => Promise<boolean>,
  timeoutMs = 20_000,
  stepMs = 100,
): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (await fn()) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Where the store's v3 JSON API is reachable from: a namespace, an endpoint, a credential, and
 *  the CA file that verifies an https endpoint. */
export interface StoreAccess {
  ns: string;
  endpoint: string;
  token?: string;
  caFile?: string;
}

/** The embedded store through node `n`'s member, as node 1's admin (it may do everything). */
export function embeddedAccess(t: Topology, n: number): StoreAccess {
  const data = `${t.dir}/n1/data`;
  return {
    ns: t.node(n),
    endpoint: `https://${t.nodeIp(n)}:8473`,
    token: Deno.readTextFileSync(`${data}/admin-credential`).trim(),
    caFile: `${data}/pki/ca.crt`,
  };
}

export function etcdAccess(t: Topology): StoreAccess {
  return { ns: t.ul, endpoint: "http://10.99.0.254:22379" };
}

/** v3 JSON API calls made with curl from inside the namespace that reaches the store. */
export async function storeCall(s: StoreAccess, path: string, body: unknown): Promise<unknown> {
  const auth = s.token ? ["-H", `Authorization: Bearer ${s.token}`] : [];
  if (s.caFile) auth.push("--cacert", s.caFile);
  const r = await sh(
    inNs(s.ns, [
      "curl",
      "-s",
      "-m",
      "5",
      ...auth,
      `${s.endpoint}${path}`,
      "-d",
      JSON.stringify(body),
    ]),
  );
  return JSON.parse(r.out);
}

export function b64(s: string): string {
  return btoa(s);
}

export async function storePut(s: StoreAccess, key: string, value: string): Promise<void> {
  await storeCall(s, "/v3/kv/put", { key: b64(key), value: b64(value) });
}

export async function storeDel(s: StoreAccess, key: string): Promise<void> {
  await storeCall(s, "/v3/kv/deleterange", { key: b64(key) });
}

export async function storeList(s: StoreAccess, prefix: string): Promise<Map<string, string>> {
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const r = await storeCall(s, "/v3/kv/range", { key: b64(prefix), range_end: b64(end) }) as {
    kvs?: { key: string; value: string }[];
  };
  return new Map((r.kvs ?? []).map((kv) => [atob(kv.key), atob(kv.value)]));
}

export const etcdPut = (t: Topology, k: string, v: string) => storePut(etcdAccess(t), k, v);
export const etcdDel = (t: Topology, k: string) => storeDel(etcdAccess(t), k);
export const etcdList = (t: Topology, p: string) => storeList(etcdAccess(t), p);
