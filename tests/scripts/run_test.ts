// The shared process runner: output as text, stdin fed, env added or cleared, failures carry
// the command line and stderr.
import { strict as assert } from "node:assert";
import { inNetns, run, RunError, runOk } from "../../scripts/lib/run.ts";

Deno.test("run returns code, stdout and stderr without throwing on failure", async () => {
  const r = await run("sh", ["-c", "echo out; echo err >&2; exit 3"]);
  assert.deepEqual(r, { code: 3, stdout: "out\n", stderr: "err\n" });
});

Deno.test("run feeds stdin and adds env, or replaces it with clearEnv", async () => {
  const r = await run("sh", ["-c", 'cat; printf %s "$X"'], { stdin: "in\n", env: { X: "x" } });
  assert.equal(r.stdout, "in\nx");
  const inherited = await run("sh", ["-c", 'printf %s "${HOME-unset}"']);
  assert.equal(inherited.stdout, Deno.env.get("HOME") ?? "unset");
  const cleared = await run("/bin/sh", ["-c", 'printf %s "${HOME-unset}"'], {
    env: {},
    clearEnv: true,
  });
  assert.equal(cleared.stdout, "unset");
});

Deno.test("runOk returns stdout, and throws the command line and stderr on failure", async () => {
  assert.equal(await runOk("sh", ["-c", "echo fine"]), "fine\n");
  await assert.rejects(runOk("sh", ["-c", "echo broken >&2; exit 1"]), (e: unknown) => {
    assert.ok(e instanceof RunError);
    assert.equal(e.result.code, 1);
    assert.match(e.message, /^sh -c echo broken >&2; exit 1 failed \(exit 1\): broken$/);
    return true;
  });
});

Deno.test("a missing program throws NotFound, as Deno.Command does", async () => {
  await assert.rejects(run("twill-no-such-program", []), Deno.errors.NotFound);
});

Deno.test("inNetns wraps an argv in ip netns exec", () => {
  assert.deepEqual(inNetns("ns1", ["ip", "link"]), ["ip", "netns", "exec", "ns1", "ip", "link"]);
});
