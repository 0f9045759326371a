// Store benchmark: a 3-member twill store against a 3-member etcd 3.4, driven by the same client
// code over the same etcd v3 JSON API, on loopback only, both over TLS: twill as it always runs
// (its own CA, a credential per request), etcd with a certificate from a CA this script makes
// with openssl (client and peer URLs https, no client certificates on the client URLs, no auth).
//
//   deno run -A scripts/bench-store.ts [--only twill|etcd] [--quick] [--json] [--keep]
//                                      [--phases seq,tp,range,fan,failover]
//
// Measures: sequential put latency (1 client, 500 puts, 8-byte keys, 256-byte values);
// put throughput with 16 and 128 concurrent clients (5,000 puts each); linearizable range
// latency; watch fan-out (1,000 watchers on one prefix, 200 puts: delivery latency and member
// RSS); failover (SIGKILL the leader 10 times: time until the next write succeeds). Prints both
// systems and the ratio twill/etcd. Needs the `etcd` binary (Debian etcd-server, see
// scripts/install-deps.ts). Ports: etcd 127.0.0.1:32379-32384, twill 127.0.0.1:38473-38475
// (health 39101-39103). All data lives in a temporary directory removed at the end.
import { parseArgs } from "node:util";
import { join } from "node:path";
import { cpuMillis, etcdCertificates, percentile, rssMiB, waitFor } from "./lib/bench.ts";
import { DurableStorage } from "../lib/store/wal/durable_storage.ts";
import { EtcdClient } from "../lib/etcd/client.ts";
import { HttpClient, type TlsClientOptions } from "../lib/http/client.ts";

// ---------------------------------------------------------------- processes and clusters

interface Member {
  name: string;
  /** The client API: a URL (etcd) or host:port (twill, whose scheme lib/http decides). */
  url: string;
  pid(): number | undefined;
  start(): Promise<void>;
  kill(signal: Deno.Signal): Promise<void>;
}

interface Cluster {
  kind: "twill" | "etcd";
  members: Member[];
  token?: string;
  /** How clients verify the members (both systems run TLS). */
  tls: TlsClientOptions;
  /** Index into members of the current leader, or -1 if none is known. */
  leader(): Promise<number>;
  stop(): Promise<void>;
}

class Proc implements Member {
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

  start(): Promise<void> {
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
    return Promise.resolve();
  }

  async kill(signal: Deno.Signal): Promise<void> {
    if (!this.child) return;
    try {
      this.child.kill(signal);
    } catch { /* already gone */ }
    await this.exited;
    this.child = undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** etcd's own status of one member (its id and the leader's), with a short timeout. */
function etcdStatus(url: string, tls: TlsClientOptions) {
  return new EtcdClient({ endpoints: [url], requestTimeoutMs: 500, tls }).status();
}

async function startEtcd(base: string, spawned: Member[]): Promise<Cluster> {
  const names = ["e1", "e2", "e3"];
  const client = (i: number) => `https://127.0.0.1:${32379 + 2 * i}`;
  const peer = (i: number) => `https://127.0.0.1:${32380 + 2 * i}`;
  const { files, caPem } = await etcdCertificates(base);
  const tls: TlsClientOptions = { caCerts: [caPem] };
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(",");
  const members = names.map((name, i) =>
    new Proc(name, client(i), "etcd", () => [
      "--name",
      name,
      "--data-dir",
      join(base, name),
      "--listen-client-urls",
      client(i),
      "--advertise-client-urls",
      client(i),
      "--listen-peer-urls",
      peer(i),
      "--initial-advertise-peer-urls",
      peer(i),
      "--initial-cluster",
      initial,
      "--initial-cluster-state",
      "new",
      "--initial-cluster-token",
      "twill-bench",
      "--cert-file",
      files.cert,
      "--key-file",
      files.key,
      "--peer-cert-file",
      files.cert,
      "--peer-key-file",
      files.key,
      "--peer-trusted-ca-file",
      files.ca,
      "--log-level",
      "warn",
    ], join(base, `${name}.log`))
  );
  spawned.push(...members);
  for (const m of members) await m.start();
  const cluster: Cluster = {
    kind: "etcd",
    members,
    tls,
    async leader() {
      for (const m of members) {
        if (m.pid() === undefined) continue;
        try {
          const s = await etcdStatus(m.url, tls);
          if (s.leader === "0") continue;
          for (const n of members) {
            if (n.pid() === undefined) continue;
            const t = await etcdStatus(n.url, tls);
            if (t.header.memberId === s.leader) return members.indexOf(n);
          }
        } catch { /* try the next member */ }
      }
      return -1;
    },
    async stop() {
      for (const m of members) await m.kill("SIGKILL");
    },
  };
  await waitFor("an etcd leader", 20_000, async () => (await cluster.leader()) >= 0);
  return cluster;
}

async function startTwill(base: string, spawned: Member[]): Promise<Cluster> {
  const secret = "bench-secret-0123456789abcdef";
  const firstDir = join(base, "t1");
  const listen = (i: number) => `127.0.0.1:${38473 + i}`;
  const mainTs = new URL("../main.ts", import.meta.url).pathname;
  const v8Flags = Deno.env.get("TWILL_BENCH_V8_FLAGS");
  const members = [0, 1, 2].map((i) => {
    const name = `t${i + 1}`;
    const dataDir = join(base, name);
    return new Proc(
      name,
      listen(i),
      Deno.execPath(),
      () => {
        const args = [
          "run",
          "-A",
          // Profiling, e.g. TWILL_BENCH_V8_FLAGS=--prof,--no-logfile-per-isolate,--logfile=/tmp/%n.log
          // (%n is the member's name), then `node --prof-process /tmp/t1.log`.
          ...(v8Flags ? [`--v8-flags=${v8Flags.replaceAll("%n", name)}`] : []),
          mainTs,
          "agent",
          "--store-only",
          "--name",
          name,
          "--data-dir",
          dataDir,
          "--listen",
          listen(i),
          "--advertise",
          listen(i),
          "--healthz-ip",
          "127.0.0.1",
          "--healthz-port",
          String(39101 + i),
        ];
        // First start only: member 0 creates the cluster, the others join it. A restart needs
        // neither (the data dir says who the member is).
        let exists = false;
        try {
          exists = Deno.statSync(dataDir).isDirectory;
        } catch { /* fresh */ }
        if (!exists) {
          args.push(
            ...(i === 0
              ? ["--init", "--token", secret]
              : ["--join", listen(0), "--token", readFirst("join-token")]),
          );
        }
        return args;
      },
      join(base, `${name}.log`),
      new URL("..", import.meta.url).pathname,
    );
  });
  const readFirst = (file: string) => Deno.readTextFileSync(join(firstDir, file)).trim();
  // The bench writes keys of its own outside the network prefix: it acts as t1's admin.
  let token = "";
  let tls: TlsClientOptions = { caCerts: [] };
  const cluster: Cluster = {
    kind: "twill",
    members,
    get token() {
      return token;
    },
    get tls() {
      return tls;
    },
    // /v3/maintenance/status's leader field is not the leader's id on twill (yet), so ask each
    // member for its Raft role on the peer API.
    async leader() {
      const http = new HttpClient({ token, tls, timeoutMs: 500 });
      for (const m of members) {
        if (m.pid() === undefined) continue;
        try {
          const s = await http.postJson(m.url, "/raft/status", {});
          if (s.ok && JSON.parse(s.text).role === "leader") return members.indexOf(m);
        } catch { /* try the next member */ }
      }
      return -1;
    },
    async stop() {
      for (const m of members) await m.kill("SIGKILL");
    },
  };
  spawned.push(...members);
  // Start one at a time so that each joiner finds a working cluster.
  for (const m of members) {
    await m.start();
    if (m === members[0]) {
      await waitFor("t1's CA and admin credential", 60_000, () => {
        token = readFirst("admin-credential");
        tls = { caCerts: [readFirst("pki/ca.crt")] };
        return Promise.resolve(readFirst("join-token") !== "");
      });
    }
    await waitFor(`${m.name} to serve`, 60_000, async () => {
      const c = makeClient([m.url], token, tls);
      try {
        await c.range(new TextEncoder().encode("bench-probe"));
        return true;
      } finally {
        c.close();
      }
    });
  }
  await waitFor("a twill leader", 20_000, async () => (await cluster.leader()) >= 0);
  return cluster;
}

// ---------------------------------------------------------------- the client

/** What the benchmark needs from a store client. */
interface BenchClient {
  put(key: Uint8Array, value: Uint8Array): Promise<void>;
  /** A linearizable range of one key. */
  range(key: Uint8Array): Promise<void>;
  /** Watch every key under `prefix`; resolves once the watch is created; returns a canceller. */
  watch(
    prefix: Uint8Array,
    onEvent: (key: Uint8Array, value: Uint8Array) => void,
  ): Promise<() => void>;
  close(): void;
}

/** The project's etcd v3 JSON client (lib/etcd/client.ts), the same for twill and etcd. */
function makeClient(
  endpoints: string[],
  token: string | undefined,
  tls: TlsClientOptions,
  timeoutMs = 10_000,
): BenchClient {
  const client = new EtcdClient({ endpoints, token, tls, requestTimeoutMs: timeoutMs });
  const aborts = new Set<AbortController>();
  return {
    async put(key, value) {
      await client.put(key, value);
    },
    async range(key) {
      await client.range(key);
    },
    async watch(prefix, onEvent) {
      const ac = new AbortController();
      aborts.add(ac);
      const stream = client.watch(prefix, { prefix: true, signal: ac.signal });
      const first = await stream.next();
      if (first.done || !first.value.created) throw new Error("bench: the watch was not created");
      (async () => {
        try {
          for await (const res of stream) {
            for (const ev of res.events) onEvent(ev.kv.key, ev.kv.value);
          }
        } catch { /* the member went away */ }
      })();
      return () => {
        ac.abort();
        aborts.delete(ac);
      };
    },
    close() {
      for (const ac of aborts) ac.abort();
      aborts.clear();
    },
  };
}

// ---------------------------------------------------------------- measurements

function summary(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 0.5), p99: percentile(s, 0.99), n: s.length };
}

const enc = new TextEncoder();
const key8 = (prefix: string, i: number) =>
  enc.encode(prefix + String(i).padStart(8 - prefix.length, "0"));
const value256 = (tag: string) => enc.encode(tag.padEnd(256, "."));

const clusterCpu = (c: Cluster) => c.members.reduce((s, m) => s + cpuMillis(m.pid()), 0);

interface Results {
  [metric: string]: number;
}

async function sequentialPuts(c: Cluster, n: number): Promise<{ p50: number; p99: number }> {
  const client = makeClient([c.members[0].url], c.token, c.tls);
  try {
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await client.put(key8("s", i), value256(`seq${i}`));
      lat.push(performance.now() - t0);
    }
    return summary(lat);
  } finally {
    client.close();
  }
}

async function throughput(c: Cluster, concurrency: number, total: number): Promise<number> {
  const clients = c.members.map((m) => makeClient([m.url], c.token, c.tls));
  try {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async (_, w) => {
      const client = clients[w % clients.length];
      while (true) {
        const i = next++;
        if (i >= total) return;
        await client.put(key8(`c${concurrency % 10}`, i % 100000), value256(`tp${i}`));
      }
    }));
    return total / ((performance.now() - t0) / 1000);
  } finally {
    for (const cl of clients) cl.close();
  }
}

async function linearizableRanges(c: Cluster, n: number): Promise<{ p50: number; p99: number }> {
  const client = makeClient([c.members[1].url], c.token, c.tls); // a follower most of the time
  try {
    await client.put(key8("r", 1), value256("range"));
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await client.range(key8("r", 1));
      lat.push(performance.now() - t0);
    }
    return summary(lat);
  } finally {
    client.close();
  }
}

async function watchFanout(
  c: Cluster,
  watchers: number,
  puts: number,
): Promise<
  { p50: number; p99: number; delivered: number; rssMiB: number; idleMiB: number; openMiB: number }
> {
  const idleMiB = c.members.reduce((s, m) => s + rssMiB(m.pid()), 0);
  const clients = c.members.map((m) => makeClient([m.url], c.token, c.tls));
  const prefix = enc.encode("/fan/");
  const lat: number[] = [];
  let delivered = 0;
  const cancels: (() => void)[] = [];
  let peakRss = 0;
  const sampleRss = () => {
    const total = c.members.reduce((s, m) => s + rssMiB(m.pid()), 0);
    if (total > peakRss) peakRss = total;
  };
  try {
    for (let w = 0; w < watchers; w++) {
      const cancel = await clients[w % clients.length].watch(prefix, (_key, value) => {
        const sent = Number(new TextDecoder().decode(value).split(" ")[0]);
        lat.push(performance.timeOrigin + performance.now() - sent);
        delivered++;
      });
      cancels.push(cancel);
    }
    await new Promise((r) => setTimeout(r, 200));
    const openMiB = c.members.reduce((s, m) => s + rssMiB(m.pid()), 0);
    sampleRss();
    const writer = makeClient([c.members[0].url], c.token, c.tls);
    try {
      for (let i = 0; i < puts; i++) {
        const now = performance.timeOrigin + performance.now();
        await writer.put(enc.encode(`/fan/${i % 10}`), value256(`${now} `));
        if (i % 20 === 0) sampleRss();
      }
    } finally {
      writer.close();
    }
    await waitFor("every watch event", 60_000, () => Promise.resolve(delivered >= watchers * puts))
      .catch(() => {});
    sampleRss();
    return { ...summary(lat), delivered, rssMiB: peakRss, idleMiB, openMiB };
  } finally {
    for (const cancel of cancels) cancel();
    for (const cl of clients) cl.close();
  }
}

async function failover(c: Cluster, rounds: number): Promise<{ median: number; max: number }> {
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let leader = -1;
    await waitFor("a leader before the kill", 30_000, async () => (leader = await c.leader()) >= 0);
    const victim = c.members[leader];
    const others = c.members.filter((m) => m !== victim);
    await victim.kill("SIGKILL");
    const t0 = performance.now();
    let attempt = 0;
    while (true) {
      const m = others[attempt++ % others.length];
      const client = makeClient([m.url], c.token, c.tls, 1000);
      try {
        await client.put(enc.encode("failover"), value256(`round${r}`));
        break;
      } catch {
        await sleep(10);
      } finally {
        client.close();
      }
      if (performance.now() - t0 > 60_000) throw new Error("bench: no write succeeded for 60 s");
    }
    times.push(performance.now() - t0);
    await victim.start();
    await waitFor(`${victim.name} back`, 60_000, async () => {
      const client = makeClient([victim.url], c.token, c.tls, 1000);
      try {
        await client.range(enc.encode("failover"));
        return true;
      } finally {
        client.close();
      }
    });
  }
  const s = [...times].sort((a, b) => a - b);
  return { median: percentile(s, 0.5), max: s[s.length - 1] };
}

/** The WAL alone: one save per Ready with one entry, fdatasync each time (group commit of 1). */
async function walMicrobench(dir: string, n: number): Promise<Results> {
  const storage = await DurableStorage.open(dir);
  try {
    const data = value256("wal");
    const lat: number[] = [];
    for (let i = 1; i <= n; i++) {
      const t0 = performance.now();
      await storage.save({
        entries: [{ index: i, term: 1, type: "normal", data }],
        hardState: { term: 1, vote: 1, commit: i - 1 },
        mustSync: true,
      });
      lat.push(performance.now() - t0);
    }
    const st = storage.stats();
    const s = summary(lat);
    return {
      "wal save, 1 entry + fdatasync, p50 (ms)": s.p50,
      "wal save, 1 entry + fdatasync, p99 (ms)": s.p99,
      "wal fdatasync alone, mean (ms)": st.syncMillis / st.syncs,
    };
  } finally {
    await storage.close();
  }
}

const PHASES = ["seq", "tp", "range", "fan", "failover"] as const;
type Phase = typeof PHASES[number];

async function benchCluster(
  c: Cluster,
  quick: boolean,
  phases: Set<Phase>,
  log: (s: string) => void,
): Promise<Results> {
  const r: Results = {};
  const scale = quick ? 0.2 : 1;
  if (phases.has("seq")) {
    log(`${c.kind}: sequential puts`);
    const seq = await sequentialPuts(c, Math.round(500 * scale));
    r["put latency p50 (ms)"] = seq.p50;
    r["put latency p99 (ms)"] = seq.p99;
  }
  if (phases.has("tp")) {
    for (const conc of [16, 128]) {
      log(`${c.kind}: ${conc} concurrent clients`);
      const n = Math.round(5000 * scale);
      const cpu0 = clusterCpu(c);
      const self0 = cpuMillis(Deno.pid);
      r[`put throughput, ${conc} clients (puts/s)`] = await throughput(c, conc, n);
      r[`member CPU per put, ${conc} clients (ms)`] = (clusterCpu(c) - cpu0) / n;
      r[`bench client CPU per put, ${conc} clients (ms)`] = (cpuMillis(Deno.pid) - self0) / n;
    }
  }
  if (phases.has("range")) {
    log(`${c.kind}: linearizable ranges`);
    const rng = await linearizableRanges(c, Math.round(500 * scale));
    r["linearizable range p50 (ms)"] = rng.p50;
    r["linearizable range p99 (ms)"] = rng.p99;
  }
  if (phases.has("fan")) {
    log(`${c.kind}: watch fan-out`);
    const fan = await watchFanout(c, Math.round(1000 * scale), Math.round(200 * scale));
    r["watch delivery p50 (ms)"] = fan.p50;
    r["watch delivery p99 (ms)"] = fan.p99;
    r["watch events delivered"] = fan.delivered;
    r["member RSS during fan-out, sum of 3 (MiB)"] = fan.rssMiB;
    r["  of which before the watches (MiB)"] = fan.idleMiB;
    r["  with the watches open, no events (MiB)"] = fan.openMiB;
  }
  if (phases.has("failover")) {
    log(`${c.kind}: failover`);
    const fo = await failover(c, quick ? 3 : 10);
    r["failover: kill leader → next write, median (ms)"] = fo.median;
    r["failover: kill leader → next write, max (ms)"] = fo.max;
  }
  return r;
}

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

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      keep: { type: "boolean", default: false },
      phases: { type: "string", default: PHASES.join(",") },
    },
  });
  const phases = new Set<Phase>();
  for (const p of (values.phases as string).split(",")) {
    if (!PHASES.includes(p as Phase)) {
      console.error(`bench-store: --phases takes a comma list of ${PHASES.join(",")}, not ${p}`);
      return 2;
    }
    phases.add(p as Phase);
  }
  const only = values.only as string | undefined;
  if (only && only !== "twill" && only !== "etcd") {
    console.error(`bench-store: --only takes twill or etcd, not ${only}`);
    return 2;
  }
  const base = await Deno.makeTempDir({ prefix: "twill-bench-store-" });
  const log = (s: string) => console.error(`bench-store: ${s}`);
  const results: { twill?: Results; etcd?: Results; wal?: Results } = {};
  try {
    if (!only || only === "twill") {
      results.wal = await walMicrobench(join(base, "wal-micro"), values.quick ? 200 : 2000);
    }
    for (const kind of ["twill", "etcd"] as const) {
      if (only && only !== kind) continue;
      log(`starting a 3-member ${kind} cluster (logs in ${base})`);
      const dir = join(base, kind);
      await Deno.mkdir(dir);
      const spawned: Member[] = [];
      try {
        const cluster = kind === "etcd"
          ? await startEtcd(dir, spawned)
          : await startTwill(dir, spawned);
        results[kind] = await benchCluster(cluster, values.quick as boolean, phases, log);
      } catch (e) {
        log(`${kind} failed: ${(e as Error).message}`);
      } finally {
        for (const m of spawned) await m.kill("SIGKILL");
      }
    }
  } finally {
    if (!values.keep) await Deno.remove(base, { recursive: true });
  }
  if (values.json) console.log(JSON.stringify(results, null, 2));
  else {
    for (const [k, v] of Object.entries(results.wal ?? {})) console.log(`${k}: ${v.toFixed(3)}`);
    printTable(results.twill, results.etcd);
  }
  return results.twill || results.etcd ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
