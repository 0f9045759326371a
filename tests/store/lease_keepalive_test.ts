// Lease liveness is answered by the leader from its applied state. A leader that has committed
// more than it has applied (a new leader catching up, or one whose own save is slow) first
// applies up to its commit index, as etcd 3.5's waitAppliedIndex does: a lease granted just
// before must not be reported "not found".
import assert from "node:assert/strict";
import { InprocCluster, put } from "./inproc_cluster.ts";

Deno.test("keepalive on a leader that has committed a lease grant it has not applied yet waits for it", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3], 10, 1000, {}, true);
  try {
    // A leader that has committed in its own term (elections at start may still churn).
    await (await c.waitLeader()).kv.write(put("warm", "1"));
    const leader = await c.waitLeader();
    await leader.kv.readBarrier();
    // Hold the leader's save of the grant: what it commits meanwhile (the followers acknowledge)
    // cannot be applied until that save is done.
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const save = leader.storage.save.bind(leader.storage);
    const grantIndex = leader.storage.lastIndex() + 1;
    leader.storage.save = async (rd) => {
      if (rd.entries.some((e) => e.index >= grantIndex)) await gate;
      return await save(rd);
    };
    const granted = leader.kv.write({ op: "leaseGrant", requestId: "grant", id: "77", ttl: 30 });
    granted.catch(() => {}); // awaited below; only a failed test leaves it pending at stop
    await c.waitFor(
      () => leader.kv.status().hardState.commit >= grantIndex,
      3000,
      "the grant to commit on the leader",
    );
    assert.ok(leader.kv.appliedIndex < grantIndex, "committed but not applied yet");
    const keepAlive = leader.kv.leaseKeepAlive("77");
    const timeToLive = leader.kv.leaseTimeToLive("77");
    setTimeout(open, 50);
    assert.deepEqual(await keepAlive, { ttl: 30 });
    assert.equal((await timeToLive)?.grantedTtl, 30);
    await granted;
  } finally {
    c.stopAll();
  }
});
