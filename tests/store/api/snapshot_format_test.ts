// State-machine snapshot formats: format 3 (JSON header + binary key history) is what members
// write; format 2 (one JSON document, written by earlier versions) is still read, so a data dir
// or a peer from before the change restores; damaged history is refused, never half-restored.
import assert from "node:assert/strict";
import { encodeResult } from "../../../lib/store/kv.ts";
import { decodeHistory, encodeHistory } from "../../../lib/store/history_codec.ts";
import { MvccStateMachine } from "../../../lib/store/state_machine.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const all = {
  key: te.encode("\0"),
  rangeEnd: te.encode("\0"),
  limit: 0,
  revision: "0",
  keysOnly: false,
  countOnly: false,
  serializable: true,
};

Deno.test("a format-2 (JSON) snapshot from an earlier version restores and is rewritten as format 3", () => {
  const v2 = encodeResult({
    format: 2,
    appliedIndex: 7,
    revision: 4,
    compactRevision: 2,
    // [mod, sub, create, version, lease, tomb, value]
    keys: [
      [te.encode("a"), [[2, 0, 2, 1, "0", 0, te.encode("1")], [
        4,
        0,
        2,
        2,
        "9",
        0,
        te.encode("2"),
      ]]],
      [te.encode("b\u00ff"), [[3, 0, 3, 1, "0", 0, new Uint8Array([0, 255])]]],
    ],
    leases: [["9", 30, [te.encode("a")]]],
    dedup: [["r1", { revision: "4" }]],
  });
  const sm = MvccStateMachine.restore(te.encode(v2));
  assert.equal(sm.appliedIndex, 7);
  assert.equal(sm.revision, 4);
  assert.equal(sm.compactRevision, 2);
  const kvs = sm.range(all).kvs;
  assert.deepEqual(kvs.map((kv) => [td.decode(kv.value), kv.version, kv.lease]), [
    ["2", "2", "9"],
    ["\u0000\ufffd", "1", "0"],
  ]);
  assert.deepEqual(sm.leases().map((l) => l.id), ["9"]);
  const v3 = sm.snapshot();
  assert.equal(td.decode(v3.subarray(0, 4)), "TWS3");
  const again = MvccStateMachine.restore(v3);
  assert.deepEqual(again.range(all), sm.range(all));
  assert.deepEqual(again.eventsSince(3), sm.eventsSince(3));
  assert.deepEqual(again.snapshot(), v3);
});

Deno.test("the binary key history round-trips every field and refuses truncated or padded input", () => {
  const keys: Parameters<typeof encodeHistory>[0] = [
    ["", []],
    ["k\u0000\u00ff", [
      { mod: 2 ** 40, sub: 3, create: 5, ver: 9, value: new Uint8Array(), lease: "0", tomb: true },
      {
        mod: 7,
        sub: 0,
        create: 7,
        ver: 1,
        value: new Uint8Array([1, 2, 3]),
        lease: "123",
        tomb: false,
      },
    ]],
  ];
  const bytes = encodeHistory(keys);
  assert.deepEqual(decodeHistory(bytes), keys);
  assert.throws(() => decodeHistory(bytes.subarray(0, bytes.length - 1)), /truncated/);
  const padded = new Uint8Array(bytes.length + 1);
  padded.set(bytes);
  assert.throws(() => decodeHistory(padded), /trailing bytes/);
});

Deno.test("a lease's owner survives a snapshot; a lease from a snapshot without owners has none", () => {
  const sm = new MvccStateMachine();
  sm.apply(1, { op: "leaseGrant", requestId: "g1", id: "5", ttl: 30, owner: "node-a" });
  sm.apply(2, { op: "leaseGrant", requestId: "g2", id: "6", ttl: 30 });
  const again = MvccStateMachine.restore(sm.snapshot());
  assert.equal(again.lease("5")?.owner, "node-a");
  assert.equal(again.lease("6")?.owner, undefined);
  assert.deepEqual(again.snapshot(), sm.snapshot());
  // A format-3 snapshot written before owners existed: three-element lease tuples.
  const old = sm.snapshot();
  const headLen = new DataView(old.buffer, old.byteOffset).getUint32(4, true);
  const head = JSON.parse(td.decode(old.subarray(8, 8 + headLen)));
  for (const l of head.leases) l.length = 3;
  const headBytes = te.encode(JSON.stringify(head));
  const rest = old.subarray(8 + headLen);
  const out = new Uint8Array(8 + headBytes.length + rest.length);
  out.set(old.subarray(0, 4), 0);
  new DataView(out.buffer).setUint32(4, headBytes.length, true);
  out.set(headBytes, 8);
  out.set(rest, 8 + headBytes.length);
  const restored = MvccStateMachine.restore(out);
  assert.equal(restored.lease("5")?.owner, undefined);
  assert.equal(restored.lease("5")?.ttl, 30);
});
