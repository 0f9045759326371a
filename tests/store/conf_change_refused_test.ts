// A membership change Raft refuses is reported to its caller at once and never reaches the
// member table: a change proposed while another is still pending (Raft turns it into a no-op),
// and one refused when applied (demoting a voter, removing the last voter).
import assert from "node:assert/strict";
import { InprocCluster } from "./inproc_cluster.ts";
import type { RawNode } from "../../lib/raft/rawnode.ts";

Deno.test("a change proposed while another is pending is refused at once, not after a timeout", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3]);
  try {
    const leader = await c.waitLeader();
    await leader.kv.readBarrier();
    // A change this member's driver did not propose (as one a previous leader left in the log).
    const node = (leader.kv as unknown as { node: RawNode }).node;
    node.proposeConfChange({ type: "addLearner", nodeId: 4 });
    const started = Date.now();
    await assert.rejects(
      () =>
        leader.kv.changeMembership({ type: "addLearner", nodeId: 5 }, {
          address: "n5",
          name: "n5",
        }),
      (e: Error) => {
        assert.match(e.message, /membership change refused: another conf change is pending/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 200, `answered after ${Date.now() - started} ms`);
    await c.waitFor(() => leader.kv.confState.learners.includes(4), 3000, "the first change");
    for (const n of c.nodes.values()) assert.equal(n.kv.members.get(5), undefined);
  } finally {
    c.stopAll();
  }
});

Deno.test("a change refused when applied leaves the member table alone and fails its caller", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3]);
  try {
    const leader = await c.waitLeader();
    await leader.kv.readBarrier();
    const voter = [...c.nodes.keys()].find((id) => id !== leader.id)!;
    // Demoting a voter to a learner is not supported: Raft ignores it when applied.
    await assert.rejects(
      () =>
        leader.kv.changeMembership({ type: "addLearner", nodeId: voter }, {
          address: "elsewhere:1",
          name: "x",
        }),
      (e: Error) => {
        assert.match(e.message, /membership change refused: node \d+ is a voter/);
        return true;
      },
    );
    const last = leader.kv.appliedIndex;
    await c.waitFor(
      () => [...c.nodes.values()].every((n) => n.kv.appliedIndex >= last),
      3000,
      "every member to apply the refused change",
    );
    for (const n of c.nodes.values()) {
      assert.equal(n.kv.members.get(voter)?.address, `node${voter}`, `member table of ${n.id}`);
      assert.ok(n.kv.confState.voters.includes(voter));
    }
  } finally {
    c.stopAll();
  }
});
