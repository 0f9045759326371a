import assert from "node:assert/strict";
import { runChaos } from "./chaos.ts";

Deno.test("chaos: safety holds and the cluster converges under loss, duplication, reordering, partitions, crashes, compaction and membership changes (60 seeds)", () => {
  let committed = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const r = runChaos(seed);
    assert.equal(
      r.violation,
      undefined,
      `seed ${seed}: ${r.violation} (replay: deno run -A tests/raft/chaos.ts ${seed} 1)`,
    );
    committed += r.committed;
  }
  assert.ok(committed > 60 * 20, `only ${committed} entries committed over all seeds`);
});

Deno.test("chaos runs are deterministic per seed", () => {
  const a = runChaos(7, { trace: true, steps: 100 });
  const b = runChaos(7, { trace: true, steps: 100 });
  assert.deepEqual(a.events, b.events);
  assert.ok(a.events.length > 100);
});
