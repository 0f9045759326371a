// The README keeps its promises: the two first commands, every agent flag with its FLANNELD_*
// variable, only tasks and files that exist, and the sections CI and the lead rely on.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AGENT_FLAGS, envName } from "../../cmd/agent.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
const deno = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "## ${title}" section`);
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

Deno.test("README: opens with what twill is, then exactly the demo and test commands", () => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme);
  assert.ok(firstBlock);
  assert.deepEqual(firstBlock[1].trim().split("\n"), [
    "npx -y deno@2.9.6 task demo",
    "npx -y deno@2.9.6 task test",
  ]);
  assert.ok(
    readme.indexOf("Flannel") < readme.indexOf("```"),
    "the intro says how it relates to Flannel",
  );
});

Deno.test("README: the sections a newcomer and CI need", () => {
  for (
    const s of [
      "Quick start",
      "Installing on real nodes",
      "Flags",
      "Migrating from Flannel",
      "How the store works",
      "Measured",
      "Troubleshooting",
      "Code map",
      "Set-up and tests",
      "Changelog",
    ]
  ) section(s);
  assert.match(section("Set-up and tests"), /```sh\nnpx -y deno@2\.9\.6 task test\n```/);
  const troubles = section("Troubleshooting").match(/^\d+\. \*\*/gm) ?? [];
  assert.equal(troubles.length, 10, "ten troubleshooting entries");
});

Deno.test("README: every agent flag is listed with its FLANNELD_ variable", () => {
  const flags = section("Flags");
  for (const f of AGENT_FLAGS) {
    if (f.hidden || f.name === "help") continue;
    const row = flags.split("\n").find((l) => new RegExp(`^\\| +\`--${f.name}\` +\\|`).test(l));
    assert.ok(row, `--${f.name} has a row`);
    assert.ok(row.includes(`\`${envName(f.name)}\``), `--${f.name} names ${envName(f.name)}`);
    if (f.default !== undefined) {
      assert.ok(row.includes(`\`${f.default}\``), `--${f.name} shows its default ${f.default}`);
    }
  }
});

Deno.test("README: every task and repository file it mentions exists", async () => {
  for (const m of readme.matchAll(/deno(?:@2\.9\.6)? task ([a-z-]+)/g)) {
    assert.ok(m[1] in deno.tasks, `task "${m[1]}" exists in deno.json`);
  }
  for (const m of readme.matchAll(/`((?:deploy|scripts)\/[\w.\/-]+)`/g)) {
    await Deno.stat(join(ROOT, m[1])).catch(() => assert.fail(`${m[1]} is mentioned but missing`));
  }
});
