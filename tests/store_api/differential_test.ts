// The same API calls against a real etcd 3.4 (started here on 127.0.0.1:24379/24380, fresh data
// dir) and against twill's API server on a LocalBackend (127.0.4.1): the normalised transcripts
// must be identical. store-raft can run the same scenario against a 3-member cluster by calling
// runDifferentialScenario with that cluster's endpoint and comparing with etcdTranscript().

import assert from "node:assert/strict";
import { createApiApp } from "../../lib/store/api/app.ts";
import { LocalBackend } from "../../lib/store/local_backend.ts";
import { runDifferentialScenario, type Step } from "./differential_scenario.ts";

const ETCD_CLIENT = "http://127.0.0.1:24379";
const ETCD_PEER = "http://127.0.0.1:24380";

/** Starts etcd 3.4 on loopback, runs `fn`, always kills it and removes its data dir. */
export async function withEtcd<T>(fn: (endpoint: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "twill-store-api-etcd-" });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("etcd", {
      args: [
        "--name",
        "diff",
        "--data-dir",
        dir,
        "--listen-client-urls",
        ETCD_CLIENT,
        "--advertise-client-urls",
        ETCD_CLIENT,
        "--listen-peer-urls",
        ETCD_PEER,
        "--initial-advertise-peer-urls",
        ETCD_PEER,
        "--initial-cluster",
        `diff=${ETCD_PEER}`,
        "--log-level",
        "error",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(
      `cannot start etcd (${
        (e as Error).message
      }); run scripts/install-deps.sh to install etcd-server`,
    );
  }
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  const drain = (async () => {
    while (true) {
      const { value, done } = await stderr.read();
      if (done) return;
      log += value;
    }
  })();
  try {
    const deadline = Date.now() + 15_000;
    while (true) {
      try {
        const r = await fetch(`${ETCD_CLIENT}/v3/maintenance/status`, {
          method: "POST",
          body: "{}",
        });
        await r.body?.cancel();
        if (r.ok) break;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`etcd did not start within 15 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return await fn(ETCD_CLIENT);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await drain.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** Serves twill's API over a fresh LocalBackend on 127.0.4.1, runs `fn`, always shuts down. */
export async function withTwill<T>(
  token: string,
  fn: (endpoint: string) => Promise<T>,
): Promise<T> {
  const backend = new LocalBackend({ expiryCheckMs: 500 });
  const app = createApiApp(backend, { token });
  const server = Deno.serve({ hostname: "127.0.4.1", port: 0, onListen() {} }, app.fetch);
  try {
    return await fn(`http://127.0.4.1:${server.addr.port}`);
  } finally {
    backend.close();
    await server.shutdown();
  }
}

function firstDifference(a: Step[], b: Step[]): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = JSON.stringify(a[i]);
    const y = JSON.stringify(b[i]);
    if (x !== y) return `step ${i} (${a[i]?.name ?? b[i]?.name}):\n twill: ${x}\n etcd:  ${y}`;
  }
  return "none";
}

Deno.test("twill's API answers the differential scenario exactly as etcd 3.4 does", async () => {
  const [etcd, twill] = await Promise.all([
    withEtcd((ep) => runDifferentialScenario(ep)),
    withTwill("diff-token", (ep) => runDifferentialScenario(ep, { token: "diff-token" })),
  ]);
  assert.ok(etcd.length > 80, `the scenario ran only ${etcd.length} steps`);
  assert.equal(twill.length, etcd.length);
  assert.deepEqual(twill, etcd, `first difference: ${firstDifference(twill, etcd)}`);
});
