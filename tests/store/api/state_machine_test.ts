// The state machine's claims, one test each: revisions and versions, txn semantics, leases,
// compaction, watch history, snapshot/restore, and request-id deduplication.

import assert from "node:assert/strict";
import {
  type Command,
  decodeCommand,
  encodeCommand,
  isApplyError,
  type PutResult,
  type RangeRequest,
  type RevisionEvents,
  type TxnResult,
} from "../../../lib/store/kv.ts";
import { MvccStateMachine } from "../../../lib/store/state_machine.ts";
import { Lessor } from "../../../lib/store/lessor.ts";
import { compactionDue } from "../../../lib/store/auto_compactor.ts";
import { LocalKv } from "../../../lib/store/local_kv.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const b = (s: string) => te.encode(s);
const s = (u: Uint8Array) => td.decode(u);

let seq = 0;
function rid(): string {
  return `r${++seq}`;
}

class Harness {
  sm = new MvccStateMachine();
  index = 0;
  apply(cmd: Command) {
    return this.sm.apply(++this.index, cmd);
  }
  put(key: string, value: string, lease = "0", prevKv = false) {
    return this.apply({ op: "put", requestId: rid(), key: b(key), value: b(value), lease, prevKv });
  }
  del(key: string, end = "", prevKv = false) {
    return this.apply({
      op: "deleteRange",
      requestId: rid(),
      key: b(key),
      rangeEnd: b(end),
      prevKv,
    });
  }
  get(key: string, opts: Partial<RangeRequest> & { end?: string } = {}) {
    return this.sm.range({
      key: b(key),
      rangeEnd: b(opts.end ?? ""),
      limit: opts.limit ?? 0,
      revision: opts.revision ?? "0",
      keysOnly: opts.keysOnly ?? false,
      countOnly: opts.countOnly ?? false,
      serializable: false,
    });
  }
}

Deno.test("a put bumps the global revision and the key's version; create revision stays", () => {
  const h = new Harness();
  assert.equal(h.sm.revision, 1);
  assert.deepEqual(h.put("a", "1"), { revision: "2" });
  const r = h.put("a", "2", "0", true) as PutResult;
  assert.equal(r.revision, "3");
  assert.equal(s(r.prevKv!.value), "1");
  const kv = h.get("a").kvs[0];
  assert.deepEqual(
    [kv.createRevision, kv.modRevision, kv.version, s(kv.value)],
    ["2", "3", "2", "2"],
  );
});

Deno.test("delete resets version and create revision; deleting nothing keeps the revision", () => {
  const h = new Harness();
  h.put("a", "1");
  h.put("a", "2");
  assert.deepEqual(h.del("a"), { revision: "4", deleted: "1", prevKvs: [] });
  assert.deepEqual(h.del("a"), { revision: "4", deleted: "0", prevKvs: [] });
  h.put("a", "3");
  const kv = h.get("a").kvs[0];
  assert.deepEqual([kv.createRevision, kv.version], ["5", "1"]);
});

Deno.test("range honours range_end, limit (more, count), keys_only, count_only and '\\0'", () => {
  const h = new Harness();
  for (const k of ["a", "b", "c", "d"]) h.put(k, k.toUpperCase());
  const r = h.get("b", { end: "d", limit: 1 });
  assert.deepEqual(r.kvs.map((kv) => s(kv.key)), ["b"]);
  assert.equal(r.more, true);
  assert.equal(r.count, "2");
  assert.equal(h.get("a", { end: "\0" }).count, "4");
  assert.equal(h.get("a", { end: "\0", keysOnly: true }).kvs[0].value.length, 0);
  const c = h.get("a", { end: "\0", countOnly: true, limit: 1 });
  assert.deepEqual([c.kvs.length, c.count, c.more], [0, "4", false]);
});

Deno.test("range at an old revision sees the past; future and compacted revisions are refused", () => {
  const h = new Harness();
  h.put("a", "1"); // 2
  h.put("a", "2"); // 3
  h.del("a"); // 4
  assert.equal(s(h.get("a", { revision: "2" }).kvs[0].value), "1");
  assert.equal(s(h.get("a", { revision: "3" }).kvs[0].value), "2");
  assert.equal(h.get("a", { revision: "4" }).kvs.length, 0);
  assert.throws(() => h.get("a", { revision: "5" }), /future revision/);
  h.apply({ op: "compact", requestId: rid(), revision: "3" });
  assert.equal(s(h.get("a", { revision: "3" }).kvs[0].value), "2");
  assert.throws(() => h.get("a", { revision: "2" }), /has been compacted/);
  const again = h.apply({ op: "compact", requestId: rid(), revision: "3" });
  assert.ok(isApplyError(again) && again.error.code === "compacted");
  const future = h.apply({ op: "compact", requestId: rid(), revision: "9" });
  assert.ok(isApplyError(future) && future.error.code === "futureRevision");
});

Deno.test("txn compares each target and runs the matching branch; reads see earlier writes", () => {
  const h = new Harness();
  h.put("k", "v"); // 2, version 1
  const txn = (
    target: "VERSION" | "CREATE" | "MOD" | "VALUE" | "LEASE",
    result: string,
    x: string,
  ) =>
    h.apply({
      op: "txn",
      requestId: rid(),
      compare: [{
        target,
        result: result as "EQUAL",
        key: b("k"),
        rangeEnd: new Uint8Array(),
        ...(target === "VALUE" ? { value: b(x) } : { number: x }),
      }],
      success: [],
      failure: [],
    }) as TxnResult;
  assert.equal(txn("VERSION", "EQUAL", "1").succeeded, true);
  assert.equal(txn("CREATE", "LESS", "3").succeeded, true);
  assert.equal(txn("MOD", "GREATER", "2").succeeded, false);
  assert.equal(txn("VALUE", "EQUAL", "v").succeeded, true);
  assert.equal(txn("VALUE", "GREATER", "u").succeeded, true);
  assert.equal(txn("LEASE", "NOT_EQUAL", "0").succeeded, false);

  const r = h.apply({
    op: "txn",
    requestId: rid(),
    compare: [],
    success: [
      { put: { key: b("x"), value: b("1"), lease: "0", prevKv: false } },
      {
        range: {
          key: b("x"),
          rangeEnd: new Uint8Array(),
          limit: 0,
          revision: "0",
          keysOnly: false,
          countOnly: false,
          serializable: false,
        },
      },
    ],
    failure: [],
  }) as TxnResult;
  assert.equal(r.revision, "3");
  const range = (r.responses[1] as { range: { kvs: { value: Uint8Array }[] } }).range;
  assert.equal(s(range.kvs[0].value), "1");
});

Deno.test("a txn that writes one key twice is refused whole, and changes nothing", () => {
  const h = new Harness();
  const put = { put: { key: b("d"), value: b("1"), lease: "0", prevKv: false } };
  const r = h.apply({ op: "txn", requestId: rid(), compare: [], success: [put, put], failure: [] });
  assert.ok(isApplyError(r) && /duplicate key/.test(r.error.message));
  assert.equal(h.sm.revision, 1);
});

Deno.test("a put with an unknown lease fails; a lease's keys go when it is revoked or expires", () => {
  const h = new Harness();
  const bad = h.put("a", "1", "77");
  assert.ok(isApplyError(bad) && bad.error.code === "leaseNotFound");
  assert.deepEqual(h.apply({ op: "leaseGrant", requestId: rid(), id: "77", ttl: 1 }), {
    revision: "1",
    id: "77",
    ttl: 2,
  });
  h.put("a", "1", "77");
  h.put("b", "1", "77");
  assert.deepEqual(h.sm.lease("77")!.keys.map(s), ["a", "b"]);
  assert.deepEqual(h.apply({ op: "leaseRevoke", requestId: rid(), id: "77" }), { revision: "4" });
  assert.equal(h.get("a", { end: "\0" }).count, "0");
  assert.equal(h.sm.lease("77"), null);

  h.apply({ op: "leaseGrant", requestId: rid(), id: "78", ttl: 10 });
  h.put("c", "1", "78");
  const lessor = new Lessor(h.sm);
  lessor.promote(1000);
  assert.deepEqual(lessor.expired(10_999), []);
  assert.equal(lessor.ttlLeft("78", 2_500), 8);
  assert.equal(lessor.keepAlive("78", 5_000), 10);
  assert.deepEqual(lessor.expired(14_999), []);
  const ids = lessor.expired(15_000);
  assert.deepEqual(ids, ["78"]);
  assert.deepEqual(h.apply({ op: "leaseExpire", requestId: rid(), ids }), {
    revision: "6",
    expired: ["78"],
  });
  assert.equal(h.get("c").count, "0");
  assert.equal(lessor.keepAlive("78", 15_001), null);
});

Deno.test("a lease granted without an id gets a deterministic positive one", () => {
  const a = new Harness();
  const c = new Harness();
  const cmd: Command = { op: "leaseGrant", requestId: "same", id: "0", ttl: 5 };
  const x = a.apply(cmd) as { id: string };
  const y = c.apply(cmd) as { id: string };
  assert.equal(x.id, y.id);
  assert.ok(BigInt(x.id) > 0n);
});

Deno.test("the event history replays from any kept revision and reports compaction", () => {
  const h = new Harness();
  const live: RevisionEvents[] = [];
  const off = h.sm.subscribe((batch) => live.push(batch));
  h.put("a", "1"); // 2
  h.put("a", "2"); // 3
  h.del("a"); // 4
  off();
  h.put("b", "1"); // 5
  assert.deepEqual(live.map((x) => x.revision), [2, 3, 4]);
  const del = live[2].events[0];
  assert.equal(del.type, "DELETE");
  assert.equal(s(del.prevKv!.value), "2");
  assert.deepEqual(h.sm.eventsSince(3).map((x) => x.revision), [3, 4, 5]);
  h.apply({ op: "compact", requestId: rid(), revision: "4" });
  // Revision 4 only deleted a key: compacting at 4 drops it, as etcd does.
  assert.deepEqual(h.sm.eventsSince(4).map((x) => x.revision), [5]);
  assert.throws(() => h.sm.eventsSince(3), /compacted/);
});

Deno.test("a repeated request id is applied once and answered with the first result", () => {
  const h = new Harness();
  const cmd: Command = {
    op: "put",
    requestId: "once",
    key: b("a"),
    value: b("1"),
    lease: "0",
    prevKv: false,
  };
  const first = h.apply(cmd);
  const again = h.apply(cmd);
  assert.deepEqual(again, first);
  assert.equal(h.sm.revision, 2);
  assert.equal(h.get("a").kvs[0].version, "1");
});

Deno.test("snapshot/restore round-trips everything and is deterministic", () => {
  const h = new Harness();
  h.apply({ op: "leaseGrant", requestId: rid(), id: "5", ttl: 30 });
  h.put("a", "1", "5");
  h.put("b", "1");
  h.put("b", "2");
  h.del("a");
  h.apply({ op: "compact", requestId: rid(), revision: "3" });
  h.put("c", "\u00ff\u0000");
  const bytes = h.sm.snapshot();
  const copy = MvccStateMachine.restore(bytes);
  assert.deepEqual(copy.snapshot(), bytes);
  assert.equal(copy.appliedIndex, h.sm.appliedIndex);
  assert.equal(copy.revision, h.sm.revision);
  assert.equal(copy.compactRevision, 3);
  const all = { ...rangeAll, key: b("\0"), rangeEnd: b("\0") };
  assert.deepEqual(copy.range(all), h.sm.range(all));
  assert.deepEqual(copy.eventsSince(3), h.sm.eventsSince(3));
  assert.deepEqual(copy.leases(), h.sm.leases());
  // Same commands after restore give the same results on both.
  const next: Command = {
    op: "put",
    requestId: "n",
    key: b("d"),
    value: b("x"),
    lease: "5",
    prevKv: false,
  };
  assert.deepEqual(copy.apply(100, next), h.sm.apply(100, next));
  assert.deepEqual(copy.snapshot(), h.sm.snapshot());
});

Deno.test("commands survive the log codec byte for byte", () => {
  const cmd: Command = {
    op: "txn",
    requestId: "t",
    compare: [{
      target: "VALUE",
      result: "EQUAL",
      key: b("k"),
      rangeEnd: b(""),
      value: b("\u0001"),
    }],
    success: [{ put: { key: b("k"), value: b("v"), lease: "9223372036854775807", prevKv: true } }],
    failure: [{
      deleteRange: { key: b("a"), rangeEnd: b("\0"), prevKv: false },
    }],
  };
  assert.deepEqual(decodeCommand(encodeCommand(cmd)), cmd);
});

const rangeAll: RangeRequest = {
  key: b("\0"),
  rangeEnd: b("\0"),
  limit: 0,
  revision: "0",
  keysOnly: false,
  countOnly: false,
  serializable: false,
};

Deno.test("auto-compaction keeps `retain` revisions and waits until history doubles", async () => {
  assert.equal(compactionDue({ revision: 150, compactRevision: 0 }, 100), null);
  assert.equal(compactionDue({ revision: 201, compactRevision: 0 }, 100), "101");
  assert.equal(compactionDue({ revision: 250, compactRevision: 101 }, 100), null);
  const kv = new LocalKv({ expiryCheckMs: 0, retainRevisions: 10 });
  for (let i = 0; i < 25; i++) {
    await kv.write({
      op: "put",
      requestId: `ac${i}`,
      key: b("k"),
      value: b(String(i)),
      lease: "0",
      prevKv: false,
    });
  }
  assert.equal(await kv.autoCompact(), "16");
  assert.equal(kv.sm.compactRevision, 16);
  assert.equal(await kv.autoCompact(), null);
  assert.throws(() => kv.sm.eventsSince(15), /compacted/);
  assert.equal(kv.sm.eventsSince(16).length, 11);
  assert.ok(kv.sm.sizeEstimate() > 0);
});

Deno.test("event prev_kv is the key before the txn; a creating put has none (as etcd)", () => {
  const h = new Harness();
  h.put("k", "old"); // 2
  const live: RevisionEvents[] = [];
  h.sm.subscribe((batch) => live.push(batch));
  // Delete everything ("\0" ends are not duplicate-checked by etcd), then re-create k.
  h.apply({
    op: "txn",
    requestId: rid(),
    compare: [],
    success: [
      { deleteRange: { key: b("a"), rangeEnd: b("\0"), prevKv: false } },
      { put: { key: b("k"), value: b("new"), lease: "0", prevKv: false } },
      { put: { key: b("n"), value: b("x"), lease: "0", prevKv: false } },
      { deleteRange: { key: b("n"), rangeEnd: b("\0"), prevKv: false } },
    ],
    failure: [],
  });
  const [del, put, putN, delN] = live[0].events;
  assert.equal(s(del.prevKv!.value), "old");
  assert.equal(put.prevKv, undefined, "a put that creates the key has no prev_kv");
  assert.equal(putN.prevKv, undefined);
  assert.equal(delN.prevKv, undefined, "n did not exist before the txn");
});

Deno.test("compaction at a revision drops that revision's deletions from history (as etcd)", () => {
  const h = new Harness();
  h.put("a", "1"); // 2
  h.put("b", "1"); // 3
  h.apply({
    op: "txn",
    requestId: rid(),
    compare: [],
    success: [
      { deleteRange: { key: b("a"), rangeEnd: b(""), prevKv: false } },
      { put: { key: b("c"), value: b("1"), lease: "0", prevKv: false } },
    ],
    failure: [],
  }); // 4: delete a, put c
  h.apply({ op: "compact", requestId: rid(), revision: "4" });
  const [batch] = h.sm.eventsSince(4);
  assert.deepEqual(batch.events.map((e) => `${e.type} ${s(e.kv.key)}`), ["PUT c"]);
});

Deno.test("an ignore_value put of a key the same txn deleted is refused whole (etcd panics)", () => {
  const h = new Harness();
  h.put("k", "v"); // 2
  const r = h.apply({
    op: "txn",
    requestId: rid(),
    compare: [],
    success: [
      { deleteRange: { key: b("a"), rangeEnd: b("\0"), prevKv: false } },
      { put: { key: b("k"), value: b(""), lease: "0", prevKv: false, ignoreValue: true } },
    ],
    failure: [],
  });
  assert.ok(isApplyError(r) && r.error.message === "etcdserver: key not found");
  assert.equal(h.sm.revision, 2);
  assert.equal(s(h.get("k").kvs[0].value), "v");
});
