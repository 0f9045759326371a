// One worker process of scripts/bench-scale.ts: it holds a slice of the emulated nodes, each
// doing against the store what lib/agent does at startup and after (lib/agent/agent.ts with
// lib/subnet/etcd_client_registry.ts): list the subnets prefix, grant a store lease, create its
// subnet key with that lease (a compare-guarded txn), watch the prefix from the listing's
// revision + 1, and resume the watch from the last revision seen + 1 after an error, one second
// later, on whichever member answers. Each node has its own EtcdClient (as each agent does), its
// endpoints rotated so that nodes spread over the members. Leases are kept alive with
// keep-alive calls (the agent renews a 24 h lease by a fresh grant once a day; a keep-alive
// every `keepaliveMs` is the heavier, steady version of that load).
//
// Protocol: one JSON command per line on stdin, one JSON answer per line on stdout (answers
// carry the command's `id`). Everything a node records is bounded by the run's event count.
import { EtcdClient, type EtcdClientOptions, text } from "../lib/etcd/client.ts";

interface Config {
  endpoints: string[];
  token?: string;
  tls?: EtcdClientOptions["tls"];
  prefix: string;
  ttlSeconds: number;
  keepaliveMs: number;
}

interface Node {
  index: number;
  client: EtcdClient;
  lease: string;
  /** Every revision this node's watch delivered, in order of delivery. */
  revs: number[];
  /** The first revision this node's watch asked for (its listing's + 1). */
  startRev: number;
  lastRev: number;
  /** Watch streams opened (1 + resumptions) and when the latest one was created. */
  opens: number;
  lastOpenAt: number;
}

/** Per watched key: how many nodes saw it and when the last and first of them did. */
interface Seen {
  count: number;
  firstAt: number;
  lastAt: number;
}

const MAX_SEEN_KEYS = 50_000;

let cfg: Config | undefined;
const nodes: Node[] = [];
const seen = new Map<string, Seen>();
const stop = new AbortController();
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    stop.signal.addEventListener("abort", () => {
      clearTimeout(t);
      r();
    }, { once: true });
  });

function subnetKey(prefix: string, i: number): string {
  return `${prefix}10.${(i >> 8) & 255}.${i & 255}.0-24`;
}

function leaseValue(i: number): string {
  const ip = `127.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const mac = `0a:58:${
    [i >> 24, i >> 16, i >> 8, i].map((b) => (b & 255).toString(16).padStart(2, "0")).join(":")
  }`;
  return JSON.stringify({
    PublicIP: ip,
    BackendType: "vxlan",
    BackendData: { VNI: 1, VtepMAC: mac },
  });
}

function record(node: Node, key: string, rev: number): void {
  node.revs.push(rev);
  node.lastRev = rev;
  know(key, now());
}

/** One more node knows `key` (from its watch, or from the listing it joined with). */
function know(key: string, at: number): void {
  const s = seen.get(key);
  if (s) {
    s.count++;
    s.lastAt = Math.max(s.lastAt, at);
    s.firstAt = Math.min(s.firstAt, at);
  } else if (seen.size < MAX_SEEN_KEYS) seen.set(key, { count: 1, firstAt: at, lastAt: at });
}

/** Opens the node's watch from `from`; resolves once it is created (or rejects). The stream is
 *  then read in the background, and reopened from the last revision + 1 after an error. */
async function openWatch(node: Node, from: number): Promise<void> {
  const c = cfg!;
  const stream = node.client.watch(c.prefix, {
    prefix: true,
    startRevision: String(from),
    signal: stop.signal,
  });
  const first = await stream.next();
  if (first.done || !first.value.created) {
    await stream.return(undefined);
    throw new Error(first.done ? "watch ended before creation" : "watch not created");
  }
  node.opens++;
  node.lastOpenAt = now();
  void (async () => {
    try {
      for await (const w of stream) {
        if (w.canceled) throw new Error(`watch canceled: ${w.cancelReason}`);
        for (const e of w.events) record(node, text(e.kv.key), Number(e.kv.modRevision));
      }
    } catch { /* resumed below, as the agent does */ }
    while (!stop.signal.aborted) {
      await sleep(1000);
      if (stop.signal.aborted) return;
      try {
        await openWatch(node, node.lastRev + 1);
        return;
      } catch { /* every member refused: try again in a second */ }
    }
  })();
}

/** Lists, grants and creates the node's key, retried a second apart as the agent retries its
 *  lease acquisition; a key already holding our value is ours (an earlier attempt whose answer
 *  was lost), as the agent adopts the lease that holds its PublicIP. */
async function acquire(client: EtcdClient, index: number): Promise<{ lease: string; rev: number }> {
  const c = cfg!;
  const key = subnetKey(c.prefix, index);
  const value = leaseValue(index);
  for (let attempt = 1;; attempt++) {
    try {
      const listed = await client.range(c.prefix, { prefix: true });
      const listedAt = now();
      // Counted once per node: only the attempt that succeeds gets here without throwing.
      const known = () => {
        for (const kv of listed.kvs) know(text(kv.key), listedAt);
      };
      const mine = listed.kvs.find((kv) => text(kv.key) === key);
      if (mine && text(mine.value) === value) {
        known();
        return { lease: mine.lease, rev: Number(listed.header.revision) };
      }
      if (mine) throw new Error(`node ${index}: ${key} is taken by another value`);
      const grant = await client.leaseGrant(c.ttlSeconds);
      const r = await client.txn({
        compare: [{ key, target: "VERSION", result: "EQUAL", version: "0" }],
        success: [{ put: { key, value, lease: grant.id } }],
      });
      if (!r.succeeded) throw new Error(`node ${index}: ${key} was created meanwhile`);
      known();
      return { lease: grant.id, rev: Number(listed.header.revision) };
    } catch (e) {
      if (attempt >= JOIN_ATTEMPTS || stop.signal.aborted) throw e;
      joinRetries++;
      await sleep(1000);
    }
  }
}

const JOIN_ATTEMPTS = 5;
let joinRetries = 0;

async function joinNode(index: number): Promise<void> {
  const c = cfg!;
  const n = c.endpoints.length;
  const endpoints = c.endpoints.map((_, k) => c.endpoints[(index + k) % n]);
  const client = new EtcdClient({
    endpoints,
    token: c.token,
    tls: c.tls,
    requestTimeoutMs: 30_000,
  });
  const { lease, rev } = await acquire(client, index);
  const node: Node = {
    index,
    client,
    lease,
    revs: [],
    startRev: rev + 1,
    lastRev: rev,
    opens: 0,
    lastOpenAt: 0,
  };
  for (let attempt = 1;; attempt++) {
    try {
      await openWatch(node, rev + 1);
      break;
    } catch (e) {
      if (attempt >= JOIN_ATTEMPTS || stop.signal.aborted) throw e;
      joinRetries++;
      await sleep(1000);
    }
  }
  nodes.push(node);
}

async function join(from: number, count: number, concurrency: number) {
  const t0 = now();
  const retries0 = joinRetries;
  let next = from;
  const errors: string[] = [];
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < from + count) {
      const i = next++;
      try {
        await joinNode(i);
      } catch (e) {
        if (errors.length < 5) errors.push((e as Error).message);
        else errors.length++;
      }
    }
  }));
  return {
    ms: now() - t0,
    failed: errors.length,
    errors: errors.filter(Boolean),
    retries: joinRetries - retries0,
  };
}

/** Keeps every node's lease alive, spread evenly over the interval. */
async function keepaliveLoop(): Promise<void> {
  const c = cfg!;
  let k = 0;
  let failures = 0;
  while (!stop.signal.aborted) {
    if (nodes.length === 0) {
      await sleep(200);
      continue;
    }
    await sleep(c.keepaliveMs / nodes.length);
    const node = nodes[k++ % nodes.length];
    node.client.leaseKeepAlive(node.lease).catch(() => failures++);
  }
}

/** Compares each node's delivered revisions above `floor` with the reference sequence. */
function check(floor: number, reference: number[]) {
  let lost = 0;
  let duplicated = 0;
  let extra = 0;
  let unordered = 0;
  let badNodes = 0;
  const ref = new Set(reference);
  const head = reference.length ? reference[reference.length - 1] : floor;
  for (const node of nodes) {
    const from = Math.max(floor + 1, node.startRev);
    const mine = node.revs.filter((r) => r >= from && r <= head);
    const set = new Set<number>();
    let bad = false;
    for (let j = 0; j < mine.length; j++) {
      if (set.has(mine[j])) duplicated++, bad = true;
      set.add(mine[j]);
      if (!ref.has(mine[j])) extra++, bad = true;
      if (j > 0 && mine[j] < mine[j - 1]) unordered++, bad = true;
    }
    for (const r of reference) if (r >= from && !set.has(r)) lost++, bad = true;
    if (bad) badNodes++;
  }
  return { nodes: nodes.length, lost, duplicated, extra, unordered, badNodes };
}

function stats(keys: string[]) {
  const out: Record<string, Seen | null> = {};
  for (const k of keys) out[k] = seen.get(k) ?? null;
  let opens = 0;
  let lastOpenAt = 0;
  for (const n of nodes) {
    opens += n.opens;
    lastOpenAt = Math.max(lastOpenAt, n.lastOpenAt);
  }
  return { nodes: nodes.length, keys: out, opens, lastOpenAt };
}

// deno-lint-ignore no-explicit-any
async function handle(cmd: any): Promise<unknown> {
  switch (cmd.op) {
    case "config":
      cfg = cmd.config as Config;
      void keepaliveLoop();
      return { pid: Deno.pid };
    case "join":
      return await join(cmd.from, cmd.count, cmd.concurrency);
    case "stats":
      return stats(cmd.keys as string[]);
    case "check":
      return check(cmd.floor, cmd.reference);
    case "rss":
      return {
        rssKiB: Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))?.[1]),
      };
    case "stop":
      stop.abort();
      return {};
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

async function main(): Promise<void> {
  const out = Deno.stdout;
  const enc = new TextEncoder();
  const reply = (o: unknown) => {
    const b = enc.encode(JSON.stringify(o) + "\n");
    for (let off = 0; off < b.length;) off += out.writeSync(b.subarray(off));
  };
  let buf = "";
  const dec = new TextDecoder();
  for await (const chunk of Deno.stdin.readable) {
    buf += dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.trim()) continue;
      const cmd = JSON.parse(line);
      handle(cmd).then(
        (r) => reply({ id: cmd.id, ok: true, result: r }),
        (e) => reply({ id: cmd.id, ok: false, error: String((e as Error)?.message ?? e) }),
      );
      if (cmd.op === "stop") {
        setTimeout(() => Deno.exit(0), 200);
      }
    }
  }
  Deno.exit(0);
}

if (import.meta.main) await main();
