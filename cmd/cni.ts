// The CNI face: twill run by a container runtime as the "flannel" plugin. Reads CNI_* from the
// environment and the network config from stdin, writes a result or a CNI error to stdout.
// Everything it needs is imported lazily: the CNI path loads no server, no store, no Hono.
import type { CniError as CniErrorType } from "../lib/cni/errors.ts";

/** All of stdin, read synchronously: the config is small and nothing else runs meanwhile. */
function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  let total = 0;
  for (;;) {
    const n = Deno.stdin.readSync(buf);
    if (n === null || n === 0) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const all = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    all.set(c, o);
    o += c.length;
  }
  return Promise.resolve(new TextDecoder().decode(all));
}

export async function runCni(
  env: Record<string, string>,
  stdin: () => Promise<string> = readStdin,
  write: (s: string) => void = (s) => console.log(s),
): Promise<number> {
  const { CniError, ERR, errorJSON } = await import("../lib/cni/errors.ts");
  const cfg = await import("../lib/cni/config.ts");
  let version = "1.1.0";
  const fail = (e: CniErrorType) => {
    write(JSON.stringify(errorJSON(version, e)));
    return 1;
  };
  try {
    const text = await stdin();
    version = cfg.sniffVersion(text);
    const e = cfg.parseEnv(env);
    const cmds = await import("../lib/cni/commands.ts");
    if (e.command === "VERSION") {
      let requested: string | undefined;
      try {
        requested = JSON.parse(text || "{}")?.cniVersion;
      } catch {
        requested = undefined;
      }
      write(JSON.stringify(cmds.versionInfo(requested)));
      return 0;
    }
    const conf = cfg.parseNetConf(text, e.command);
    switch (e.command) {
      case "ADD": {
        const { resultJSON } = await import("../lib/cni/result.ts");
        const result = await cmds.cmdAdd(e, conf);
        write(JSON.stringify(resultJSON(result, conf.cniVersion)));
        return 0;
      }
      case "DEL":
        cmds.cmdDel(e, conf);
        return 0;
      case "CHECK":
        cmds.cmdCheck(e, conf);
        return 0;
      case "STATUS":
        cmds.cmdStatus(conf);
        return 0;
      case "GC":
        cmds.cmdGc(conf);
        return 0;
    }
  } catch (err) {
    if (err instanceof CniError) return fail(err);
    return fail(
      new CniError(ERR.internal, `twill CNI ${env.CNI_COMMAND}: ${(err as Error)?.message ?? err}`),
    );
  }
  return 0;
}
