// /v3/maintenance/status as etcd answers it: `leader` is the cluster's leader (not the member
// asked), `raftIndex` its commit index and `raftAppliedIndex` what it has applied.
import assert from "node:assert/strict";
import { createApiApp } from "../../../lib/store/api/app.ts";
import { InprocCluster, put } from "../inproc_cluster.ts";

Deno.test("maintenance status on a follower names the real leader and the commit index", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3]);
  try {
    const leader = await c.waitLeader();
    for (let i = 0; i < 5; i++) await leader.kv.write(put(`k${i}`, "v"));
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    await follower.kv.readBarrier();
    const app = createApiApp(follower.kv, { token: "t" });
    const res = await app.request("/v3/maintenance/status", {
      method: "POST",
      headers: { authorization: "Bearer t" },
      body: "{}",
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.header.member_id, String(follower.id));
    assert.equal(body.leader, String(leader.id));
    assert.equal(body.raftIndex, String(follower.kv.status().hardState.commit));
    assert.ok(Number(body.raftAppliedIndex) <= Number(body.raftIndex));
    assert.equal(body.raftAppliedIndex, String(follower.sm.appliedIndex));
  } finally {
    c.stopAll();
  }
});
