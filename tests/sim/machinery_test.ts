import assert from "node:assert/strict";
import { EventQueue } from "../../lib/sim/event_queue.ts";
import { SimNetwork } from "../../lib/sim/network.ts";
import { Prng } from "../../lib/sim/prng.ts";
import { KvStateMachine } from "../../lib/sim/kv_state_machine.ts";
import { SafetyMonitor } from "../../lib/sim/safety.ts";

Deno.test("events come out by time, ties in insertion order", () => {
  const q = new EventQueue<string>();
  const p = new Prng(3);
  const expected: [number, number, string][] = [];
  for (let i = 0; i < 500; i++) {
    const t = p.int(50);
    q.schedule(t, `e${i}`);
    expected.push([t, i, `e${i}`]);
  }
  expected.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const got: string[] = [];
  for (let e = q.pop(); e !== undefined; e = q.pop()) got.push(e.event);
  assert.deepEqual(got, expected.map((x) => x[2]));
  assert.equal(q.peekTime(), Infinity);
});

Deno.test("network: cuts are directed, partitions cut both ways, heal restores", () => {
  const net = new SimNetwork(new Prng(1));
  net.cut(1, 2);
  assert.equal(net.isCut(1, 2), true);
  assert.equal(net.isCut(2, 1), false);
  net.healAll();
  net.partition([[1], [2, 3]]);
  assert.deepEqual([net.isCut(1, 2), net.isCut(2, 1), net.isCut(3, 1), net.isCut(2, 3)], [
    true,
    true,
    true,
    false,
  ]);
  net.healAll();
  assert.equal(net.cutLinks, 0);
});

Deno.test("network: loss and duplication happen at about the configured rates", () => {
  const net = new SimNetwork(new Prng(5));
  net.faults = {
    dropRate: 0.2,
    duplicateRate: 0.1,
    minDelay: 1,
    maxDelay: 10,
    spikeRate: 0.05,
    spikeMax: 100,
  };
  let copies = 0;
  for (let i = 0; i < 10_000; i++) {
    const plan = net.plan();
    copies += plan.length;
    for (const d of plan) assert.ok(d >= 1 && d <= 110);
  }
  assert.ok(net.stats.dropped > 1800 && net.stats.dropped < 2200, `dropped ${net.stats.dropped}`);
  assert.ok(
    net.stats.duplicated > 600 && net.stats.duplicated < 1000,
    `duplicated ${net.stats.duplicated}`,
  );
  assert.ok(net.stats.delayed > 0);
  assert.equal(copies, 10_000 - net.stats.dropped + net.stats.duplicated);
});

Deno.test("state machine: a repeated request id returns the remembered result, an older one is ignored", () => {
  const sm = new KvStateMachine();
  assert.deepEqual(
    sm.apply({ client: 1, seq: 1, input: { op: "cas", key: "k", expected: null, value: "a" } }),
    { ok: true },
  );
  assert.deepEqual(
    sm.apply({ client: 1, seq: 1, input: { op: "cas", key: "k", expected: null, value: "a" } }),
    { ok: true },
  );
  assert.deepEqual(sm.apply({ client: 1, seq: 2, input: { op: "put", key: "k", value: "b" } }), {});
  assert.equal(sm.apply({ client: 1, seq: 1, input: { op: "put", key: "k", value: "zzz" } }), null);
  assert.equal(sm.get("k"), "b");
  const copy = KvStateMachine.restore(sm.snapshot());
  assert.deepEqual(copy.snapshot(), sm.snapshot());
  assert.deepEqual(
    copy.apply({ client: 1, seq: 2, input: { op: "put", key: "k", value: "b" } }),
    {},
  );
});

Deno.test("safety monitor: two leaders in one term and divergent commits are violations", () => {
  const m = new SafetyMonitor();
  m.committed.set(1, 11);
  m.observeLeader(1, 2, () => undefined, 1, 1);
  assert.throws(
    () => m.observeLeader(2, 2, () => undefined, 1, 1),
    /election safety: nodes 1 and 2 are both leader of term 2/,
  );
  const chainA = new Map([[1, 11], [2, 22]]);
  const chainB = new Map([[1, 11], [2, 33]]);
  m.observeCommit(1, 2, 1, 2, (i) => chainA.get(i), 1);
  assert.throws(() => m.observeCommit(2, 2, 1, 2, (i) => chainB.get(i), 1), /state machine safety/);
  m.observePersisted(3, 5, 2, 1234, 0);
  assert.throws(
    () => m.observePersisted(4, 5, 2, 999, 0),
    /log matching: node 4 holds entry 5 of term 2/,
  );
});
