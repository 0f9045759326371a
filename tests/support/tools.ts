// Tests that spawn an external tool check for it first, so a machine without it gets one line
// naming the Debian package instead of an empty capture or a spawn error. The tool-to-package
// mapping is the installer's one list (scripts/install-deps.ts).
import { type DebianPackage, PACKAGES } from "../../scripts/install-deps.ts";

export function missingToolMessage(tool: string, pkg: string): string {
  return `missing tool ${tool}: install the Debian package ${pkg} (apt-get install ${pkg})`;
}

function isFile(path: string, executable: boolean): boolean {
  try {
    const st = Deno.statSync(path);
    return st.isFile && (!executable || ((st.mode ?? 0o111) & 0o111) !== 0);
  } catch {
    return false;
  }
}

/** Whether `tool` is there: an absolute path as a file, a command as an executable on PATH. */
export function toolPresent(tool: string): boolean {
  if (tool.startsWith("/")) return isFile(tool, false);
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter(Boolean);
  return dirs.some((d) => isFile(`${d}/${tool}`, true));
}

/** Throws, naming the Debian package, unless every tool is present. */
export function requireTools(tools: string[], packages: readonly DebianPackage[] = PACKAGES): void {
  for (const tool of tools) {
    const pkg = packages.find((p) => p.tools.includes(tool));
    if (!pkg) throw new Error(`requireTools: ${tool} is in no package of scripts/install-deps.ts`);
    if (!toolPresent(tool)) throw new Error(missingToolMessage(tool, pkg.name));
  }
}
