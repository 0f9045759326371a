// `deno task sim --seeds N [--from S] …` (see USAGE): runs the deterministic cluster simulation
// for seeds S..S+N-1 and ends with `seeds: N, violations: V`. A failing seed prints the violation
// and the command that replays it with a full trace.
import { parseArgs } from "node:util";
import { runSimulation } from "../lib/sim/mod.ts";

const USAGE =
  "usage: deno task sim --seeds N [--from S] [--verbose] [--stop-on-failure] [--checks all|end-to-end] [--keep-leader-of-two] [--async-writes]";

function main(): number {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        seeds: { type: "string", default: "100" },
        from: { type: "string", default: "1" },
        verbose: { type: "boolean", default: false },
        "stop-on-failure": { type: "boolean", default: false },
        checks: { type: "string", default: "all" },
        "keep-leader-of-two": { type: "boolean", default: false },
        "async-writes": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (e) {
    console.error(`sim: ${(e as Error).message}; ${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const n = Number(values.seeds), from = Number(values.from);
  if (!Number.isSafeInteger(n) || n < 1 || !Number.isSafeInteger(from) || from < 0) {
    console.error(
      `sim: --seeds must be a positive integer and --from a non-negative integer (got ${values.seeds}, ${values.from})`,
    );
    return 2;
  }
  const checks = values.checks;
  if (checks !== "all" && checks !== "end-to-end") {
    console.error(`sim: --checks must be "all" or "end-to-end" (got ${checks})`);
    return 2;
  }
  const overrides = values["keep-leader-of-two"] ? { removeLeaderOfTwo: false } : {};
  let violations = 0;
  let events = 0;
  const began = performance.now();
  for (let seed = from; seed < from + n; seed++) {
    const r = runSimulation({
      seed,
      verbose: values.verbose,
      checks,
      overrides,
      asyncWrites: values["async-writes"],
    });
    events += r.stats.events;
    if (values.verbose) {
      for (const line of r.trace ?? []) console.log(line);
      console.log(
        `seed ${seed}: ${r.ok ? "ok" : "VIOLATION"} trace ${r.traceHash} ${
          JSON.stringify(r.stats)
        }`,
      );
    }
    if (!r.ok) {
      violations++;
      console.log(`seed ${seed} FAILED (${r.scenario})`);
      console.log(
        `  ${r.violation!.check} at t=${r.violation!.time}ms: ${
          r.violation!.message.replaceAll("\n", "\n  ")
        }`,
      );
      const mode = (checks === "all" ? "" : " --checks end-to-end") +
        (values["keep-leader-of-two"] ? " --keep-leader-of-two" : "") +
        (values["async-writes"] ? " --async-writes" : "");
      console.log(
        `  replay with a full trace: deno task sim --seeds 1 --from ${seed} --verbose${mode}`,
      );
      if (values["stop-on-failure"]) {
        if (seed - from + 1 < n) console.log(`stopping at the first failure`);
        console.log(`seeds: ${seed - from + 1}, violations: ${violations}`);
        return 1;
      }
    }
    const done = seed - from + 1;
    if (done % 500 === 0 && done < n) {
      const secs = (performance.now() - began) / 1000;
      console.log(
        `… ${done}/${n} seeds, ${violations} violations, ${secs.toFixed(0)} s, ${
          (events / secs).toFixed(0)
        } events/s`,
      );
    }
  }
  const secs = (performance.now() - began) / 1000;
  console.log(`(${secs.toFixed(1)} s, ${events} events, ${(events / secs).toFixed(0)} events/s)`);
  console.log(`seeds: ${n}, violations: ${violations}`);
  return violations === 0 ? 0 : 1;
}

Deno.exit(main());
