// `deno task check` runs this after the type check: the structure rules no linter knows (see
// scripts/lib/structure.ts). Prints the longest function and the lib/ folder cycles every time so
// the numbers stay visible, then one line per violation; exits 1 on any.
import { join, relative, sep } from "node:path";
import { checkStructure, type SourceFile } from "./lib/structure.ts";

const ROOT = join(import.meta.dirname!, "..");

async function collect(dir: string, out: SourceFile[]): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) await collect(path, out);
    else if (entry.isFile && entry.name.endsWith(".ts")) {
      out.push({
        path: relative(ROOT, path).split(sep).join("/"),
        text: await Deno.readTextFile(path),
      });
    }
  }
}

async function main(): Promise<number> {
  const files: SourceFile[] = [];
  await collect(join(ROOT, "lib"), files);
  await collect(join(ROOT, "cmd"), files);
  files.sort((a, b) => a.path.localeCompare(b.path));
  const report = checkStructure(files);
  const l = report.longest;
  console.log(
    l === undefined
      ? "longest function: none"
      : `longest function (step functions exempt): ${l.path}:${l.line} ${l.name}, ${l.lines} lines`,
  );
  if (report.cycles.length === 0) console.log("lib/ folder cycles: no cycles");
  for (const cycle of report.cycles) console.log(`lib/ folder cycle: ${cycle.join(" -> ")}`);
  for (const v of report.violations) console.error(`structure: ${v}`);
  console.log(`structure: ${files.length} files, ${report.violations.length} violations`);
  return report.violations.length === 0 ? 0 : 1;
}

Deno.exit(await main());
