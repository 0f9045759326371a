// The agent end to end on any backend: N namespace nodes (tests/e2e/topology.ts) running real
// agents with the embedded store (--init on node 1, --join on the others) on a net-conf.json whose
// Backend the caller gives; a pod per node; pings across all pairs; a DF ping at the announced
// FLANNEL_MTU; a capture on the underlay bridge whose lines the caller checks for what must not
// appear. BackendCluster is the toolkit (restart, remove a node, captures); backendScenario runs
// the common steps. Every process left in a test namespace (an agent, a wireguard-go, a charon)
// is ended by pid at close, and the namespaces removed by exact name.
import assert from "node:assert/strict";
import { requireTools } from "../support/tools.ts";
import {
  type AgentMode,
  type AgentProc,
  embeddedAccess,
  httpStatus,
  inNs,
  sh,
  startAgent,
  type StoreAccess,
  storeDel,
  storeList,
  Topology,
  waitFor,
} from "./topology.ts";

export const LEASE_PREFIX = "/coreos.com/network";
const TOKEN = "twb-e2e-join-secret";

export interface ClusterOptions {
  /** Namespace prefix unique to the test (a random tag is appended). */
  prefix: string;
  /** net-conf.json's Backend object. */
  backend: Record<string, unknown>;
  network?: string;
  nodes?: number;
  /** Extra agent flags. */
  agentArgs?: string[];
}

/** One parsed lease value, keyed by the node that holds it. */
export interface NodeLease {
  key: string;
  value: Record<string, unknown>;
}

export async function ping(fromNs: string, ip: string, extra: string[] = []): Promise<boolean> {
  const r = await sh(inNs(fromNs, ["ping", "-c", "1", "-W", "1", ...extra, ip]), {
    allowFail: true,
  });
  return r.code === 0;
}

/** Lines a tcpdump saw while it ran, once stopped. */
export interface Capture {
  stop(): Promise<string[]>;
}

/** tcpdump in namespace `ns` on `iface` (line-buffered, numeric); `filter` is a pcap filter. */
export function startCapture(ns: string, iface: string, filter: string[] = []): Capture {
  const child = new Deno.Command("ip", {
    args: inNs(ns, ["tcpdump", "-n", "-l", "-i", iface, ...filter]).slice(1),
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let text = "";
  const pump = (async () => {
    const d = new TextDecoder();
    for await (const c of child.stdout) text += d.decode(c);
  })();
  return {
    async stop() {
      // let the last packets reach the line buffer
      await new Promise((r) => setTimeout(r, 300));
      try {
        child.kill("SIGINT");
      } catch { /* exited */ }
      await child.status;
      await pump;
      return text.split("\n").filter((l) => l.trim());
    },
  };
}

export class BackendCluster {
  readonly agents = new Map<number, AgentProc>();
  /** subnet.env text per node. */
  readonly env = new Map<number, string>();
  readonly podIp = new Map<number, string>();
  readonly n: number;

  private constructor(readonly topo: Topology, readonly dir: string, readonly o: ClusterOptions) {
    this.n = o.nodes ?? 3;
  }

  /** The store through node 1's member, as its admin (over TLS, verified by the cluster CA);
   *  known once node 1 has started. */
  get store(): StoreAccess {
    return embeddedAccess(this.topo, 1);
  }

  /** Namespaces up, net-conf written; no agent yet. */
  static async create(o: ClusterOptions): Promise<BackendCluster> {
    requireTools(["tcpdump", "ping", "ip"]);
    const dir = await Deno.makeTempDir({ prefix: `${o.prefix}-e2e-` });
    const c = new BackendCluster(new Topology(o.prefix, o.nodes ?? 3, dir), dir, o);
    const netConf = { Network: o.network ?? "10.50.0.0/16", Backend: o.backend };
    await Deno.writeTextFile(`${dir}/net-conf.json`, JSON.stringify(netConf));
    try {
      await c.topo.create();
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  mode(n: number, restart = false): AgentMode {
    return {
      kind: "main-embedded",
      token: TOKEN,
      role: restart ? "restart" : n === 1 ? "init" : "join",
      netConf: `${this.dir}/net-conf.json`,
    };
  }

  dataDir(n: number): string {
    return `${this.dir}/n${n}/data`;
  }

  async waitReady(n: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `n${n} /readyz`,
      async () => (await httpStatus(this.topo.node(n), "/readyz")) === 200,
      timeoutMs,
    ).catch((e) => {
      throw new Error(`${e.message}\n${this.agents.get(n)?.log() ?? ""}`);
    });
  }

  /** Starts every agent (node 1 first: the others join it) and reads each subnet.env. */
  async startAll(): Promise<void> {
    for (let n = 1; n <= this.n; n++) {
      this.agents.set(n, startAgent(this.topo, n, this.o.agentArgs ?? [], this.mode(n)));
      await this.waitReady(n);
      this.env.set(n, await Deno.readTextFile(`${this.dir}/n${n}/subnet.env`));
    }
  }

  /** Starts node n's agent and waits for it to exit (a refusal at start): code and output. */
  async startExpectingExit(n: number, timeoutMs = 30_000): Promise<{ code: number; log: string }> {
    const a = startAgent(this.topo, n, this.o.agentArgs ?? [], this.mode(n));
    this.agents.set(n, a);
    const code = await Promise.race([
      a.child.status.then((s) => s.code),
      new Promise<null>((r) => setTimeout(() => r(null), timeoutMs)),
    ]);
    if (code === null) throw new Error(`agent n${n} still runs after ${timeoutMs} ms\n${a.log()}`);
    return { code, log: (await a.stop(), a.log()) };
  }

  envVar(n: number, name: string): string {
    const m = this.env.get(n)!.match(new RegExp(`^${name}=(.*)$`, "m"));
    assert.ok(m, `${name} in node ${n}'s subnet.env`);
    return m[1];
  }

  mtu(n = 1): number {
    return Number(this.envVar(n, "FLANNEL_MTU"));
  }

  /** "10.50.7.0/24" for node n. */
  subnet(n: number): string {
    return this.envVar(n, "FLANNEL_SUBNET").replace(/\.1\//, ".0/");
  }

  /** The leases in the store, by node number (matched on PublicIP). */
  async leases(): Promise<Map<number, NodeLease>> {
    const all = await storeList(this.store, `${LEASE_PREFIX}/subnets/`);
    const out = new Map<number, NodeLease>();
    for (const [key, v] of all) {
      const value = JSON.parse(v) as Record<string, unknown>;
      const n = Number(String(value.PublicIP).split(".").pop());
      out.set(n, { key, value });
    }
    return out;
  }

  async deleteLease(n: number): Promise<void> {
    const l = (await this.leases()).get(n);
    if (l) await storeDel(this.store, l.key);
  }

  async addPods(): Promise<void> {
    for (let n = 1; n <= this.n; n++) {
      this.podIp.set(n, await this.topo.addPod(n, this.env.get(n)!));
    }
  }

  /** Every ordered pair of pods reaches the other (each waited for up to timeoutMs). */
  async pingAllPairs(timeoutMs = 15_000, nodes?: number[]): Promise<void> {
    const ns = nodes ?? [...this.podIp.keys()];
    for (const a of ns) {
      for (const b of ns) {
        if (a === b) continue;
        await waitFor(
          `pod ${a} → pod ${b}`,
          () => ping(this.topo.pod(a), this.podIp.get(b)!),
          timeoutMs,
        );
      }
    }
  }

  /** A ping of exactly `bytes` bytes (IP packet size) with DF set. */
  dfPing(a: number, b: number, bytes: number): Promise<boolean> {
    return ping(this.topo.pod(a), this.podIp.get(b)!, ["-M", "do", "-s", String(bytes - 28)]);
  }

  captureUnderlay(filter: string[] = []): Capture {
    return startCapture(this.topo.ul, "br0", filter);
  }

  /** Stops node n's agent (SIGTERM: it leaves the data plane) and starts it again. */
  async restart(n: number, signal: Deno.Signal = "SIGTERM"): Promise<void> {
    await this.agents.get(n)!.stop(signal);
    this.agents.set(n, startAgent(this.topo, n, this.o.agentArgs ?? [], this.mode(n, true)));
    await this.waitReady(n);
  }

  /** Node n leaves: its agent is killed and its lease deleted, as `twill ctl remove-node` does. */
  async removeNode(n: number): Promise<void> {
    await this.agents.get(n)?.stop("SIGKILL");
    this.agents.delete(n);
    await this.deleteLease(n);
  }

  logs(): string {
    return [...this.agents].map(([n, a]) => `--- agent n${n} log ---\n${a.log()}`).join("\n");
  }

  /** Ends every process left in the test's namespaces (by pid), then removes them. */
  async close(): Promise<void> {
    for (const a of this.agents.values()) await a.stop("SIGKILL").catch(() => {});
    for (const ns of this.topo.namespaces) await killNamespacePids(ns);
    await this.topo.destroy();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Kills the processes `ip netns pids` lists for a namespace this test created. */
export async function killNamespacePids(ns: string): Promise<void> {
  for (const sig of ["SIGTERM", "SIGKILL"] as const) {
    const r = await sh(["ip", "netns", "pids", ns], { allowFail: true });
    const pids = r.out.split(/\s+/).filter((p) => /^\d+$/.test(p)).map(Number);
    if (!pids.length) return;
    for (const pid of pids) {
      try {
        Deno.kill(pid, sig);
      } catch { /* gone */ }
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Runs fn on a created cluster; logs on failure; always closes. */
export async function withCluster(
  o: ClusterOptions,
  fn: (c: BackendCluster) => Promise<void>,
): Promise<void> {
  const c = await BackendCluster.create(o);
  try {
    await fn(c);
  } catch (e) {
    console.error(c.logs());
    throw e;
  } finally {
    await c.close();
  }
}

export interface ScenarioOptions extends ClusterOptions {
  /** FLANNEL_MTU every node must announce. */
  expectMtu: number;
  /** false: pods are not expected to reach each other (alloc). */
  pings?: boolean;
  /** Checks each node's lease value (BackendType, BackendData). */
  checkLease?: (value: Record<string, unknown>, n: number, c: BackendCluster) => Promise<void>;
  /**
   * Checks the underlay capture taken while pods ping all pairs; returns an offending line
   * (with why) or null. Default: no packet with a pod address in clear.
   */
  checkCapture?: (lines: string[], c: BackendCluster) => string | null;
  /** A pcap filter for that capture (default: everything). */
  captureFilter?: string[];
}

/** No line of a capture names an address of the pod network (a /16 like 10.50.0.0/16). */
export function noPodAddressInClear(network = "10.50.0.0/16") {
  const [a, b] = network.split(".");
  const re = new RegExp(`\\b${a}\\.${b}\\.\\d+\\.\\d+\\b`);
  return (lines: string[]): string | null => {
    const bad = lines.find((l) => re.test(l));
    return bad ? `pod address in clear on the underlay: ${bad}` : null;
  };
}

/**
 * The common steps: ready with distinct leases and the announced MTU; then (pings) pods ping all
 * pairs while the underlay is captured, a DF ping at the MTU passes and one byte more is refused.
 * `more` runs further steps on the same cluster.
 */
export async function backendScenario(
  t: Deno.TestContext,
  o: ScenarioOptions,
  more?: (c: BackendCluster) => Promise<void>,
): Promise<void> {
  await withCluster(o, async (c) => {
    // a failed step stops the scenario: later steps build on it
    const step = async (name: string, fn: () => Promise<void>) => {
      if (!(await t.step(name, fn))) throw new Error(`step failed: ${name}`);
    };
    await step("every agent becomes ready with a distinct lease and the MTU", async () => {
      await c.startAll();
      const leases = await c.leases();
      assert.equal(leases.size, c.n, "a lease per node");
      for (let n = 1; n <= c.n; n++) {
        assert.equal(c.mtu(n), o.expectMtu, `FLANNEL_MTU of node ${n}`);
        const l = leases.get(n);
        assert.ok(l, `a lease for node ${n}`);
        await o.checkLease?.(l.value, n, c);
      }
      assert.equal(new Set([...leases.values()].map((l) => l.key)).size, c.n);
    });
    await c.addPods();
    if (o.pings === false) {
      await step("pods do not reach each other (nothing programmed)", async () => {
        assert.ok(!(await ping(c.topo.pod(1), c.podIp.get(2)!)), "pod 1 → pod 2 must fail");
      });
    } else {
      await step("pods ping across all pairs; the underlay shows no pod packet", async () => {
        const cap = c.captureUnderlay(o.captureFilter);
        await new Promise((r) => setTimeout(r, 300));
        await c.pingAllPairs();
        const lines = await cap.stop();
        assert.ok(lines.length > 0, "the capture saw the pings' packets");
        const bad = (o.checkCapture ?? noPodAddressInClear(o.network))(lines, c);
        assert.equal(bad, null);
      });
      await step("a DF ping at FLANNEL_MTU passes, one byte more is refused", async () => {
        const mtu = c.mtu(1);
        assert.ok(await c.dfPing(1, 2, mtu), `DF ping of ${mtu} bytes`);
        assert.ok(!(await c.dfPing(1, 2, mtu + 1)), `DF ping of ${mtu + 1} bytes refused`);
      });
    }
    if (more) await more(c);
  });
}
