// A retried write is applied at most once, by construction: every proposal carries the last log
// index at which it may still be applied (`expires`, stamped once by the member that took the
// write and carried unchanged by every re-proposal). Until then the state machine remembers its
// request id; after it, a copy is refused. Both rules read only the log, so every member decides
// the same, and the memory of ids is bounded by the window, not by a count.
import assert from "node:assert/strict";
import type { Command } from "../../lib/store/kv.ts";
import { decodeCommand, encodeResult, isApplyError } from "../../lib/store/kv.ts";
import { MAX_DEDUPE_WINDOW, MvccStateMachine } from "../../lib/store/state_machine.ts";
import { InprocCluster, put as inprocPut } from "./inproc_cluster.ts";

const b = (s: string) => new TextEncoder().encode(s);
const put = (requestId: string, key: string, expires?: number): Command => ({
  op: "put",
  requestId,
  key: b(key),
  value: b("v"),
  lease: "0",
  prevKv: false,
  ...(expires === undefined ? {} : { expires }),
});

Deno.test("a write re-sent after 5,000 others is not applied a second time", () => {
  const sm = new MvccStateMachine();
  let index = 0;
  // The first copy, as a member stamps it: valid for the next 10,000 log entries.
  const first = put("retried", "x", 10_000);
  sm.apply(++index, first);
  for (let i = 0; i < 5000; i++) sm.apply(++index, put(`other-${i}`, `k${i}`, index + 10_000));
  const revision = sm.revision;
  const again = sm.apply(++index, first);
  assert.equal(sm.revision, revision, "the re-sent copy changed nothing");
  // Only the last 4,096 results are kept (a waiter normally had its answer long ago): the
  // outcome is reported unknown, never applied again.
  assert.ok(isApplyError(again) && again.error.code === "unavailable");
  const recent = `other-${4999}`;
  assert.deepEqual(sm.apply(++index, put(recent, "k4999", 20_000)), { revision: "5002" });
  assert.equal(sm.revision, revision);
});

Deno.test("a copy that arrives after its window is refused, and the id is forgotten by then", () => {
  const sm = new MvccStateMachine();
  sm.apply(1, put("late", "x", 5));
  for (let i = 2; i <= 5; i++) sm.apply(i, put(`o${i}`, `k${i}`, i + 3));
  // Index 6 is past the window: the id need not be remembered any more, and the copy is refused.
  const r = sm.apply(6, put("late", "x", 5));
  assert.ok(isApplyError(r));
  assert.equal(r.error.code, "unavailable");
  assert.equal(sm.revision, 6);
  // What a snapshot keeps is only what may still matter: ids whose window has not passed.
  const restored = MvccStateMachine.restore(sm.snapshot());
  assert.deepEqual(restored.snapshot(), sm.snapshot());
  assert.equal(restored.rememberedRequests(), 2, "o4 (until 7) and o5 (until 8)");
});

Deno.test("a proposal that names a window longer than allowed is refused whole", () => {
  const sm = new MvccStateMachine();
  const r = sm.apply(1, put("greedy", "x", 1 + MAX_DEDUPE_WINDOW + 1));
  assert.ok(isApplyError(r));
  assert.equal(r.error.code, "invalidArgument");
  assert.equal(sm.revision, 1);
  assert.equal(sm.rememberedRequests(), 0);
});

Deno.test("commands an earlier version wrote (no window) stay deduplicated", () => {
  const sm = new MvccStateMachine();
  sm.apply(1, put("legacy", "x"));
  const again = sm.apply(2, put("legacy", "x"));
  assert.deepEqual(again, { revision: "2" });
  assert.equal(sm.revision, 2);
});

Deno.test("with a small window, writes through every member during leader transfers apply at most once", async () => {
  // A window of 8 entries: most re-sent copies land after it and are refused, the rest are
  // answered from memory; none may apply twice.
  const c = InprocCluster.bootstrap([1, 2, 3], 10, 1_000_000, { dedupeWindow: 8 });
  const acked = new Set<string>();
  let refused = 0;
  let stop = false;
  try {
    await c.waitLeader();
    const writer = async (id: number, lane: number) => {
      for (let n = 0; !stop; n++) {
        const node = c.nodes.get(id)!;
        const requestId = `w${id}-${lane}-${n}`;
        try {
          await node.kv.write(inprocPut(`k${id}-${lane}`, String(n), requestId));
          acked.add(requestId);
        } catch {
          refused++; // outcome unknown (timed out, refused late copy, no leader)
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    };
    const writers = [1, 2, 3].flatMap((id) => [0, 1, 2, 3, 4, 5].map((lane) => writer(id, lane)));
    // Copies are forced two ways: a follower that stops receiving the log for 600 ms (longer
    // than two election timeouts) forwards its pending writes again, and every leader change
    // has each member propose its pending writes again.
    let starved = 0;
    let until = 0;
    c.drop = (_from, m) => m.type === "MsgApp" && m.to === starved && Date.now() < until;
    for (let t = 0; t < 6; t++) {
      const leader = c.leader();
      if (leader) {
        starved = [1, 2, 3].find((id) => id !== leader.id)!;
        until = Date.now() + 600;
      }
      await new Promise((r) => setTimeout(r, 650));
      const now = c.leader();
      if (now) now.kv.transferLeadership([1, 2, 3].find((id) => id !== now.id && id !== starved)!);
      await new Promise((r) => setTimeout(r, 100));
    }
    stop = true;
    await Promise.all(writers);
    const leader = await c.waitLeader();
    await leader.kv.write(inprocPut("done", "1"));
    const last = leader.kv.appliedIndex;
    await c.waitFor(
      () => [...c.nodes.values()].every((n) => n.kv.appliedIndex >= last),
      5000,
      "every member to apply everything",
    );
    const logs = [...c.nodes.values()].map((n) => n.sm.appliedLog.map((x) => x.requestId));
    for (const log of logs) {
      const twice = log.filter((id, i) => log.indexOf(id) !== i);
      assert.deepEqual(twice, [], "request ids applied twice");
      for (const id of acked) assert.ok(log.includes(id), `acknowledged ${id} is in the history`);
    }
    assert.deepEqual(logs[1], logs[0]);
    assert.deepEqual(logs[2], logs[0]);
    assert.ok(acked.size > 100, `only ${acked.size} writes acknowledged (${refused} not)`);
    // The test is only worth something if copies really reached the log.
    const storage = leader.storage;
    const copies = new Map<string, number>();
    for (const e of storage.entries(storage.firstIndex(), storage.lastIndex() + 1, Infinity)) {
      if (e.type !== "normal" || e.data.length === 0) continue;
      const id = decodeCommand(e.data).requestId;
      copies.set(id, (copies.get(id) ?? 0) + 1);
    }
    const resent = [...copies.values()].filter((n) => n > 1).length;
    assert.ok(resent > 0, "no write was re-sent into the log");
    console.log(`acknowledged ${acked.size}, not ${refused}, ids with copies in the log ${resent}`);
  } finally {
    stop = true;
    c.stopAll();
  }
});

Deno.test("request ids in an earlier version's snapshot are still remembered after restore", () => {
  const v2 = encodeResult({
    format: 2,
    appliedIndex: 7,
    revision: 4,
    compactRevision: 0,
    keys: [],
    leases: [],
    dedup: [["r1", { revision: "4" }]],
  });
  const sm = MvccStateMachine.restore(new TextEncoder().encode(v2));
  assert.deepEqual(sm.apply(8, put("r1", "x", 20)), { revision: "4" });
  assert.equal(sm.revision, 4);
  // Snapshots keep ids and windows, not results: still refused, the outcome reported unknown.
  const again = MvccStateMachine.restore(sm.snapshot());
  const r = again.apply(9, put("r1", "x", 20));
  assert.ok(isApplyError(r) && r.error.code === "unavailable");
  assert.equal(again.revision, 4);
});
