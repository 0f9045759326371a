// A --store-only member serves /healthz, /readyz and /metrics like every other node: ready while
// it is in contact with a leader and caught up, not ready (but alive) once it has lost its quorum.
import assert from "node:assert/strict";
import { b64, post, withCluster } from "./process_cluster.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function get(host: string, port: number, path: string) {
  try {
    const r = await fetch(`http://${host}:${port}${path}`, { signal: AbortSignal.timeout(4000) });
    return { status: r.status, body: await r.text() };
  } catch (e) {
    return { status: 0, body: (e as Error).message };
  }
}

async function until<T>(what: string, f: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const end = Date.now() + 20_000;
  for (;;) {
    const v = await f();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

Deno.test("store-only member: /healthz, /readyz (leader contact) and /metrics on --healthz-port", async () => {
  const port = freePort();
  await withCluster(
    { base: 90, size: 2, extraArgs: ["--healthz-port", String(port)] },
    async (c) => {
      await c.start(2);
      const [m1, m2] = c.members;
      const h1 = m1.address.split(":")[0];
      const h2 = m2.address.split(":")[0];
      for (const h of [h1, h2]) {
        assert.deepEqual(await get(h, port, "/healthz"), { status: 200, body: "ok\n" });
        await until(`${h} ready`, () => get(h, port, "/readyz"), (r) => r.status === 200);
      }
      const put = await post(m1.address, "/v3/kv/put", { key: b64("/k"), value: b64("v") });
      assert.equal(put.status, 200);
      const leader = await c.waitLeader();
      const lh = leader.address.split(":")[0];
      const m = (await get(lh, port, "/metrics")).body;
      assert.match(m, /^twill_store_role\{role="leader"\} 1$/m);
      assert.match(m, /^# TYPE twill_store_commit_seconds histogram$/m);
      assert.match(m, /^twill_store_commit_seconds_count [1-9]\d*$/m);
      assert.match(m, /^twill_store_leader_changes_total [1-9]\d*$/m);
      assert.match(m, /^twill_peer_rtt_seconds\{peer="\d+"\} \d/m);
      assert.equal((await get(lh, port, "/nope")).status, 404);

      // Without its peer the other member has no quorum: alive, but not ready.
      const other = leader === m1 ? m2 : m1;
      const oh = other.address.split(":")[0];
      await c.kill(leader);
      const r = await until(
        `${oh} not ready`,
        () => get(oh, port, "/readyz"),
        (r) => r.status === 503,
      );
      assert.match(r.body, /^(no leader known|not caught up with the leader: .+)\n$/);
      assert.equal((await get(oh, port, "/healthz")).status, 200);
    },
  );
});
