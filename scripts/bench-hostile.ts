// Hostile clients against one store member (a real `twill agent --store-only` process on
// 127.0.7.231:8473), measuring what the issue asks to be bounded:
//   1. 4,000 connections that each send half a request header: how long until the member has
//      closed them all, how the API answers meanwhile (probe latency), and member RSS before,
//      at the peak and 5 s after.
//   2. one client that opens 1,000 watches from revision 1 over 4 MB of history and never
//      reads: whether and when it is cut off, and member RSS against its idle value.
//
//   flock /tmp/twill-kernel.lock deno run -A scripts/bench-hostile.ts [--json]
import { parseArgs } from "node:util";
import { join } from "node:path";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const HOST = "127.0.7.231";
const PORT = 8473;
const ADDRESS = `${HOST}:${PORT}`;
const TOKEN = "bench-hostile-token";
const te = new TextEncoder();

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function post(path: string, body: unknown, timeoutMs = 3000): Promise<Response> {
  return await fetch(`http://${ADDRESS}${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    signal: AbortSignal.timeout(timeoutMs),
  });
}

async function startMember(dir: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "agent",
      "--store-only",
      "--init",
      "--token",
      TOKEN,
      "--listen",
      ADDRESS,
      "--data-dir",
      dir,
      "--name",
      "bench",
      "--healthz-ip",
      HOST,
    ],
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  const end = Date.now() + 30_000;
  while (Date.now() < end) {
    try {
      const r = await post("/raft/status", {}, 1000);
      const s = await r.json();
      if (r.ok && Number(s.leader) > 0) return child;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill("SIGKILL");
  throw new Error("the member did not start");
}

/** Each connection sent half a header; resolves with ms until it was closed (or -1). */
async function halfHeaders(n: number, limitMs: number) {
  const t0 = performance.now();
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < n; i++) {
    const c = await Deno.connect({ hostname: HOST, port: PORT });
    await c.write(te.encode("POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Ty"));
    conns.push(c);
  }
  const opened = performance.now() - t0;
  const closedAt = conns.map(async (c) => {
    const buf = new Uint8Array(256);
    const timer = new Promise<"open">((r) => setTimeout(() => r("open"), limitMs));
    try {
      for (;;) {
        const got = await Promise.race([c.read(buf), timer]);
        if (got === "open") return -1;
        if (got === null) return performance.now() - t0;
      }
    } catch {
      return performance.now() - t0;
    } finally {
      try {
        c.close();
      } catch { /* closed */ }
    }
  });
  return { opened, closedAt: Promise.all(closedAt) };
}

/** Probes the API while `until` is pending: latencies of range requests, failures counted. */
async function probe(until: Promise<unknown>) {
  let done = false;
  until.finally(() => done = true);
  const lat: number[] = [];
  let failed = 0;
  while (!done) {
    const t = performance.now();
    try {
      const r = await post("/v3/kv/range", { key: btoa("/h/1") }, 2000);
      await r.body?.cancel();
      if (r.ok) lat.push(performance.now() - t);
      else failed++;
    } catch {
      failed++;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  lat.sort((a, b) => a - b);
  return { answered: lat.length, failed, p50: lat[lat.length >> 1], max: lat[lat.length - 1] };
}

async function phaseHalfHeaders(pid: number) {
  const before = rssMiB(pid);
  let peak = before;
  const sampler = setInterval(() => peak = Math.max(peak, rssMiB(pid)), 100);
  const { opened, closedAt } = await halfHeaders(4000, 30_000);
  const api = await probe(closedAt);
  const times = await closedAt;
  clearInterval(sampler);
  // The runtime gives freed memory back when its collector gets to it, not at once.
  const after: number[] = [];
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    after.push(rssMiB(pid));
  }
  return {
    "connections opened in (ms)": Math.round(opened),
    "still open after 30 s": times.filter((t) => t < 0).length,
    "all closed after (ms)": Math.round(Math.max(...times)),
    "API answered / failed while they were open": `${api.answered} / ${api.failed}`,
    "API range p50 / max (ms)": `${api.p50?.toFixed(1)} / ${api.max?.toFixed(1)}`,
    "member RSS before / peak / 5 s after / lowest in 30 s after (MiB)": [before, peak, after[4]]
      .concat(Math.min(...after)).map((x) => x.toFixed(0)).join(" / "),
  };
}

async function phaseSlowWatcher(pid: number) {
  const idle = rssMiB(pid);
  const c = await Deno.connect({ hostname: HOST, port: PORT });
  const creates = Array.from(
    { length: 1000 },
    (_, i) =>
      JSON.stringify({ create_request: { key: btoa(`/h/${i % 50}`), start_revision: "1" } }),
  ).join("\n");
  const t0 = performance.now();
  await c.write(te.encode(
    `POST /v3/watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${te.encode(creates).length}\r\n\r\n`,
  ));
  await c.write(te.encode(creates));
  let peak = idle;
  const end = performance.now() + 20_000;
  while (performance.now() < end) {
    peak = Math.max(peak, rssMiB(pid));
    await new Promise((r) => setTimeout(r, 200));
  }
  // Now drain what reached us: a stream that was cut off ends; one still open never does.
  const buf = new Uint8Array(1 << 16);
  let received = 0;
  let cut = false;
  const deadline = performance.now() + 10_000;
  try {
    while (performance.now() < deadline) {
      const n = await Promise.race([
        c.read(buf),
        new Promise<"wait">((r) => setTimeout(() => r("wait"), 2000)),
      ]);
      if (n === "wait") break;
      if (n === null) {
        cut = true;
        break;
      }
      received += n;
    }
  } catch {
    cut = true;
  }
  try {
    c.close();
  } catch { /* closed */ }
  return {
    "cut off": cut,
    "bytes that reached the client": received,
    "member RSS idle / peak over 20 s (MiB)": `${idle.toFixed(0)} / ${peak.toFixed(0)}`,
    "peak / idle": Number((peak / idle).toFixed(2)),
    "seconds observed": Math.round((performance.now() - t0) / 1000),
  };
}

async function main() {
  const { values } = parseArgs({ options: { json: { type: "boolean" } } });
  const dir = await Deno.makeTempDir({ prefix: "twill-bench-hostile-" });
  const child = await startMember(join(dir, "m"));
  try {
    const value = "x".repeat(2048);
    for (let i = 0; i < 2000; i++) {
      const r = await post("/v3/kv/put", { key: btoa(`/h/${i % 50}`), value: btoa(value) });
      await r.body?.cancel();
    }
    await new Promise((r) => setTimeout(r, 2000));
    // The watcher first: its idle value is then the member's own, not what a flood left.
    const watcher = await phaseSlowWatcher(child.pid);
    await new Promise((r) => setTimeout(r, 5000));
    const results = {
      "a watcher that never reads (1,000 watches from revision 1)": watcher,
      "half-header connections (4,000)": await phaseHalfHeaders(child.pid),
    };
    console.log(values.json ? JSON.stringify(results) : results);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
