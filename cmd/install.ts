// twill install-cni: puts the plugin where container runtimes look for it (/opt/cni/bin/flannel)
// and writes the network list Flannel's manifests use (/etc/cni/net.d/10-flannel.conflist).
// Both files are written to a temporary name and renamed, so a runtime never sees half a file.
import { parseArgs } from "node:util";

export const CONFLIST = {
  name: "cbr0",
  cniVersion: "0.3.1",
  plugins: [
    { type: "flannel", delegate: { hairpinMode: true, isDefaultGateway: true } },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};

const HELP = `usage: twill install-cni [--bin-dir D] [--conf-dir D]
  --bin-dir D    where the plugin goes, as "flannel" (default /opt/cni/bin)
  --conf-dir D   where 10-flannel.conflist goes (default /etc/cni/net.d)
`;

/** True when this process is a `deno compile`d twill rather than deno running main.ts. */
export function isCompiled(execPath = Deno.execPath()): boolean {
  const base = execPath.split("/").pop() ?? "";
  return base !== "deno" && base !== "deno.exe";
}

/** The launcher written when running from source: the same deno, the same checkout. */
export function launcherScript(denoPath: string, mainPath: string): string {
  const q = (s: string) => `'${s.replaceAll("'", `'"'"'`)}'`;
  return `#!/bin/sh\n# twill CNI plugin launcher (twill install-cni, running from source)\nexec ${
    q(denoPath)
  } run -A --quiet ${q(mainPath)} "$@"\n`;
}

async function writeAtomic(path: string, data: Uint8Array, mode: number): Promise<void> {
  const tmp = `${path}.twill-tmp-${Deno.pid}`;
  try {
    await Deno.writeFile(tmp, data, { mode });
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

export async function runInstallCni(args: string[], _env: Record<string, string>): Promise<number> {
  let values: { "bin-dir"?: string; "conf-dir"?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args,
      options: {
        "bin-dir": { type: "string", default: "/opt/cni/bin" },
        "conf-dir": { type: "string", default: "/etc/cni/net.d" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`twill install-cni: ${(e as Error).message}\n${HELP}`);
    return 2;
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const binDir = values["bin-dir"]!;
  const confDir = values["conf-dir"]!;
  try {
    await Deno.mkdir(binDir, { recursive: true });
    await Deno.mkdir(confDir, { recursive: true });
    const plugin = `${binDir}/flannel`;
    if (isCompiled()) {
      await writeAtomic(plugin, await Deno.readFile(Deno.execPath()), 0o755);
      console.log(`twill install-cni: copied ${Deno.execPath()} to ${plugin}`);
    } else {
      const main = new URL("../main.ts", import.meta.url).pathname;
      const script = launcherScript(Deno.execPath(), main);
      await writeAtomic(plugin, new TextEncoder().encode(script), 0o755);
      console.log(`twill install-cni: wrote ${plugin}, a launcher for ${main}`);
    }
    const conf = `${confDir}/10-flannel.conflist`;
    await writeAtomic(
      conf,
      new TextEncoder().encode(JSON.stringify(CONFLIST, null, 2) + "\n"),
      0o644,
    );
    console.log(`twill install-cni: wrote ${conf}`);
    return 0;
  } catch (e) {
    console.error(
      `twill install-cni: ${
        (e as Error).message
      }; check that ${binDir} and ${confDir} are writable (run as root)`,
    );
    return 1;
  }
}
