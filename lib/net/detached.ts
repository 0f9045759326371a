// Starting the data plane's helper daemons (wireguard-go, charon) so that they outlive the agent:
// own session (Deno's `detached`), no stdio tied to the agent (output appended to a log file), and
// a private mount namespace whose /run is `<data dir>/run`. The daemons put their sockets and pid
// files at fixed places under /run (wireguard-go has no setting for its socket directory), so this
// is what keeps several nodes sharing one machine's /run from colliding; the sockets stay
// reachable from outside at the same path under `<data dir>/run`.
import { join } from "node:path";
import { ensureDir } from "../fs_atomic.ts";

/** The directory that stands in for /run for a node's daemons. */
export function runDirOf(dataDir: string): string {
  return join(dataDir, "run");
}

/** The program was not found on PATH; `hint` says which package provides it. */
export class MissingBinaryError extends Error {
  constructor(readonly binary: string, hint: string) {
    super(`${binary} not found on PATH (${hint})`);
  }
}

/** The absolute path of `name` (an absolute or relative path is checked as given). */
export async function findExecutable(name: string, path = Deno.env.get("PATH") ?? ""): Promise<
  string | null
> {
  const candidates = name.includes("/")
    ? [name]
    : path.split(":").filter(Boolean).map((d) => join(d, name));
  for (const c of candidates) {
    try {
      const st = await Deno.stat(c);
      if (st.isFile && (st.mode ?? 0) & 0o111) return c;
    } catch { /* not here */ }
  }
  return null;
}

// $0 = the run dir, $1 = the log file, the rest the program and its arguments. Nothing the caller
// passes is ever parsed by the shell: it only binds, redirects and execs.
const LAUNCH_SCRIPT =
  'run="$0"; log="$1"; shift; mount --bind "$run" /run && exec "$@" >>"$log" 2>&1 </dev/null';

/** A daemon's log is set aside as `<log>.old` at the next start once it is this large. */
export const MAX_LOG_BYTES = 4 << 20;

async function setAsideLargeLog(logPath: string): Promise<void> {
  try {
    if ((await Deno.stat(logPath)).size > MAX_LOG_BYTES) {
      await Deno.rename(logPath, `${logPath}.old`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

export interface DetachedProcess {
  pid: number;
  /** Resolves when the process exits while the agent still runs (its exit code). */
  exited: Promise<number>;
}

/**
 * Starts `argv` detached with /run bound to `runDir`; returns once it is started, not ready.
 * Needs root (a mount namespace); `unshare` and `mount` come from util-linux/mount.
 */
export async function startDetached(
  argv: string[],
  runDir: string,
  logPath: string,
  opts: { env?: Record<string, string>; netns?: string } = {},
): Promise<DetachedProcess> {
  await ensureDir(runDir);
  await setAsideLargeLog(logPath);
  const launch = [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    LAUNCH_SCRIPT,
  ];
  // A daemon lives in the network namespace it starts in: the agent's own, unless told otherwise.
  const prefix = opts.netns ? ["nsenter", `--net=${opts.netns}`, "--"] : [];
  const [program, ...args] = [...prefix, ...launch, runDir, logPath, ...argv];
  const child = new Deno.Command(program, {
    args,
    env: opts.env ?? {},
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  child.unref();
  return { pid: child.pid, exited: child.status.then((s) => s.code) };
}
