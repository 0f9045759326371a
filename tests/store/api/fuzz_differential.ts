// A longer random differential run than the test suite's, by hand:
//   deno run -A tests/store/api/fuzz_differential.ts [seeds=40] [first seed=100] [ops per seed=200]
// Starts etcd 3.4 on 127.0.0.1:24389/24390 (not the suite's ports) and twill on 127.0.4.1, runs
// the same seeded walks on both and prints the first differences. 100 seeds x 300 ops: 0 diffs.

import { runRandomScenario } from "./random_scenario.ts";
import { withEtcd, withTwill } from "./servers.ts";
const seeds = Array.from(
  { length: Number(Deno.args[0] ?? 40) },
  (_, i) => Number(Deno.args[1] ?? 100) + i,
);
const walk = async (ep: string, token?: string) => {
  const all = [];
  for (const s of seeds) {
    all.push(...await runRandomScenario(ep, s, Number(Deno.args[2] ?? 200), token));
  }
  return all;
};
const [etcd, twill] = await Promise.all([
  withEtcd((ep) => walk(ep), { client: 24389, peer: 24390 }),
  withTwill("t", (ep) => walk(ep, "t")),
]);
let diffs = 0;
for (let i = 0; i < etcd.length; i++) {
  if (JSON.stringify(etcd[i]) !== JSON.stringify(twill[i])) {
    if (diffs++ < 3) {
      const a = etcd[i].body as unknown[], b = twill[i].body as unknown[];
      if (!Array.isArray(a)) {
        console.log(
          "DIFF",
          i,
          JSON.stringify(etcd[i]).slice(0, 800),
          JSON.stringify(twill[i]).slice(0, 800),
        );
        continue;
      }
      console.log("DIFF", i, "lengths", a.length, b.length);
      for (let j = 0; j < Math.max(a.length, b.length); j++) {
        if (JSON.stringify(a[j]) !== JSON.stringify(b[j])) {
          console.log(
            " event",
            j,
            "\n  etcd:",
            JSON.stringify(a.slice(j, j + 2)),
            "\n  twill:",
            JSON.stringify(b.slice(j, j + 2)),
          );
          break;
        }
      }
    }
  }
}
console.log(
  "steps",
  etcd.length,
  "diffs",
  diffs,
  "ok",
  etcd.filter((s) => s.status === 200).length,
);
