// Daemons start in their own session with /run bound to the node's run dir. Run under flock
// /tmp/twill-kernel.lock (it makes mount namespaces).
import assert from "node:assert/strict";
import { join } from "node:path";
import { findExecutable, MAX_LOG_BYTES, runDirOf, startDetached } from "../../lib/net/detached.ts";

Deno.test("a daemon sees the node's run dir as /run, and its output lands in its log", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "twill-detached-" });
  const marker = `twill-detached-marker-${Deno.pid}`;
  try {
    const runDir = runDirOf(dataDir);
    const log = join(dataDir, "d.log");
    await Deno.writeFile(log, new Uint8Array(MAX_LOG_BYTES + 1));
    const script = `touch /run/${marker}; echo "session $(ps -o sid= -p $$) pid $$"`;
    await startDetached(["sh", "-c", script], runDir, log);
    // The child is unref'd (the agent must be free to exit), so poll rather than await its exit.
    let text = "";
    for (let i = 0; i < 100 && !text.includes("session"); i++) {
      await new Promise((r) => setTimeout(r, 50));
      text = await Deno.readTextFile(log).catch(() => "");
    }
    await Deno.stat(join(runDir, marker)); // created through the bind mount
    await assert.rejects(() => Deno.stat(join("/run", marker)), Deno.errors.NotFound);
    const [, sid, pid] = /session\s+(\d+) pid (\d+)/.exec(text)!;
    assert.equal(sid, pid, "the daemon leads its own session");
    assert.equal(
      (await Deno.stat(`${log}.old`)).size,
      MAX_LOG_BYTES + 1,
      "a large log is set aside",
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("executables are found on PATH or by path", async () => {
  assert.match((await findExecutable("sh")) ?? "", /\/sh$/);
  assert.equal(await findExecutable("no-such-program-twill"), null);
  assert.equal(await findExecutable("/nonexistent/charon"), null);
});
