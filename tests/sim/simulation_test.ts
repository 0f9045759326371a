import assert from "node:assert/strict";
import { runSimulation, type SimStats } from "../../lib/sim/mod.ts";

/** Seeds run by the suite; `deno task sim --seeds 20000` runs many more. */
const SEEDS = 3000;
/** Every third seed runs the core with asynchronous storage writes. */
const asyncSeed = (seed: number) => seed % 3 === 0;

Deno.test(`${SEEDS} seeded chaos runs keep every Raft invariant and a linearizable history (a third with async writes)`, () => {
  const failures: string[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const asyncWrites = asyncSeed(seed);
    const r = runSimulation({ seed, asyncWrites });
    if (!r.ok) {
      failures.push(
        `seed ${seed}: ${
          r.violation!.message.split("\n")[0]
        } (replay: deno task sim --seeds 1 --from ${seed} --verbose${
          asyncWrites ? " --async-writes" : ""
        })`,
      );
    }
  }
  assert.deepEqual(failures, []);
});

Deno.test("async writes: writes really complete after messages were delivered, and crashes lose unsynced ones", () => {
  const r = runSimulation({ seed: 9, asyncWrites: true, verbose: true });
  assert.ok(r.ok, r.violation?.message);
  assert.match(r.scenario, /asyncWrites/);
  const lines = r.trace!;
  // A leader's append reaches a follower before the leader's own write of it completes.
  const overlap = lines.some((l, i) =>
    / deliver MsgApp (\d+)->\d+ .*entries=[1-9]/.test(l) &&
    lines.slice(i + 1, i + 30).some((m) =>
      m.includes(`node ${l.match(/MsgApp (\d+)/)![1]} synced entries=`)
    )
  );
  assert.ok(overlap, "no append was delivered while its leader was still writing");
  let lost = 0;
  for (let seed = 1; seed <= 100; seed++) {
    const s = runSimulation({ seed, asyncWrites: true });
    assert.ok(s.ok, `seed ${seed}: ${s.violation?.message}`);
    lost += s.stats.unsyncedWritesLost;
  }
  assert.ok(lost > 20, `crashes lost only ${lost} unsynced writes in 100 seeds`);
});

Deno.test("a seed always replays the same run (same trace hash and stats)", () => {
  for (const seed of [1, 2, 3, 77, 1234]) {
    const a = runSimulation({ seed }), b = runSimulation({ seed });
    assert.equal(a.traceHash, b.traceHash);
    assert.deepEqual(a.stats, b.stats);
    assert.equal(a.scenario, b.scenario);
  }
  assert.notEqual(runSimulation({ seed: 1 }).traceHash, runSimulation({ seed: 2 }).traceHash);
});

Deno.test("a verbose run records the same events as a quiet one", () => {
  const quiet = runSimulation({ seed: 5 });
  const loud = runSimulation({ seed: 5, verbose: true });
  assert.equal(quiet.traceHash, loud.traceHash);
  assert.ok((loud.trace?.length ?? 0) > 100);
  assert.equal(quiet.trace, undefined);
  assert.ok(loud.trace!.some((l) => l.includes("became leader")));
  assert.ok(loud.trace!.some((l) => l.includes("HEAL")));
});

Deno.test("the faults really happen across 200 seeds", () => {
  const sum: Record<string, number> = {};
  const shapes = new Set<string>();
  for (let seed = 1; seed <= 200; seed++) {
    const r = runSimulation({ seed });
    for (const [k, v] of Object.entries(r.stats as unknown as Record<string, number>)) {
      sum[k] = (sum[k] ?? 0) + v;
    }
    shapes.add(`${r.stats.voters}/${r.stats.learners}`);
  }
  const must: (keyof SimStats)[] = [
    "messagesDropped",
    "messagesDuplicated",
    "messagesCut",
    "messagesDelayed",
    "crashes",
    "freezes",
    "clockStalls",
    "leaderStrikes",
    "partitions",
    "confChangesApplied",
    "snapshotsInstalled",
    "transfers",
    "retries",
  ];
  for (const k of must) assert.ok(sum[k] > 0, `${k} never happened`);
  assert.ok(sum.leaderTerms > 200 * 2, "leaders change");
  assert.ok(sum.operations > 200 * 20, "clients do work");
  for (const shape of ["1/0", "3/0", "5/0", "3/2", "5/1"]) {
    assert.ok(shapes.has(shape), `shape ${shape} not drawn`);
  }
});

Deno.test("end-to-end checks alone also pass on the real core", () => {
  for (let seed = 1; seed <= 100; seed++) {
    const r = runSimulation({ seed, checks: "end-to-end" });
    assert.ok(r.ok, r.violation?.message);
  }
});

Deno.test("the checks catch an application that serves reads without ReadIndex", () => {
  let caught = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const r = runSimulation({ seed, appBug: "stale-reads" });
    if (!r.ok) {
      assert.equal(r.violation!.check, "linearizability");
      assert.match(r.violation!.message, /not linearizable/);
      caught++;
    }
  }
  assert.ok(caught > 5, `only ${caught} of 40 seeds caught stale reads`);
});

for (const asyncWrites of [false, true]) {
  Deno.test(
    `the checks catch an application that sends before its data is durable${
      asyncWrites ? " (async writes: acknowledgements and votes sent before their write)" : ""
    }`,
    () => {
      let caught = 0;
      for (let seed = 1; seed <= 300 && caught < 3; seed++) {
        if (!runSimulation({ seed, appBug: "send-before-sync", asyncWrites }).ok) caught++;
      }
      assert.equal(caught, 3);
    },
  );
}
