// The member table's side of a demotion (lib/store/member/members.ts): the removal that starts it
// keeps the member's entry, flagged, until it is added back as a learner.
import assert from "node:assert/strict";
import {
  decodeConfContext,
  encodeConfContext,
  MemberTable,
} from "../../lib/store/member/members.ts";

function table(): MemberTable {
  return MemberTable.from({
    members: [
      { id: 1, address: "a:1", name: "a" },
      { id: 2, address: "b:1", name: "b" },
    ],
    maxId: 2,
  });
}

Deno.test("the demote flag survives encoding; a plain context carries none", () => {
  const ctx = { address: "b:1", name: "b", demote: true };
  assert.deepEqual(decodeConfContext(encodeConfContext(ctx)), ctx);
  assert.deepEqual(decodeConfContext(encodeConfContext({ address: "b:1", name: "b" })), {
    address: "b:1",
    name: "b",
  });
});

Deno.test("a demoting removal keeps the entry; the learner add clears the flag", () => {
  const t = table();
  t.apply({
    type: "removeNode",
    nodeId: 2,
    context: encodeConfContext({ address: "b:1", name: "b", demote: true }),
  });
  assert.deepEqual(t.get(2), { id: 2, address: "b:1", name: "b", demoting: true });
  assert.deepEqual(t.demoting(), [2]);
  // The flag rides in snapshots, so a new leader finishes the demotion.
  assert.deepEqual(MemberTable.from(t.toData()).demoting(), [2]);
  t.apply({
    type: "addLearner",
    nodeId: 2,
    context: encodeConfContext({ address: "b:1", name: "b" }),
  });
  assert.deepEqual(t.get(2), { id: 2, address: "b:1", name: "b" });
  assert.deepEqual(t.demoting(), []);
});

Deno.test("a plain removal still deletes the entry", () => {
  const t = table();
  t.apply({ type: "removeNode", nodeId: 2 });
  assert.equal(t.get(2), undefined);
  assert.equal(t.maxId, 2);
});
