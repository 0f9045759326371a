// Leases on a replicated store: granted and kept alive through a follower (forwarded to the
// leader, which alone keeps deadlines), expired by the leader through Raft when keep-alives stop,
// and given a fresh TTL by a new leader after failover.
import assert from "node:assert/strict";
import { b64, post, withCluster } from "./process_cluster.ts";

Deno.test({
  name: "leases: keep-alive through a follower, expiry through Raft, survival across failover",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 50, size: 3 }, async (c) => {
      await c.start(3);
      let leader = await c.waitLeader();
      const follower = c.members.find((m) => m !== leader)!;
      const g = await post(follower.address, "/v3/lease/grant", { TTL: "3" });
      assert.equal(g.status, 200, JSON.stringify(g.body));
      const id = String(g.body.ID);
      assert.equal(
        (await post(follower.address, "/v3/kv/put", {
          key: b64("/l/a"),
          value: b64("x"),
          lease: id,
        })).status,
        200,
      );
      // Keep it alive through the follower for longer than its TTL.
      for (let i = 0; i < 5; i++) {
        const k = await post(follower.address, "/v3/lease/keepalive", { ID: id });
        assert.equal(k.status, 200, JSON.stringify(k.body));
        await new Promise((r) => setTimeout(r, 1000));
      }
      const ttl = await post(follower.address, "/v3/lease/timetolive", { ID: id });
      assert.equal(ttl.status, 200);
      assert.ok(Number(ttl.body.TTL) >= 1, `ttl left ${JSON.stringify(ttl.body)}`);
      const still = await post(follower.address, "/v3/kv/range", { key: b64("/l/a") });
      assert.equal((still.body.kvs as unknown[]).length, 1, "kept-alive lease still holds its key");

      // A second lease survives a leader failover (the new leader gives it a full TTL).
      const g2 = await post(follower.address, "/v3/lease/grant", { TTL: "10" });
      const id2 = String(g2.body.ID);
      await post(follower.address, "/v3/kv/put", { key: b64("/l/b"), value: b64("y"), lease: id2 });
      await c.kill(leader);
      leader = await c.waitLeader();
      const k2 = await post(leader.address, "/v3/lease/keepalive", { ID: id2 });
      assert.equal(k2.status, 200);

      // Stop keeping the first lease alive: the leader expires it and the key goes everywhere.
      await c.waitFor(
        async () => {
          const r = await post(leader.address, "/v3/kv/range", {
            key: b64("/l/a"),
            serializable: true,
          });
          return r.status === 200 && r.body.kvs === undefined;
        },
        10_000,
        "the lease to expire and take its key",
      );
      const other = c.members.find((m) => m !== leader && !m.stopped)!;
      await c.waitFor(
        async () => {
          const r = await post(other.address, "/v3/kv/range", {
            key: b64("/l/a"),
            serializable: true,
          });
          return r.status === 200 && r.body.kvs === undefined;
        },
        5000,
        "expiry replicated",
      );
      const b = await post(other.address, "/v3/kv/range", { key: b64("/l/b") });
      assert.equal((b.body.kvs as unknown[]).length, 1, "the other lease survived failover");
    });
  },
});
