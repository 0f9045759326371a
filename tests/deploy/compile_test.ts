// `deno task compile`: the least permissions, every lazily imported face included, and one clear
// line when the Deno runtime cannot be downloaded.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { compileArgs, explainFailure, PERMISSIONS } from "../../scripts/compile.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

Deno.test("compile: grants named permissions only, never -A, and includes every face", () => {
  const args = compileArgs("dist/twill", undefined, ROOT);
  assert.equal(args[0], "compile");
  assert.ok(!args.includes("-A") && !args.includes("--allow-all"));
  for (const p of PERMISSIONS) assert.ok(args.includes(p), p);
  assert.deepEqual(args.slice(args.indexOf("--output"), args.indexOf("--output") + 2), [
    "--output",
    "dist/twill",
  ]);
  for (const face of ["cmd/agent.ts", "cmd/cni.ts", "cmd/ctl.ts", "cmd/install.ts"]) {
    assert.equal(args[args.indexOf(face) - 1], "--include", face);
  }
  // What a face loads lazily in turn (the agent's store member, the CNI's commands).
  for (const lazy of ["lib/daemon/daemon.ts", "lib/cni/commands.ts"]) {
    assert.equal(args[args.indexOf(lazy) - 1], "--include", lazy);
  }
  for (const inc of args.filter((_, i) => args[i - 1] === "--include")) {
    Deno.statSync(join(ROOT, inc)); // every included module exists
  }
  assert.equal(args.at(-1), "main.ts");
  const cross = compileArgs("o", "aarch64-unknown-linux-gnu", ROOT);
  assert.equal(cross[cross.indexOf("--target") + 1], "aarch64-unknown-linux-gnu");
});

Deno.test("compile: an offline runtime download becomes one line that says what to do", () => {
  const stderr = [
    "\x1b[0m\x1b[32mCheck\x1b[0m main.ts",
    "Download https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip",
    "\x1b[1m\x1b[31merror\x1b[0m: Writing deno compile executable to temporary file 'dist/twill.tmp'",
    "",
    "Caused by:",
    "    0: Setting up base binary.",
    "    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): client error (Connect): dns error: failed to lookup address information: Name or service not known",
  ].join("\n");
  const line = explainFailure(stderr, "x86_64-unknown-linux-gnu");
  assert.equal(
    line,
    "compile: deno could not download the runtime for x86_64-unknown-linux-gnu (no network?); " +
      "run this on a machine with internet access",
  );
  assert.ok(!line.includes("\n"));
});

Deno.test("compile: any other failure is reported by its first error line", () => {
  const line = explainFailure(
    'Check main.ts\nerror: Module not found "file:///x/cmd/nope.ts".\n    at file:///x/main.ts:3:1\n',
    "x86_64-unknown-linux-gnu",
  );
  assert.equal(
    line,
    'compile: deno compile failed: error: Module not found "file:///x/cmd/nope.ts".',
  );
});
