// ReadIndex request contexts identify one batch of linearizable reads. A response still in flight
// for a previous incarnation of a member must never satisfy a read of the next one (it could carry
// an older index), so contexts never repeat across restarts, however fast they come.
import assert from "node:assert/strict";
import { InprocCluster } from "./inproc_cluster.ts";
import { MemberTable } from "../../lib/store/member/members.ts";

Deno.test("read index contexts never repeat across a fast crash-restart loop", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3]);
  const contexts: string[] = [];
  const dec = new TextDecoder();
  c.drop = (_from, m) => {
    if (m.type === "MsgReadIndex") contexts.push(dec.decode(m.entries[0].data));
    return false;
  };
  try {
    const leader = await c.waitLeader();
    const id = [...c.nodes.keys()].find((k) => k !== leader.id)!;
    for (let round = 0; round < 20; round++) {
      const node = c.nodes.get(id)!;
      await c.waitFor(() => node.kv.leader !== 0, 3000, "the restarted member to see a leader");
      await node.kv.readBarrier();
      // Crash and restart at once from the same storage (nothing about reads is persisted).
      c.stop(id);
      c.start(id, node.storage, MemberTable.from(node.kv.members.toData()));
    }
    assert.ok(contexts.length >= 20, `saw ${contexts.length} read requests`);
    assert.equal(new Set(contexts).size, contexts.length, `repeated: ${contexts.join(" ")}`);
  } finally {
    c.stopAll();
  }
});
