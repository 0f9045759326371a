import assert from "node:assert/strict";
import { Prng } from "../../lib/sim/prng.ts";

Deno.test("the same seed gives the same stream", () => {
  const a = new Prng(42), b = new Prng(42);
  for (let i = 0; i < 1000; i++) assert.equal(a.nextU32(), b.nextU32());
});

Deno.test("nearby seeds give unrelated streams", () => {
  const a = new Prng(1), b = new Prng(2);
  let same = 0;
  for (let i = 0; i < 1000; i++) if (a.nextU32() === b.nextU32()) same++;
  assert.ok(same < 3, `${same} equal draws`);
});

Deno.test("int(n) stays in range and is roughly uniform", () => {
  const p = new Prng(7);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 100_000; i++) {
    const x = p.int(10);
    assert.ok(x >= 0 && x < 10 && Number.isInteger(x));
    counts[x]++;
  }
  for (const c of counts) assert.ok(c > 9_500 && c < 10_500, `bucket ${c}`);
});

Deno.test("float is in [0,1), range is inclusive, chance respects its extremes", () => {
  const p = new Prng(9);
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i++) {
    const f = p.float();
    assert.ok(f >= 0 && f < 1);
    seen.add(p.range(3, 5));
    assert.equal(p.chance(0), false);
    assert.equal(p.chance(1), true);
  }
  assert.deepEqual([...seen].sort(), [3, 4, 5]);
});

Deno.test("bad arguments fail with a clear message", () => {
  const p = new Prng(1);
  assert.throws(() => p.int(0), /n >= 1/);
  assert.throws(() => p.pick([]), /empty array/);
});
