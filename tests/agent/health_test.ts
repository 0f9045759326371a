import assert from "node:assert/strict";
import { healthHandler } from "../../lib/agent/health.ts";
import { AgentState } from "../../lib/agent/state.ts";
import { formatLogLine } from "../../lib/log.ts";

function setup(now: { t: number }) {
  const state = new AgentState();
  const h = healthHandler(state, {
    now: () => now.t,
    storeThresholdMs: 30_000,
    reconcileStuckMs: 30_000,
    storeStatus: () => ({ role: "leader", term: 3, commitIndex: 42 }),
  });
  const get = async (path: string) => {
    const r = await h(new Request(`http://x${path}`));
    return { status: r.status, body: await r.text() };
  };
  return { state, get };
}

Deno.test("readyz: 503 with the reason until lease, backend and subnet.env are there", async () => {
  const now = { t: 1000 };
  const { state, get } = setup(now);
  assert.deepEqual(await get("/readyz"), { status: 503, body: "no subnet lease yet\n" });
  state.leaseHeld = true;
  assert.deepEqual(await get("/readyz"), { status: 503, body: "backend not programmed yet\n" });
  state.backendProgrammed = true;
  assert.deepEqual(await get("/readyz"), { status: 503, body: "subnet.env not written yet\n" });
  state.subnetEnvWritten = true;
  assert.deepEqual(await get("/readyz"), { status: 200, body: "ok\n" });
  assert.equal((await get("/nope")).status, 404);
});

Deno.test("healthz: 503 when the store is unreachable past the threshold or reconcile is stuck", async () => {
  const now = { t: 100_000 };
  const { state, get } = setup(now);
  assert.equal((await get("/healthz")).status, 200);
  state.storeFailed(now.t, new Error("connection refused"));
  now.t += 20_000;
  assert.equal((await get("/healthz")).status, 200, "within the threshold");
  now.t += 15_000;
  const h = await get("/healthz");
  assert.equal(h.status, 503);
  assert.match(h.body, /^store unreachable for 35s: connection refused/);
  state.storeOk(now.t);
  state.lastReconcileAt = now.t;
  now.t += 31_000;
  assert.match((await get("/healthz")).body, /^reconcile loop stuck/);
});

Deno.test("metrics: Prometheus text with lease, peers, reconcile, watch and store figures", async () => {
  const { state, get } = setup({ t: 0 });
  state.leaseHeld = true;
  state.leaseExpiresAt = 86_400_000;
  state.peersProgrammed = 7;
  state.reconcileErrors = 2;
  state.watchRevision = 99n;
  const m = (await get("/metrics")).body;
  assert.match(m, /^# HELP twill_lease_held /m);
  assert.match(m, /^twill_lease_held 1$/m);
  assert.match(m, /^twill_lease_expiry_timestamp_seconds 86400$/m);
  assert.match(m, /^twill_peers_programmed 7$/m);
  assert.match(m, /^twill_reconcile_errors_total 2$/m);
  assert.match(m, /^twill_watch_revision 99$/m);
  assert.match(m, /^twill_store_role\{role="leader"\} 1$/m);
  assert.match(m, /^twill_store_commit_index 42$/m);
  assert.match(
    m,
    /^# TYPE twill_lease_to_kernel_seconds histogram$/m,
    "the registry's metrics too",
  );
});

Deno.test("log lines are one greppable key=value line", () => {
  assert.equal(
    formatLogLine("info", "lease_acquired", { subnet: "10.5.3.0/24", how: "reused", n: 3 }),
    "level=info event=lease_acquired subnet=10.5.3.0/24 how=reused n=3",
  );
  assert.equal(
    formatLogLine("warn", "x", { error: 'store "a" unreachable' }),
    'level=warn event=x error="store \\"a\\" unreachable"',
  );
});

Deno.test("store-only member: healthz follows the member, readyz needs a leader and a confirmed read", async () => {
  const { memberHealthHandler } = await import("../../lib/agent/health.ts");
  const st = { role: "follower", term: 4, leader: 0, commit: 10, applied: 10 };
  const broken: { error?: Error } = {};
  let caughtUp: () => Promise<void> = () => Promise.resolve();
  const h = memberHealthHandler({
    status: () => st,
    failure: () => broken.error,
    caughtUp: () => caughtUp(),
  });
  const get = async (path: string) => {
    const r = await h(new Request(`http://x${path}`));
    return { status: r.status, body: await r.text() };
  };
  assert.deepEqual(await get("/healthz"), { status: 200, body: "ok\n" });
  assert.deepEqual(await get("/readyz"), { status: 503, body: "no leader known\n" });
  st.leader = 2;
  assert.deepEqual(await get("/readyz"), { status: 200, body: "ok\n" });
  caughtUp = () => Promise.reject(new Error("read index timed out"));
  assert.deepEqual(await get("/readyz"), {
    status: 503,
    body: "not caught up with the leader: read index timed out\n",
  });
  const m = (await get("/metrics")).body;
  assert.match(m, /^twill_store_role\{role="follower"\} 1$/m);
  assert.match(m, /^twill_store_applied_index 10$/m);
  assert.match(m, /^# TYPE twill_store_commit_seconds histogram$/m);
  broken.error = new Error("wal damaged");
  assert.deepEqual(await get("/healthz"), {
    status: 503,
    body: "store member stopped: wal damaged\n",
  });
  assert.equal((await h(new Request("http://x/healthz", { method: "POST" }))).status, 405);
});
