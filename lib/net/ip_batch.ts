// ip(8) and bridge(8) as a kernel adapter: changes go through `ip -force -batch -` /
// `bridge -force -batch -` (one child process per batch, so 1,000 peers cost one spawn), reads
// through `ip -j` / `bridge -j` (JSON; nothing human-readable is parsed). Thin on purpose: no
// decisions are made here. The VXLAN device is set up through it; per-peer entries go over
// rtnetlink in-process (lib/backend/rtnl_batch.ts) and come here only as the fallback.

export class KernelCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KernelCommandError";
  }
}

async function run(
  cmd: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

export interface BatchResult {
  ok: boolean;
  /** stderr of the batch: one line per failed command (with -force the rest still ran). */
  errors: string;
}

/** Applies `ip` commands (without the leading "ip") in one process. Empty input: no process. */
export async function ipBatch(lines: string[]): Promise<BatchResult> {
  if (!lines.length) return { ok: true, errors: "" };
  const r = await run("ip", ["-force", "-batch", "-"], lines.join("\n") + "\n");
  return { ok: r.code === 0, errors: r.stderr.trim() };
}

/** Applies `bridge` commands (without the leading "bridge") in one process. */
export async function bridgeBatch(lines: string[]): Promise<BatchResult> {
  if (!lines.length) return { ok: true, errors: "" };
  const r = await run("bridge", ["-force", "-batch", "-"], lines.join("\n") + "\n");
  return { ok: r.code === 0, errors: r.stderr.trim() };
}

/** `ip -j <args>` parsed; null when the object does not exist (e.g. no such device). */
export async function ipJson<T = unknown>(args: string[]): Promise<T | null> {
  return await jsonOf("ip", ["-j", ...args]);
}

export async function bridgeJson<T = unknown>(args: string[]): Promise<T | null> {
  return await jsonOf("bridge", ["-j", ...args]);
}

async function jsonOf<T>(cmd: string, args: string[]): Promise<T | null> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    if (/does not exist|Cannot find device/i.test(r.stderr)) return null;
    throw new KernelCommandError(`${cmd} ${args.join(" ")} failed: ${r.stderr.trim()}`);
  }
  const text = r.stdout.trim();
  if (!text) return [] as T;
  return JSON.parse(text) as T;
}

/** Runs a command, returning its exit code and output (for nft and friends). */
export { run as runCommand };
