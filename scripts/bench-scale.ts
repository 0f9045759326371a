// Scale benchmark: 3 store members plus N emulated nodes (agents, as the store sees them), for
// twill and for etcd 3.4 in the same run, with the same emulation and the same client
// (lib/etcd/client.ts), on loopback only.
//
//   deno run -A scripts/bench-scale.ts [--nodes 5000] [--quick] [--store twill|etcd|both]
//                                      [--workers 4] [--keepalive-s 30] [--json] [--keep]
//
// Each emulated node (scripts/bench-scale-worker.ts, spread over --workers processes) lists the
// subnets prefix, grants a store lease, creates its subnet key with it, watches the prefix from
// the listing's revision + 1 and keeps its lease alive. Measured:
// - time for a new node's lease (a key put with a lease) to reach every watcher, 20 times;
// - member RSS and CPU at idle with N nodes, and during a burst of 500 joins;
// - member RSS per node (RSS with N nodes - RSS before, / N) and the body bytes of one watch
//   event on the wire;
// - SIGKILL of the leader: time until every node's watch has resumed on another member and
//   delivered the first write after the kill; then every node's delivered revisions are checked
//   against one reference watch (nothing lost, duplicated, reordered or invented).
// Ports: etcd 127.0.0.1:24379-24384, twill 127.0.0.1:28573-28575 (health 29201-29203), below
// the ephemeral range, which thousands of client connections would otherwise collide with. Every
// process is killed and the temporary directory removed at the end.
import { parseArgs } from "node:util";
import { join } from "node:path";
import { cpuMillis, etcdCertificates, percentile, rssMiB, waitFor } from "./lib/bench.ts";
import { EtcdClient } from "../lib/etcd/client.ts";
import { HttpClient, type TlsClientOptions } from "../lib/http/client.ts";

// ---------------------------------------------------------------- processes and clusters

class Proc {
  private child: Deno.ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;

  constructor(
    readonly name: string,
    readonly url: string,
    private readonly cmd: string,
    private readonly args: () => string[],
    private readonly logPath: string,
    private readonly cwd?: string,
  ) {}

  pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const child = new Deno.Command(this.cmd, {
      args: this.args(),
      cwd: this.cwd,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    const log = Deno.openSync(this.logPath, { write: true, create: true, append: true });
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s) {
        try {
          log.writeSync(chunk);
        } catch { /* log closed */ }
      }
    };
    this.exited = Promise.all([pump(child.stdout), pump(child.stderr), child.status])
      .finally(() => log.close());
  }

  async kill(): Promise<void> {
    if (!this.child) return;
    try {
      this.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.exited;
    this.child = undefined;
  }
}

interface Cluster {
  kind: "twill" | "etcd";
  members: Proc[];
  token?: string;
  /** How clients verify the members: both systems serve TLS. */
  tls: TlsClientOptions;
  leader(): Promise<number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.timeOrigin + performance.now();

async function startEtcd(base: string, spawned: Proc[]): Promise<Cluster> {
  const names = ["e1", "e2", "e3"];
  const client = (i: number) => `https://127.0.0.1:${24379 + 2 * i}`;
  const peer = (i: number) => `https://127.0.0.1:${24380 + 2 * i}`;
  const { files, caPem } = await etcdCertificates(base);
  const tls: TlsClientOptions = { caCerts: [caPem] };
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(",");
  const members = names.map((name, i) =>
    new Proc(name, client(i), "etcd", () => [
      ...["--name", name, "--data-dir", join(base, name)],
      ...["--listen-client-urls", client(i), "--advertise-client-urls", client(i)],
      ...["--listen-peer-urls", peer(i), "--initial-advertise-peer-urls", peer(i)],
      ...["--initial-cluster", initial, "--initial-cluster-state", "new"],
      ...["--initial-cluster-token", "twill-bench-scale", "--log-level", "warn"],
      ...["--cert-file", files.cert, "--key-file", files.key],
      ...["--peer-cert-file", files.cert, "--peer-key-file", files.key],
      ...["--peer-trusted-ca-file", files.ca],
    ], join(base, `${name}.log`))
  );
  spawned.push(...members);
  for (const m of members) m.start();
  const status = (url: string) =>
    new EtcdClient({ endpoints: [url], requestTimeoutMs: 500, tls }).status();
  const cluster: Cluster = {
    kind: "etcd",
    members,
    tls,
    async leader() {
      const ids: (string | undefined)[] = [];
      let leader = "0";
      for (const m of members) {
        if (m.pid() === undefined) {
          ids.push(undefined);
          continue;
        }
        try {
          const s = await status(m.url);
          ids.push(s.header.memberId);
          if (s.leader !== "0") leader = s.leader;
        } catch {
          ids.push(undefined);
        }
      }
      return ids.indexOf(leader);
    },
  };
  await waitFor("an etcd leader", 20_000, async () => (await cluster.leader()) >= 0);
  return cluster;
}

/** Three twill members over TLS, as they always run: t1 --init makes the CA, the others join
 *  with its join token. The bench and the emulated nodes use t1's admin credential (see the
 *  README's Scale paragraph for why nodes do not each join for a node credential). */
async function startTwill(base: string, spawned: Proc[]): Promise<Cluster> {
  const secret = "bench-scale-secret-0123456789abcdef";
  const firstDir = join(base, "t1");
  const readFirst = (file: string) => Deno.readTextFileSync(join(firstDir, file)).trim();
  const listen = (i: number) => `127.0.0.1:${28573 + i}`;
  const mainTs = new URL("../main.ts", import.meta.url).pathname;
  const members = [0, 1, 2].map((i) => {
    const name = `t${i + 1}`;
    return new Proc(
      name,
      listen(i),
      Deno.execPath(),
      () => [
        ...["run", "-A", mainTs, "agent", "--store-only", "--name", name],
        ...["--data-dir", join(base, name), "--listen", listen(i), "--advertise", listen(i)],
        ...["--healthz-ip", "127.0.0.1", "--healthz-port", String(29201 + i)],
        ...(i === 0
          ? ["--init", "--token", secret]
          : ["--join", listen(0), "--token", readFirst("join-token")]),
      ],
      join(base, `${name}.log`),
      new URL("..", import.meta.url).pathname,
    );
  });
  spawned.push(...members);
  const cluster: Cluster = {
    kind: "twill",
    members,
    token: "",
    tls: { caCerts: [] },
    async leader() {
      const http = new HttpClient({ token: cluster.token, tls: cluster.tls, timeoutMs: 500 });
      try {
        for (const m of members) {
          if (m.pid() === undefined) continue;
          try {
            const s = await http.postJson(m.url, "/raft/status", {});
            if (s.ok && JSON.parse(s.text).role === "leader") return members.indexOf(m);
          } catch { /* the next member */ }
        }
        return -1;
      } finally {
        http.close();
      }
    },
  };
  for (const m of members) {
    m.start();
    if (m === members[0]) {
      await waitFor("t1's CA and admin credential", 60_000, () => {
        cluster.token = readFirst("admin-credential");
        cluster.tls = { caCerts: [readFirst("pki/ca.crt")] };
        return Promise.resolve(readFirst("join-token") !== "");
      });
    }
    await waitFor(`${m.name} to serve`, 60_000, async () => {
      await new EtcdClient({
        endpoints: [m.url],
        token: cluster.token,
        tls: cluster.tls,
        requestTimeoutMs: 1000,
      }).range("probe");
      return true;
    });
  }
  await waitFor("a twill leader", 20_000, async () => (await cluster.leader()) >= 0);
  return cluster;
}

// ---------------------------------------------------------------- /proc figures

// A member that is gone (the killed leader) counts as 0, not NaN, in these sums.
const membersRss = (c: Cluster) => c.members.reduce((s, m) => s + (rssMiB(m.pid()) || 0), 0);
const membersCpu = (c: Cluster) => c.members.reduce((s, m) => s + (cpuMillis(m.pid()) || 0), 0);
const loadavg = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");

/** Samples the members' summed RSS every 200 ms while `work` runs; returns its peak and the
 *  members' CPU over the run as a percentage of one core. */
async function sampled<T>(c: Cluster, work: () => Promise<T>) {
  let peak = membersRss(c);
  const cpu0 = membersCpu(c);
  const t0 = performance.now();
  const timer = setInterval(() => peak = Math.max(peak, membersRss(c)), 200);
  try {
    const result = await work();
    const ms = performance.now() - t0;
    return { result, peakMiB: peak, cpuPct: (100 * (membersCpu(c) - cpu0)) / ms, ms };
  } finally {
    clearInterval(timer);
  }
}

// ---------------------------------------------------------------- workers

interface SeenStats {
  count: number;
  firstAt: number;
  lastAt: number;
}
interface WorkerStats {
  nodes: number;
  keys: Record<string, SeenStats | null>;
  opens: number;
  lastOpenAt: number;
}

class Worker {
  private child: Deno.ChildProcess;
  private writer: WritableStreamDefaultWriter<Uint8Array>;
  private pending = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();
  private nextId = 1;
  readonly done: Promise<unknown>;

  constructor(logPath: string) {
    const path = new URL("./bench-scale-worker.ts", import.meta.url).pathname;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", path],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.writer = child.stdin.getWriter();
    const log = Deno.openSync(logPath, { write: true, create: true, append: true });
    const drainErr = (async () => {
      for await (const chunk of child.stderr) log.writeSync(chunk);
    })();
    this.done = Promise.all([this.readAnswers(), drainErr, this.child.status]).finally(() => {
      log.close();
      for (const p of this.pending.values()) p.fail(new Error("worker exited"));
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  private async readAnswers(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of this.child.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.ok) p?.ok(msg.result);
        else p?.fail(new Error(`worker ${this.pid}: ${msg.error}`));
      }
    }
  }

  call<T>(op: string, args: Record<string, unknown> = {}, timeoutMs = 600_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((ok, fail) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        fail(new Error(`worker ${this.pid}: ${op} took over ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        ok: (v) => (clearTimeout(timer), ok(v as T)),
        fail: (e) => (clearTimeout(timer), fail(e)),
      });
      this.writer.write(new TextEncoder().encode(JSON.stringify({ id, op, ...args }) + "\n"))
        .catch((e) => fail(e));
    });
  }

  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch { /* gone */ }
  }
}

/** Every worker's view of `keys`, merged: nodes that saw each key and the latest time. */
async function seenByAll(workers: Worker[], keys: string[]) {
  const all = await Promise.all(workers.map((w) => w.call<WorkerStats>("stats", { keys })));
  const nodes = all.reduce((s, a) => s + a.nodes, 0);
  const merged = keys.map((k) => {
    let count = 0;
    let lastAt = 0;
    for (const a of all) {
      const s = a.keys[k];
      if (s) {
        count += s.count;
        lastAt = Math.max(lastAt, s.lastAt);
      }
    }
    return { key: k, count, lastAt };
  });
  return {
    nodes,
    merged,
    opens: all.reduce((s, a) => s + a.opens, 0),
    lastOpenAt: Math.max(...all.map((a) => a.lastOpenAt)),
  };
}

/** Waits until every node has seen every key in `keys` (or `ms` passes); returns the merged view. */
async function awaitSeen(workers: Worker[], keys: string[], ms: number) {
  const deadline = performance.now() + ms;
  while (true) {
    const s = await seenByAll(workers, keys);
    if (s.merged.every((k) => k.count >= s.nodes) || performance.now() > deadline) return s;
    await sleep(50);
  }
}

/** A bound on joining: every join lists every key, so the time grows with N (5,000 joins took
 *  over 10 minutes on this machine under a load average of 13). */
const JOIN_MS_PER_NODE = 300;

/** Joins nodes [from, from + count) spread over the workers, all at once. */
async function joinNodes(workers: Worker[], from: number, count: number, concurrency: number) {
  const per = Math.ceil(count / workers.length);
  const rs = await Promise.all(workers.map((w, k) => {
    const start = from + k * per;
    const n = Math.max(0, Math.min(per, from + count - start));
    return w.call<{ ms: number; failed: number; errors: string[]; retries: number }>("join", {
      from: start,
      count: n,
      concurrency,
    }, JOIN_MS_PER_NODE * count + 60_000);
  }));
  const failed = rs.reduce((s, r) => s + r.failed, 0);
  if (failed > 0) {
    throw new Error(`bench-scale: ${failed} joins failed, e.g. ${rs.flatMap((r) => r.errors)[0]}`);
  }
  return rs.reduce((s, r) => s + r.retries, 0);
}

// ---------------------------------------------------------------- phases

const PREFIX = "/coreos.com/network/subnets/";
type Results = Record<string, number>;

/** A new node's lease (grant + put with it) until every watcher has it, `rounds` times. */
async function probes(c: Cluster, workers: Worker[], rounds: number, r: Results) {
  const client = new EtcdClient({
    endpoints: c.members.map((m) => m.url),
    token: c.token,
    tls: c.tls,
  });
  const lat: number[] = [];
  let missing = 0;
  for (let i = 0; i < rounds; i++) {
    const lease = await client.leaseGrant(60);
    const key = `${PREFIX}probe-${i}`;
    const t0 = now();
    await client.put(key, JSON.stringify({ PublicIP: "127.255.0.1", BackendType: "vxlan" }), {
      lease: lease.id,
    });
    const s = await awaitSeen(workers, [key], 10_000);
    const k = s.merged[0];
    if (k.count < s.nodes) missing += s.nodes - k.count;
    lat.push(k.lastAt - t0);
    await sleep(200);
  }
  lat.sort((a, b) => a - b);
  r["new lease → all watchers, p50 (ms)"] = percentile(lat, 0.5);
  r["new lease → all watchers, p99 (ms)"] = percentile(lat, 0.99);
  r["new lease: watcher deliveries missing after 10 s"] = missing;
}

/** Body bytes of one watch response carrying one agent-sized put, read straight off the wire. */
async function wireBytesPerEvent(c: Cluster): Promise<number> {
  const http = new HttpClient({ token: c.token, tls: c.tls });
  const ac = new AbortController();
  const key = `${PREFIX}wire-probe`;
  const body = JSON.stringify({ create_request: { key: btoa(key) } });
  const res = await http.request(c.members[0].url, "/v3/watch", { body, signal: ac.signal });
  const reader = res.body!.getReader();
  const lines: number[] = [];
  let buf = new Uint8Array(0);
  const readLine = async () => {
    while (true) {
      const nl = buf.indexOf(10);
      if (nl >= 0) {
        lines.push(nl + 1);
        buf = buf.slice(nl + 1);
        return;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("watch ended");
      const next = new Uint8Array(buf.length + value.length);
      next.set(buf);
      next.set(value, buf.length);
      buf = next;
    }
  };
  try {
    await readLine(); // created
    const client = new EtcdClient({ endpoints: [c.members[0].url], token: c.token, tls: c.tls });
    await client.put(
      key,
      JSON.stringify({
        PublicIP: "127.255.0.2",
        BackendType: "vxlan",
        BackendData: { VNI: 1, VtepMAC: "0a:58:00:00:ff:02" },
      }),
    );
    await readLine();
    return lines[1];
  } finally {
    ac.abort();
    reader.cancel().catch(() => {});
  }
}

/** The revisions of every change under the prefix after `floor`, from one fresh watch. */
async function referenceRevisions(c: Cluster, floor: number, alive: Proc[]): Promise<number[]> {
  const client = new EtcdClient({ endpoints: alive.map((m) => m.url), token: c.token, tls: c.tls });
  const head = Number(
    (await client.range(PREFIX, { prefix: true, countOnly: true })).header
      .revision,
  );
  const revs: number[] = [];
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 30_000);
  try {
    for await (
      const w of client.watch(PREFIX, { prefix: true, startRevision: floor + 1, signal: ac.signal })
    ) {
      for (const e of w.events) revs.push(Number(e.kv.modRevision));
      if (revs.length > 0 && revs.at(-1)! >= head) break;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return revs;
}

async function failover(c: Cluster, workers: Worker[], r: Results): Promise<Proc[]> {
  let leader = -1;
  await waitFor("a leader before the kill", 30_000, async () => (leader = await c.leader()) >= 0);
  const victim = c.members[leader];
  const alive = c.members.filter((m) => m !== victim);
  const before = await seenByAll(workers, []);
  await victim.kill();
  const t0 = now();
  let first = "";
  for (let attempt = 0; !first; attempt++) {
    const key = `${PREFIX}marker-${attempt}`;
    const client = new EtcdClient({
      endpoints: [alive[attempt % 2].url],
      token: c.token,
      tls: c.tls,
      requestTimeoutMs: 1000,
    });
    try {
      await client.put(key, "after the kill");
      first = key;
    } catch {
      await sleep(20);
    }
    if (now() - t0 > 60_000) throw new Error("bench-scale: no write succeeded for 60 s");
  }
  r["leader kill → first write (ms)"] = now() - t0;
  const s = await awaitSeen(workers, [first], 60_000);
  const k = s.merged[0];
  r["leader kill → every watcher has the next write (ms)"] = k.count >= s.nodes
    ? k.lastAt - t0
    : NaN;
  r["leader kill: watchers without it after 60 s"] = s.nodes - k.count;
  r["leader kill: watch streams reopened"] = s.opens - before.opens;
  r["leader kill → last stream reopened (ms)"] = s.lastOpenAt > t0 ? s.lastOpenAt - t0 : 0;
  return alive;
}

async function checkSequences(
  c: Cluster,
  workers: Worker[],
  floor: number,
  alive: Proc[],
  r: Results,
) {
  const reference = await referenceRevisions(c, floor, alive);
  const all = await Promise.all(
    workers.map((w) => w.call<Record<string, number>>("check", { floor, reference })),
  );
  const sum = (f: string) => all.reduce((s, a) => s + a[f], 0);
  r["events checked per node (reference watch)"] = reference.length;
  r["events lost"] = sum("lost");
  r["events duplicated"] = sum("duplicated");
  r["events out of order or unknown"] = sum("unordered") + sum("extra");
  r["nodes with any of those"] = sum("badNodes");
}

interface Plan {
  nodes: number;
  burst: number;
  probes: number;
  workers: number;
  keepaliveS: number;
}

async function idle(
  c: Cluster,
  workers: Worker[],
  plan: Plan,
  workerRss0: number,
  r: Results,
) {
  await sleep(3000);
  const s = await sampled(c, () => sleep(10_000));
  r["idle: member CPU, sum of 3 (% of a core)"] = s.cpuPct;
  r["idle: member RSS, sum of 3 (MiB)"] = membersRss(c);
  r["idle: largest member RSS (MiB)"] = Math.max(...c.members.map((m) => rssMiB(m.pid()) || 0));
  r["emulating processes: RSS per node (KiB)"] = ((await workersRssKiB(workers)) - workerRss0) /
    plan.nodes;
}

async function workersRssKiB(workers: Worker[]): Promise<number> {
  const wr = await Promise.all(workers.map((w) => w.call<{ rssKiB: number }>("rss")));
  return wr.reduce((s, x) => s + x.rssKiB, 0);
}

async function burst(c: Cluster, workers: Worker[], plan: Plan, r: Results) {
  const keys = Array.from({ length: plan.burst }, (_, k) => {
    const i = plan.nodes + k;
    return `${PREFIX}10.${(i >> 8) & 255}.${i & 255}.0-24`;
  });
  let retries = 0;
  const s = await sampled(c, async () => {
    retries = await joinNodes(workers, plan.nodes, plan.burst, plan.burst);
    return await awaitSeen(workers, keys, 120_000);
  });
  r[`burst of ${plan.burst} joins: attempts retried`] = retries;
  r[`burst of ${plan.burst} joins: member CPU, sum of 3 (% of a core)`] = s.cpuPct;
  r[`burst of ${plan.burst} joins: peak member RSS, sum of 3 (MiB)`] = s.peakMiB;
  r[`burst of ${plan.burst} joins → every watcher has all (ms)`] = s.ms;
  r[`burst: watcher deliveries missing`] = s.result.merged.reduce(
    (m, k) => m + Math.max(0, s.result.nodes - k.count),
    0,
  );
}

async function benchCluster(c: Cluster, workers: Worker[], plan: Plan, log: (s: string) => void) {
  const r: Results = {};
  const client = new EtcdClient({
    endpoints: c.members.map((m) => m.url),
    token: c.token,
    tls: c.tls,
  });
  await sleep(2000);
  const rss0 = membersRss(c);
  r["member RSS before any node, sum of 3 (MiB)"] = rss0;
  await Promise.all(workers.map((w) =>
    w.call("config", {
      config: {
        endpoints: c.members.map((m) => m.url),
        token: c.token,
        tls: c.tls,
        prefix: PREFIX,
        ttlSeconds: plan.keepaliveS * 3,
        keepaliveMs: plan.keepaliveS * 1000,
      },
    })
  ));
  log(`${c.kind}: joining ${plan.nodes} nodes (load ${loadavg()})`);
  const workerRss0 = await workersRssKiB(workers);
  const joined = await sampled(c, () => joinNodes(workers, 0, plan.nodes, 32));
  r[`join of ${plan.nodes} nodes, 32 at a time per worker (s)`] = joined.ms / 1000;
  r["join attempts retried (store errors)"] = joined.result;
  r[`join of ${plan.nodes}: member CPU, sum of 3 (% of a core)`] = joined.cpuPct;
  // A join lists every key before it, so this grows with N (N/2 keys per join on average).
  r["join: member CPU per join (ms)"] = (joined.cpuPct * joined.ms / 100) / plan.nodes;
  const floor = Number(
    (await client.range(PREFIX, { prefix: true, countOnly: true })).header
      .revision,
  );
  log(`${c.kind}: idle with ${plan.nodes} nodes (load ${loadavg()})`);
  await idle(c, workers, plan, workerRss0, r);
  r["member RSS per node: (idle - before) / N (KiB)"] =
    ((r["idle: member RSS, sum of 3 (MiB)"] - rss0) * 1024) / plan.nodes;
  r["watch event on the wire, body bytes"] = await wireBytesPerEvent(c);
  log(`${c.kind}: ${plan.probes} new leases (load ${loadavg()})`);
  await probes(c, workers, plan.probes, r);
  log(`${c.kind}: burst of ${plan.burst} joins (load ${loadavg()})`);
  await burst(c, workers, plan, r);
  log(`${c.kind}: leader kill (load ${loadavg()})`);
  const alive = await failover(c, workers, r);
  await sleep(2000);
  await checkSequences(c, workers, floor, alive, r);
  r["load average (1 min) at the end"] = Number(loadavg().split(" ")[0]);
  return r;
}

// ---------------------------------------------------------------- main

function printTable(twill: Results | undefined, etcd: Results | undefined): void {
  const metrics = Object.keys(twill ?? etcd ?? {});
  const fmt = (n: number | undefined) =>
    n === undefined || Number.isNaN(n) ? "-" : n >= 100 ? n.toFixed(0) : n.toFixed(2);
  const w = Math.max(...metrics.map((m) => m.length));
  console.log(`${"metric".padEnd(w)}  ${"twill".padStart(10)}  ${"etcd".padStart(10)}  twill/etcd`);
  for (const m of metrics) {
    const a = twill?.[m];
    const b = etcd?.[m];
    const ratio = a !== undefined && b !== undefined && b !== 0 ? (a / b).toFixed(2) : "-";
    console.log(
      `${m.padEnd(w)}  ${fmt(a).padStart(10)}  ${fmt(b).padStart(10)}  ${ratio.padStart(10)}`,
    );
  }
}

async function runOne(
  kind: "twill" | "etcd",
  base: string,
  plan: Plan,
  log: (s: string) => void,
): Promise<Results> {
  const dir = join(base, kind);
  await Deno.mkdir(dir);
  const spawned: Proc[] = [];
  const workers: Worker[] = [];
  try {
    log(`starting a 3-member ${kind} cluster (logs in ${dir})`);
    const cluster = kind === "etcd"
      ? await startEtcd(dir, spawned)
      : await startTwill(dir, spawned);
    for (let k = 0; k < plan.workers; k++) workers.push(new Worker(join(dir, `worker${k}.log`)));
    return await benchCluster(cluster, workers, plan, log);
  } finally {
    for (const w of workers) w.kill();
    await Promise.all(workers.map((w) => w.done.catch(() => {})));
    for (const m of spawned) await m.kill();
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      nodes: { type: "string" },
      store: { type: "string", default: "both" },
      workers: { type: "string", default: "4" },
      "keepalive-s": { type: "string", default: "30" },
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
    },
  });
  const nodes = Number(values.nodes ?? (values.quick ? 500 : 5000));
  const workers = Number(values.workers);
  const keepaliveS = Number(values["keepalive-s"]);
  const store = values.store as string;
  const bad = !Number.isInteger(nodes) || nodes < 1 || nodes > 20_000
    ? "--nodes 1..20000"
    : !Number.isInteger(workers) || workers < 1 || workers > 16
    ? "--workers 1..16"
    : !(keepaliveS >= 1 && keepaliveS <= 3600)
    ? "--keepalive-s 1..3600"
    : !["twill", "etcd", "both"].includes(store)
    ? "--store twill|etcd|both"
    : "";
  if (bad) {
    console.error(`bench-scale: expected ${bad}`);
    return 2;
  }
  const plan: Plan = { nodes, burst: 500, probes: 20, workers, keepaliveS };
  const base = await Deno.makeTempDir({ prefix: "twill-bench-scale-" });
  const log = (s: string) => console.error(`bench-scale: ${s}`);
  log(
    `${nodes} nodes over ${workers} worker processes; RLIMIT_NOFILE ${nofile()}; load ${loadavg()}`,
  );
  const results: { twill?: Results; etcd?: Results } = {};
  try {
    for (const kind of ["twill", "etcd"] as const) {
      if (store !== "both" && store !== kind) continue;
      try {
        results[kind] = await runOne(kind, base, plan, log);
        // Kept at once: a later failure or an interrupted run still leaves this store's figures.
        log(`${kind} results: ${JSON.stringify(results[kind])}`);
      } catch (e) {
        log(`${kind} failed: ${(e as Error).message}`);
      }
    }
  } finally {
    if (!values.keep) await Deno.remove(base, { recursive: true });
  }
  if (values.json) console.log(JSON.stringify({ plan, ...results }, null, 2));
  else printTable(results.twill, results.etcd);
  return results.twill || results.etcd ? 0 : 1;
}

function nofile(): string {
  const m = /Max open files\s+(\d+)\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/limits"));
  return m ? `${m[1]} soft / ${m[2]} hard` : "unknown";
}

if (import.meta.main) Deno.exit(await main());
