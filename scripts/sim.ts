// `deno task sim --seeds N [--from S] …` (see USAGE): runs the deterministic cluster simulation
// for seeds S..S+N-1 and ends with `seeds: N, violations: V`. A failing seed prints the violation
// and the command that replays it with a full trace.
import { parseArgs } from "node:util";
import { runSimulation, type SimResult } from "../lib/sim/mod.ts";

const USAGE =
  "usage: deno task sim --seeds N [--from S] [--verbose] [--stop-on-failure] [--checks all|end-to-end] [--keep-leader-of-two] [--async-writes]";

interface SimArgs {
  n: number;
  from: number;
  verbose: boolean;
  stopOnFailure: boolean;
  checks: "all" | "end-to-end";
  keepLeaderOfTwo: boolean;
  asyncWrites: boolean;
}

/** The validated arguments, or the exit code when there is nothing to run. */
function parse(args: string[]): SimArgs | number {
  let values;
  try {
    ({ values } = parseArgs({
      args,
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
  return {
    n,
    from,
    verbose: values.verbose,
    stopOnFailure: values["stop-on-failure"],
    checks,
    keepLeaderOfTwo: values["keep-leader-of-two"],
    asyncWrites: values["async-writes"],
  };
}

function reportFailure(a: SimArgs, seed: number, r: SimResult): void {
  console.log(`seed ${seed} FAILED (${r.scenario})`);
  console.log(
    `  ${r.violation!.check} at t=${r.violation!.time}ms: ${
      r.violation!.message.replaceAll("\n", "\n  ")
    }`,
  );
  const mode = (a.checks === "all" ? "" : " --checks end-to-end") +
    (a.keepLeaderOfTwo ? " --keep-leader-of-two" : "") +
    (a.asyncWrites ? " --async-writes" : "");
  console.log(
    `  replay with a full trace: deno task sim --seeds 1 --from ${seed} --verbose${mode}`,
  );
}

function main(): number {
  const a = parse(Deno.args);
  if (typeof a === "number") return a;
  const overrides = a.keepLeaderOfTwo ? { removeLeaderOfTwo: false } : {};
  let violations = 0;
  let events = 0;
  const began = performance.now();
  for (let seed = a.from; seed < a.from + a.n; seed++) {
    const r = runSimulation({
      seed,
      verbose: a.verbose,
      checks: a.checks,
      overrides,
      asyncWrites: a.asyncWrites,
    });
    events += r.stats.events;
    if (a.verbose) {
      for (const line of r.trace ?? []) console.log(line);
      console.log(
        `seed ${seed}: ${r.ok ? "ok" : "VIOLATION"} trace ${r.traceHash} ${
          JSON.stringify(r.stats)
        }`,
      );
    }
    if (!r.ok) {
      violations++;
      reportFailure(a, seed, r);
      if (a.stopOnFailure) {
        if (seed - a.from + 1 < a.n) console.log(`stopping at the first failure`);
        console.log(`seeds: ${seed - a.from + 1}, violations: ${violations}`);
        return 1;
      }
    }
    const done = seed - a.from + 1;
    if (done % 500 === 0 && done < a.n) {
      const secs = (performance.now() - began) / 1000;
      console.log(
        `… ${done}/${a.n} seeds, ${violations} violations, ${secs.toFixed(0)} s, ${
          (events / secs).toFixed(0)
        } events/s`,
      );
    }
  }
  const secs = (performance.now() - began) / 1000;
  console.log(`(${secs.toFixed(1)} s, ${events} events, ${(events / secs).toFixed(0)} events/s)`);
  console.log(`seeds: ${a.n}, violations: ${violations}`);
  return violations === 0 ? 0 : 1;
}

Deno.exit(main());
