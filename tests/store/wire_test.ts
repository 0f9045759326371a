// Pure pieces of the store member: the Raft message codec, the snapshot envelope, the member
// table, durations and the event log format.
import assert from "node:assert/strict";
import { decodeMessage, encodeMessage } from "../../lib/store/member/message_codec.ts";
import {
  decodeSnapshotData,
  encodeSnapshotData,
} from "../../lib/store/member/snapshot_envelope.ts";
import { encodeConfContext, MemberTable } from "../../lib/store/member/members.ts";
import { formatDuration, parseDuration } from "../../lib/daemon/duration.ts";
import { formatLogLine } from "../../lib/log.ts";
import type { Message } from "../../lib/raft/types.ts";
import { encodeConfChange } from "../../lib/raft/confchange_codec.ts";

Deno.test("Raft messages survive the wire byte for byte", () => {
  const m: Message = {
    type: "MsgApp",
    to: 2,
    from: 1,
    term: 7,
    logTerm: 6,
    index: 41,
    commit: 40,
    entries: [
      { term: 7, index: 42, type: "normal", data: new Uint8Array([0, 1, 255]) },
      {
        term: 7,
        index: 43,
        type: "confChange",
        data: encodeConfChange({ type: "addNode", nodeId: 9 }),
      },
      { term: 7, index: 44, type: "normal", data: new Uint8Array() },
    ],
    reject: false,
    rejectHint: 0,
    context: new Uint8Array([5, 6]),
  };
  assert.deepEqual(decodeMessage(JSON.parse(JSON.stringify(encodeMessage(m)))), m);
  const snap: Message = {
    ...m,
    type: "MsgSnap",
    entries: [],
    context: undefined,
    snapshot: {
      data: new Uint8Array([1, 2]),
      metadata: { index: 9, term: 3, confState: { voters: [1, 2], learners: [3] } },
    },
  };
  delete snap.context;
  assert.deepEqual(decodeMessage(JSON.parse(JSON.stringify(encodeMessage(snap)))), snap);
});

Deno.test("local or malformed messages are refused by the decoder", () => {
  assert.throws(() => decodeMessage({ type: "MsgHup" } as never), /not a Raft network message/);
  assert.throws(
    () =>
      decodeMessage(
        { type: "MsgApp", to: -1, from: 1, term: 1, logTerm: 1, index: 1, commit: 1 } as never,
      ),
    /field to/,
  );
});

Deno.test("the snapshot envelope carries the member table and the state machine bytes", () => {
  const t = new MemberTable();
  t.apply({
    type: "addNode",
    nodeId: 1,
    context: encodeConfContext({ address: "10.0.0.1:8473", name: "a" }),
  });
  t.apply({
    type: "addLearner",
    nodeId: 4,
    context: encodeConfContext({ address: "10.0.0.4:8473", name: "d" }),
  });
  t.apply({ type: "removeNode", nodeId: 4 });
  const bytes = encodeSnapshotData({ members: t.toData(), sm: new Uint8Array([7, 7, 7]) });
  const back = decodeSnapshotData(bytes)!;
  assert.deepEqual(back.sm, new Uint8Array([7, 7, 7]));
  const t2 = MemberTable.from(back.members);
  assert.equal(t2.get(1)?.address, "10.0.0.1:8473");
  assert.equal(t2.get(4), undefined);
  assert.equal(t2.nextId(), 5, "ids are never reused, even after removal");
  assert.equal(decodeSnapshotData(new Uint8Array()), undefined);
  assert.throws(
    () => decodeSnapshotData(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])),
    /not a twill store snapshot/,
  );
});

Deno.test("durations parse as people write them", () => {
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("2"), 2000);
  assert.throws(() => parseDuration("5 minutes"), /not a duration/);
  assert.equal(formatDuration(90_000), "90s");
});

Deno.test("events are one greppable line", () => {
  assert.equal(
    formatLogLine("info", "leader_changed", {
      term: 3,
      leader: 2,
      note: "two words",
      skip: undefined,
    }),
    'level=info event=leader_changed term=3 leader=2 note="two words"',
  );
});
