// Convergence benchmark for the network agent (run as root; everything lives in twa-bn*
// namespaces it creates and removes by exact name):
//  (a) join latency: from a new node's lease committed until every other node has its route,
//      p50/p99 over 30 joins, 3 agents;
//  (b) 1,000 synthetic peer leases written to the store: time until one agent has programmed
//      all 3,000 kernel entries, against `ip -batch`/`bridge -batch` applying the same entries
//      in a fresh namespace (the floor), same run; then the agent's RSS and idle CPU.
// Usage: deno run -A scripts/bench-converge.ts [--store etcd|embedded] [--joins 30] [--peers 1000]
//        [--json]
// Agents are the real binary (`main.ts agent`). The store is etcd 3.4 (Debian etcd-server) inside
// the underlay namespace (--etcd-endpoints), or twill's embedded store (--init/--join).
import { parseArgs } from "node:util";
import { startEtcd } from "../tests/subnet/etcd_helper.ts";
import {
  type AgentProc,
  httpStatus,
  sh,
  startAgent,
  Topology,
  waitFor,
} from "../tests/e2e/topology.ts";
import { planDataPlane } from "../lib/backend/dataplane.ts";
import { vxlanDesired } from "../lib/backend/vxlan.ts";
import { parseCIDR } from "../lib/net/cidr.ts";
import { encodeLeaseAttrs, type Lease } from "../lib/subnet/lease.ts";

const P = "/coreos.com/network";
const NET = "172.16.0.0/12";
const { values } = parseArgs({
  args: Deno.args,
  options: {
    joins: { type: "string", default: "30" },
    peers: { type: "string", default: "1000" },
    json: { type: "boolean", default: false },
    store: { type: "string", default: "etcd" },
    inner: { type: "string" },
    prefix: { type: "string" },
  },
});
const EMBEDDED = values.store === "embedded";
// etcd in the underlay namespace, or node 1's embedded store member
const ETCD = EMBEDDED ? "http://10.99.0.1:8473" : "http://10.99.0.254:22379";
const TOKEN = "twa-bench-token";
const JOINS = Number(values.joins);
// embedded: nodes 1-3 are the voters (their agents take part in (a)), 4-5 --store-only
// learners, and 6 — the measured agent of (b) — a plain client (see inner())
const NODES = EMBEDDED ? 6 : 3;
const PEERS = Number(values.peers);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

async function etcd(path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${ETCD}${path}`, {
    method: "POST",
    // etcd without auth refuses an unknown token, so the header goes to twill only
    headers: EMBEDDED ? { authorization: `Bearer ${TOKEN}` } : {},
    signal: AbortSignal.timeout(15_000),
    body: JSON.stringify(body),
  });
  return await r.json();
}

function mac(i: number): string {
  return `02:bb:00:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${
    ((i >> 8) & 255).toString(16).padStart(2, "0")
  }:${(i & 255).toString(16).padStart(2, "0")}`;
}

function synthetic(
  i: number,
  base: number,
): { key: string; value: string; subnet: string; lease: Lease } {
  const n = base + i;
  const subnet = `172.${16 + (n >> 8)}.${n & 255}.0/24`;
  const attrs = {
    publicIP: `100.64.${(i >> 8) & 255}.${i & 255}`,
    publicIPv6: null,
    backendType: "vxlan",
    backendData: { VNI: 1, VtepMAC: mac(n) },
  };
  return {
    key: `${P}/subnets/${subnet.replace("/", "-")}`,
    value: encodeLeaseAttrs(attrs),
    subnet,
    lease: {
      subnet: parseCIDR(subnet),
      ipv6Subnet: null,
      attrs,
      modRevision: 0n,
      storeLease: 0n,
      expiresAt: null,
    },
  };
}

/** `ip -n ns monitor route`, calling back with each line and its arrival time. */
function monitorRoutes(
  ns: string,
  onLine: (line: string, at: number) => void,
): () => Promise<void> {
  const child = new Deno.Command("ip", {
    args: ["-n", ns, "monitor", "route"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const done = (async () => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of child.stdout) {
      const at = performance.now();
      buf += dec.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, i), at);
        buf = buf.slice(i + 1);
      }
    }
  })();
  return async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    await done;
  };
}

async function cpuTicks(pid: number): Promise<number> {
  const f = (await Deno.readTextFile(`/proc/${pid}/stat`)).split(") ")[1].split(" ");
  // utime + stime, plus cutime + cstime: the ip/bridge children it ran and waited for
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}

async function rssMiB(pid: number): Promise<number> {
  const s = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(s.match(/VmRSS:\s+(\d+)/)![1]) / 1024;
}

/**
 * Applies the entries of `leases` with ip/bridge -batch into a fresh namespace; ms from the first
 * spawn to the last exit. `parallel`: the ip batch (neighbours, then routes) and the bridge batch
 * (FDB) run at once, as the agent does; otherwise one after the other (FDB first, as Flannel).
 */
async function floorOnce(
  fl: string,
  leases: { lease: Lease }[],
  parallel: boolean,
): Promise<number> {
  await sh(["ip", "netns", "add", fl]);
  try {
    await sh(["ip", "-n", fl, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]);
    await sh(["ip", "-n", fl, "addr", "add", "10.98.0.1/24", "dev", "eth0"]);
    await sh(["ip", "-n", fl, "link", "set", "eth0", "up"]);
    await sh([
      "ip",
      "-n",
      fl,
      "link",
      "add",
      "flannel.1",
      "address",
      "02:cc:00:00:00:01",
      "type",
      "vxlan",
      "id",
      "1",
      "local",
      "10.98.0.1",
      "dev",
      "eth0",
      "dstport",
      "8472",
      "nolearning",
    ]);
    await sh(["ip", "-n", fl, "link", "set", "flannel.1", "up"]);
    const plan = planDataPlane(
      vxlanDesired(leases.map((l) => l.lease), "flannel.1", "10.98.0.1", null),
      { routes: [], neighs: [], fdbs: [] },
    );
    // a fresh device: nothing to delete, so plan.ipFirst holds just the neighbours
    const ip = () =>
      sh(["ip", "-n", fl, "-force", "-batch", "-"], {
        stdin: [...plan.ipFirst, ...plan.ipLast].join("\n") + "\n",
      });
    const bridge = () =>
      sh(["ip", "netns", "exec", fl, "bridge", "-force", "-batch", "-"], {
        stdin: plan.bridge.join("\n") + "\n",
      });
    const t = performance.now();
    if (parallel) await Promise.all([ip(), bridge()]);
    else {
      await bridge();
      await ip();
    }
    return performance.now() - t;
  } finally {
    await sh(["ip", "netns", "del", fl], { allowFail: true });
  }
}

// ---------------------------------------------------------------- inner: runs in the underlay ns
async function inner(dir: string, prefix: string) {
  const topo = new Topology(prefix, NODES, dir, true);
  const agents: AgentProc[] = [];
  const out: Record<string, unknown> = {};
  try {
    const netConf = `{"Network":"${NET}","Backend":{"Type":"vxlan"}}`;
    if (!EMBEDDED) {
      await etcd("/v3/kv/put", { key: btoa(`${P}/config`), value: btoa(netConf) });
    } else await Deno.writeTextFile(`${dir}/net-conf.json`, netConf);
    for (let n = 1; n <= 3; n++) {
      agents.push(
        EMBEDDED
          ? startAgent(topo, n, [], {
            kind: "main-embedded",
            token: TOKEN,
            role: n === 1 ? "init" : "join",
            netConf: `${dir}/net-conf.json`,
          })
          : startAgent(topo, n, [], { kind: "main-etcd", etcd: ETCD }),
      );
      await waitFor(
        `agent ${n} ready`,
        async () => (await httpStatus(topo.node(n), "/readyz")) === 200,
        30_000,
      ).catch((e) => {
        throw new Error(`${e.message}\n${agents[n - 1].log()}`);
      });
    }

    console.error("bench: agents ready; (a) joins");
    // (a) joins
    const seen = new Map<string, number[]>();
    const stops = [1, 2, 3].map((n) =>
      monitorRoutes(topo.node(n), (line, at) => {
        const m = line.match(/^(172\.\d+\.\d+\.0\/24) via/);
        if (m) (seen.get(m[1]) ?? seen.set(m[1], []).get(m[1])!).push(at);
      })
    );
    await new Promise((r) => setTimeout(r, 300));
    const lat: number[] = [];
    for (let i = 0; i < JOINS; i++) {
      const s = synthetic(i, 3000);
      const t0 = performance.now();
      await etcd("/v3/kv/put", { key: btoa(s.key), value: btoa(s.value) });
      await waitFor(
        `route ${s.subnet} on all nodes`,
        () => Promise.resolve((seen.get(s.subnet)?.length ?? 0) >= 3),
        10_000,
        2,
      );
      lat.push(Math.max(...seen.get(s.subnet)!) - t0);
    }
    for (const s of stops) await s();
    for (let i = 0; i < JOINS; i++) {
      await etcd("/v3/kv/deleterange", { key: btoa(synthetic(i, 3000).key) });
    }
    out.join_ms = { n: JOINS, p50: pct(lat, 50), p99: pct(lat, 99), max: Math.max(...lat) };

    console.error("bench: (b) peers");
    // The measured agent: node 1 with etcd, whose other agents stop so they do not compete
    // for the 2 cores. With the embedded store every agent of nodes 1-3 holds a store member,
    // and pausing one would pause its member too (the backlog would include its Raft catch-up,
    // which is the store's work, not the agent's). So the measured agent is node 6, a plain
    // client as most agents of a cluster are: nodes 4 and 5 join first as --store-only
    // learners (the 2 standby places), so 6 runs no store. Agents 1-3 keep running (voters)
    // and program the same peers; each run waits until they are done before resuming 6.
    let M = 1;
    let realPeers = 2;
    if (!EMBEDDED) {
      await agents[1].stop();
      await agents[2].stop();
    } else {
      for (const n of [4, 5, 6]) {
        const extra = n < 6 ? ["--store-only"] : [];
        agents.push(startAgent(topo, n, extra, {
          kind: "main-embedded",
          token: TOKEN,
          role: "join",
          netConf: `${dir}/net-conf.json`,
        }));
        await waitFor(
          `node ${n} joined`,
          async () =>
            n < 6
              ? /event=store_member_started/.test(agents[n - 1].log())
              : (await httpStatus(topo.node(n), "/readyz")) === 200,
          30_000,
        ).catch((e) => {
          throw new Error(`${e.message}\n${agents[n - 1].log()}`);
        });
      }
      if (!/event=joined_as_client/.test(agents[5].log())) {
        throw new Error(`node 6 was meant to join as a plain client:\n${agents[5].log()}`);
      }
      M = 6;
      realPeers = 3;
    }
    await new Promise((r) => setTimeout(r, 500));
    const leases = Array.from({ length: PEERS }, (_, i) => synthetic(i, 1024)); // clear of the agents’ own subnets
    const pid = agents[M - 1].child.pid;
    /** Writes the leases (8 txns of 128) and times until the last route shows on node 1. */
    const measure = async (paused: boolean) => {
      let routesSeen = 0;
      let tDone = 0;
      const want = new Set(leases.map((l) => l.subnet));
      const stopMon = monitorRoutes(topo.node(M), (line, at) => {
        const m = line.match(/^(172\.\d+\.\d+\.0\/24) via .* dev flannel\.1/);
        if (m && want.delete(m[1])) {
          routesSeen++;
          if (routesSeen === PEERS) tDone = at;
        }
      });
      await new Promise((r) => setTimeout(r, 300));
      if (paused) Deno.kill(pid, "SIGSTOP");
      const t0 = performance.now();
      for (let i = 0; i < leases.length; i += 128) {
        await etcd("/v3/kv/txn", {
          success: leases.slice(i, i + 128).map((l) => ({
            request_put: { key: btoa(l.key), value: btoa(l.value) },
          })),
        });
      }
      const tWritten = performance.now();
      if (paused && EMBEDDED) {
        // the other agents (store members) program the same peers: let them finish first
        for (const n of [1, 2, 3]) {
          await waitFor(
            `node ${n} programmed`,
            async () =>
              JSON.parse(
                (await sh(["ip", "-n", topo.node(n), "-j", "route", "show", "dev", "flannel.1"]))
                  .out,
              ).length >= PEERS,
            30_000,
            20,
          );
        }
      }
      const tResumed = performance.now();
      if (paused) Deno.kill(pid, "SIGCONT");
      await waitFor(`${PEERS} routes on node ${M}`, () => Promise.resolve(tDone > 0), 60_000, 5);
      await stopMon();
      return { t0, tWritten, tResumed, tDone };
    };
    const streaming = await measure(false);
    // remove them again, wait until the kernel is back to the 2 real peers
    const removeAll = async () => {
      for (let i = 0; i < leases.length; i += 128) {
        await etcd("/v3/kv/txn", {
          success: leases.slice(i, i + 128).map((l) => ({
            request_delete_range: { key: btoa(l.key) },
          })),
        });
      }
      await waitFor(
        "peers removed",
        async () =>
          JSON.parse(
            (await sh(["ip", "-n", topo.node(M), "-j", "route", "show", "dev", "flannel.1"])).out,
          ).length === realPeers,
        30_000,
        50,
      );
    };
    // the backlog case three times; the median is reported, with the agent's own phases from
    // its peers_programmed log lines (wall-clock, lined up with SIGCONT)
    interface Phases {
      batches: number;
      events: number;
      /** SIGCONT → the first watch response decoded by the agent */
      resumeToFirstEventMs: number;
      /** summed over batches: first event → kernel batch start (batching) */
      waitMs: number;
      /** summed over batches: the kernel batches (plan, spawn, ip/bridge) */
      applyMs: number;
      /** SIGCONT → the agent's last batch finished */
      agentDoneMs: number;
    }
    const phasesOf = (log: string, resumedAt: number): Phases => {
      const p: Phases = {
        batches: 0,
        events: 0,
        resumeToFirstEventMs: Infinity,
        waitMs: 0,
        applyMs: 0,
        agentDoneMs: 0,
      };
      for (const l of log.split("\n")) {
        if (!l.includes("event=peers_programmed")) continue;
        const f = (k: string) => Number(l.match(new RegExp(` ${k}=([\\d.]+)`))?.[1] ?? NaN);
        p.batches++;
        p.events += f("events");
        p.waitMs += f("wait_ms");
        p.applyMs += f("apply_ms");
        const at = f("received_at") - resumedAt;
        p.resumeToFirstEventMs = Math.min(p.resumeToFirstEventMs, at);
        p.agentDoneMs = Math.max(p.agentDoneMs, at + f("since_event_ms"));
      }
      return p;
    };
    const runs: {
      tDone: number;
      tWritten: number;
      tResumed: number;
      t0: number;
      phases: Phases;
    }[] = [];
    for (let rep = 0; rep < 3; rep++) {
      await removeAll();
      const mark = agents[M - 1].log().length;
      const r = await measure(true);
      await new Promise((res) => setTimeout(res, 200)); // let the log lines arrive
      const phases = phasesOf(
        agents[M - 1].log().slice(mark),
        performance.timeOrigin + r.tResumed,
      );
      runs.push({ ...r, phases });
      for (const l of agents[M - 1].log().slice(mark).split("\n")) {
        if (l.includes("event=peers_programmed")) console.error(`bench: run ${rep + 1}: ${l}`);
      }
    }
    runs.sort((x, y) => (x.tDone - x.tResumed) - (y.tDone - y.tResumed));
    const backlog = runs[1];
    const tDone = backlog.tDone, tResumed = backlog.tResumed;
    const counts = {
      routes: JSON.parse(
        (await sh(["ip", "-n", topo.node(M), "-j", "route", "show", "dev", "flannel.1"])).out,
      ).length,
      neighs: JSON.parse(
        (await sh(["ip", "-n", topo.node(M), "-j", "neigh", "show", "dev", "flannel.1"])).out,
      ).length,
      fdbs: JSON.parse(
        (await sh([
          "ip",
          "netns",
          "exec",
          topo.node(M),
          "bridge",
          "-j",
          "fdb",
          "show",
          "dev",
          "flannel.1",
        ])).out,
      )
        .filter((f: { dst?: string }) => f.dst).length,
    };

    // the floor: the same entries through ip/bridge -batch into a fresh namespace's flannel.1,
    // three times each way (fresh namespace each), median: one batch after the other, and both
    // at once (as the agent does)
    const floorOf = async (parallel: boolean) => {
      const xs: number[] = [];
      for (let rep = 0; rep < 3; rep++) {
        xs.push(await floorOnce(`${topo.prefix}floor`, leases, parallel));
      }
      return xs.sort((x, y) => x - y);
    };
    const floors = await floorOf(false);
    const floorsPar = await floorOf(true);
    const floorMs = floors[1];
    out.peers_1000 = {
      peers: PEERS,
      kernel_entries: counts,
      // all leases already in the store, agent resumed (SIGCONT) at tResumed: watch backlog →
      // kernel, the figure comparable with the floor
      backlog_to_programmed_ms: tDone - tResumed,
      store_write_ms: backlog.tWritten - backlog.t0,
      // agent running while the leases are written in 8 transactions
      streaming_from_first_write_ms: streaming.tDone - streaming.t0,
      streaming_after_last_write_ms: streaming.tDone - streaming.tWritten,
      floor_ip_batch_ms: floorMs,
      floor_runs_ms: floors,
      backlog_runs_ms: runs.map((r) => r.tDone - r.tResumed),
      floor_parallel_ms: floorsPar[1],
      floor_parallel_runs_ms: floorsPar,
      agent_phases: backlog.phases,
      ratio_vs_floor: (tDone - tResumed) / floorMs,
      ratio_vs_parallel_floor: (tDone - tResumed) / floorsPar[1],
    };

    // idle figures (CPU including the agent's child processes) of the measured agent holding
    // 1,000 peers over 30 s (6 reconcile passes of
    // 5 s, 2 re-lists of 15 s); embedded: also node 3's, an agent with its store member (voter)
    await new Promise((r) => setTimeout(r, 2000));
    const hz = 100;
    const idlePids = EMBEDDED ? [pid, agents[2].child.pid] : [pid];
    const c0 = await Promise.all(idlePids.map(cpuTicks));
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, 30_000));
    const secs = (performance.now() - w0) / 1000;
    const c1 = await Promise.all(idlePids.map(cpuTicks));
    const idle = async (i: number) => ({
      rss_mib: await rssMiB(idlePids[i]),
      cpu_percent_of_one_core: ((c1[i] - c0[i]) / hz / secs) * 100,
    });
    out.agent_idle = await idle(0);
    if (EMBEDDED) out.member_agent_idle = await idle(1);
    const metrics = (await sh([
      "ip",
      "netns",
      "exec",
      topo.node(M),
      "curl",
      "-s",
      "http://127.0.0.1:9099/metrics",
    ])).out;
    out.agent_reconcile_seconds_last = Number(
      metrics.match(/^twill_reconcile_duration_seconds (\S+)/m)?.[1],
    );
    console.log(JSON.stringify(out));
  } finally {
    for (const a of agents) await a.stop("SIGKILL");
  }
}

// ---------------------------------------------------------------- outer: topology and cleanup
async function outer() {
  const dir = await Deno.makeTempDir({ prefix: "twa-bench-" });
  const topo = new Topology("twa-bn", NODES, dir);
  let store: { stop(): Promise<void> } | null = null;
  let child: Deno.ChildProcess | null = null;
  // Interrupted (Ctrl-C, timeout): stop what runs in our namespaces, then remove them.
  const onSignal = async () => {
    try {
      child?.kill("SIGKILL");
    } catch { /* gone */ }
    for (const ns of topo.namespaces) {
      const pids = (await sh(["ip", "netns", "pids", ns], { allowFail: true })).out.split(/\s+/);
      for (const p of pids.filter((x) => x)) {
        try {
          Deno.kill(Number(p), "SIGKILL");
        } catch { /* gone */ }
      }
    }
    await store?.stop();
    await topo.destroy();
    await sh(["ip", "netns", "del", `${topo.prefix}floor`], { allowFail: true });
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await topo.create();
    if (!EMBEDDED) store = await startEtcd("10.99.0.254:22379", "10.99.0.254:22380", topo.ul);
    child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        topo.ul,
        Deno.execPath(),
        "run",
        "-A",
        "--no-check",
        new URL(import.meta.url).pathname,
        "--inner",
        dir,
        "--prefix",
        topo.prefix,
        "--joins",
        String(JOINS),
        "--peers",
        String(PEERS),
        "--store",
        values.store!,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const r = await child.output();
    const text = new TextDecoder().decode(r.stdout).trim().split("\n").pop() ?? "";
    if (r.code !== 0 || !text.startsWith("{")) {
      throw new Error(`the measurement run failed (exit ${r.code})`);
    }
    const res = JSON.parse(text);
    if (values.json) {
      console.log(JSON.stringify(res, null, 2));
    } else {
      const j = res.join_ms, p = res.peers_1000, a = res.agent_idle;
      console.log(
        `store: ${
          EMBEDDED
            ? "twill embedded (3 voters, 2 learners; measured agent a plain client)"
            : "etcd 3.4"
        }`,
      );
      console.log(
        `(a) join → route on all 3 nodes, ${j.n} joins: p50 ${j.p50.toFixed(1)} ms, p99 ${
          j.p99.toFixed(1)
        } ms, max ${j.max.toFixed(1)} ms`,
      );
      console.log(
        `(b) ${p.peers} peers: kernel has ${p.kernel_entries.routes} routes, ${p.kernel_entries.neighs} neighbours, ${p.kernel_entries.fdbs} FDB entries`,
      );
      const ph = p.agent_phases;
      // an agent whose log lacks the phase fields (an older build) leaves them null in the JSON
      const f1 = (x: number | null) => typeof x === "number" ? x.toFixed(1) : "?";
      const ms = (x: number) => x.toFixed(0);
      console.log(
        `    all ${p.peers} leases in the store, agent resumed: programmed in ${
          ms(p.backlog_to_programmed_ms)
        } ms; floor (ip -batch, then bridge -batch, same entries): ${
          ms(p.floor_ip_batch_ms)
        } ms → ${p.ratio_vs_floor.toFixed(2)}×; both batches at once: ${
          ms(p.floor_parallel_ms)
        } ms → ${p.ratio_vs_parallel_floor.toFixed(2)}×`,
      );
      console.log(
        `    (median of 3: runs ${p.backlog_runs_ms.map(ms).join("/")} ms, floor runs ${
          p.floor_runs_ms.map(ms).join("/")
        } ms, parallel ${p.floor_parallel_runs_ms.map(ms).join("/")} ms)`,
      );
      console.log(
        `    agent's phases: resumed → first watch response decoded ${
          f1(ph.resumeToFirstEventMs)
        } ms; batching ${f1(ph.waitMs)} ms; kernel ${
          f1(ph.applyMs)
        } ms in ${ph.batches} batch(es) of ${ph.events} events; last batch done at ${
          f1(ph.agentDoneMs)
        } ms (the route monitor saw the last route at ${ms(p.backlog_to_programmed_ms)} ms)`,
      );
      console.log(
        `    agent running while the leases are written (8 txns, ${
          p.store_write_ms.toFixed(0)
        } ms): done ${p.streaming_from_first_write_ms.toFixed(0)} ms after the first write, ${
          p.streaming_after_last_write_ms.toFixed(0)
        } ms after the last`,
      );
      console.log(
        `    agent idle with ${p.peers} peers: RSS ${a.rss_mib.toFixed(0)} MiB, CPU ${
          a.cpu_percent_of_one_core.toFixed(1)
        }% of one core; last reconcile ${(res.agent_reconcile_seconds_last * 1000).toFixed(0)} ms`,
      );
      if (res.member_agent_idle) {
        const m = res.member_agent_idle;
        console.log(
          `    node 3 (agent + voting store member) idle: RSS ${m.rss_mib.toFixed(0)} MiB, CPU ${
            m.cpu_percent_of_one_core.toFixed(1)
          }% of one core`,
        );
      }
    }
  } finally {
    await store?.stop();
    await topo.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (values.inner) await inner(values.inner, values.prefix!);
else await outer();
