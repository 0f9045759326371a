// The one way scripts and tests run a child process (`ip`, `nft`, `sh`, the twill binary...):
// output captured as text, stdin optional, a failure reported with the command line and its
// stderr. Tests import it from here too, so a change to how children are run is made once.

export interface RunOptions {
  /** Text written to the child's stdin, then closed; without it stdin is /dev/null. */
  stdin?: string;
  /** Variables added to (not replacing) the inherited environment. */
  env?: Record<string, string>;
  /** Start from an empty environment: the child sees only `env`. */
  clearEnv?: boolean;
  cwd?: string;
  /** Kills the child when it fires (e.g. AbortSignal.timeout(ms)). */
  signal?: AbortSignal;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/** Runs `cmd args…` to completion and returns its exit code and output; never throws on a
 *  non-zero exit (a missing program still throws, as Deno.Command does). */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: opts.env,
    clearEnv: opts.clearEnv,
    cwd: opts.cwd,
    signal: opts.signal,
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const o = await child.output();
  return { code: o.code, stdout: decoder.decode(o.stdout), stderr: decoder.decode(o.stderr) };
}

/** Thrown by runOk: the command line, exit code and the child's stderr in one message. */
export class RunError extends Error {
  constructor(readonly argv: string[], readonly result: RunResult) {
    super(`${argv.join(" ")} failed (exit ${result.code}): ${result.stderr.trim()}`);
    this.name = "RunError";
  }
}

/** Runs `cmd args…` and returns its stdout; a non-zero exit throws a RunError with stderr. */
export async function runOk(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new RunError([cmd, ...args], r);
  return r.stdout;
}

/** The argv that runs `argv` inside network namespace `ns` (`ip netns exec ns …`). */
export function inNetns(ns: string, argv: string[]): string[] {
  return ["ip", "netns", "exec", ns, ...argv];
}

/** run() inside network namespace `ns`. */
export function runIn(
  ns: string,
  cmd: string,
  args: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const [c, ...a] = inNetns(ns, [cmd, ...args]);
  return run(c, a, opts);
}

/** runOk() inside network namespace `ns`. */
export function runOkIn(
  ns: string,
  cmd: string,
  args: string[],
  opts: RunOptions = {},
): Promise<string> {
  const [c, ...a] = inNetns(ns, [cmd, ...args]);
  return runOk(c, a, opts);
}

/** Whether process `pid` still exists (SIGCONT changes nothing for a running process). */
export function processAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}
