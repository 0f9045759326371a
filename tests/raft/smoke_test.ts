import assert from "node:assert/strict";
import { Network } from "./harness.ts";

Deno.test("a three-node cluster elects a leader and commits a proposal everywhere", () => {
  const net = new Network([1, 2, 3]);
  net.campaign(1);
  assert.equal(net.leader(), 1);
  net.propose(1, "hello");
  net.propose(2, "via-follower");
  for (const n of net.nodes.values()) assert.deepEqual(n.applied, ["hello", "via-follower"]);
});
