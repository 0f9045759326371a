// End to end: `deno task demo -- --keep` builds the 3-node cluster, every pod pings every other
// pod across the VXLAN overlay, and `--down` leaves no twdemo- namespace, link, nftables table,
// process or state behind. Needs root, iproute2, nftables and iputils-ping; under 2 minutes.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { DemoReport } from "../../scripts/demo.ts";
import { matrixAllGreen } from "../../scripts/demo.ts";
import { run } from "../../scripts/lib/run.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
// Its own namespace prefix and state dir, so a demo someone runs by hand (or another test run)
// on the same machine is neither disturbed nor mistaken for a leftover.
const RUN = crypto.randomUUID().slice(0, 6).replaceAll("-", "0");
const PREFIX = `twdemo-t${RUN}-`;
const STATE_DIR = `/run/twill-demo-test-${RUN}`;

async function demo(...args: string[]): Promise<{ code: number; out: string }> {
  const out = await run(
    Deno.execPath(),
    [
      "run",
      "-A",
      join(ROOT, "scripts", "demo.ts"),
      "--state-dir",
      STATE_DIR,
      "--prefix",
      PREFIX,
      ...args,
    ],
    { cwd: ROOT, env: { NO_COLOR: "1" }, signal: AbortSignal.timeout(100_000) },
  );
  return { code: out.code, out: out.stdout + out.stderr };
}

async function sh(cmd: string): Promise<string> {
  return (await run("sh", ["-c", cmd])).stdout;
}

async function leftovers(): Promise<string[]> {
  const found: string[] = [];
  for (const l of (await sh("ip netns list")).split("\n")) {
    if (l.startsWith(PREFIX)) found.push(`netns ${l}`);
  }
  for (const l of (await sh("ip -o link show")).split("\n")) {
    if (l.includes("twdemo-")) found.push(`link ${l}`);
  }
  for (const l of (await sh("nft list tables 2>/dev/null")).split("\n")) {
    if (l.includes("twdemo")) found.push(`nft ${l}`);
  }
  for (const l of (await sh("ps -eo pid,args")).split("\n")) {
    if (l.includes(STATE_DIR) && !l.includes("ps -eo")) found.push(`process ${l.trim()}`);
  }
  try {
    await Deno.stat(STATE_DIR);
    found.push(`state dir ${STATE_DIR}`);
  } catch { /* gone, as it should be */ }
  return found;
}

Deno.test({
  name: "demo: 3 nodes, 6 pods, every pod reaches every pod; --down leaves nothing behind",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const reportFile = await Deno.makeTempFile({ prefix: "twill-demo-report-", suffix: ".json" });
    try {
      const up = await demo("--keep", "--report", reportFile);
      assert.equal(up.code, 0, `demo failed:\n${up.out}`);
      const report: DemoReport = JSON.parse(await Deno.readTextFile(reportFile));
      assert.equal(report.nodes.length, 3);
      assert.equal(report.pods.length, 6);
      assert.ok(matrixAllGreen(report), `ping matrix not all green:\n${up.out}`);
      assert.equal(report.ok, true);
      const subnets = report.nodes.map((n) => n.subnet);
      assert.equal(new Set(subnets).size, 3, `distinct subnets: ${subnets}`);
      const roles = report.nodes.map((n) => n.role).sort();
      assert.deepEqual(roles, ["leader", "voter", "voter"], "the store settles on 3 voters");
      for (const n of report.nodes) {
        assert.match(n.subnet, /^10\.244\.\d+\.0\/24$/);
        assert.match(n.vtepMac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
      }
      assert.match(up.out, /pod-to-pod ping matrix/);
      assert.match(up.out, /remove it all with: npx -y deno@2\.9\.6 task demo -- --down/);
      // The cluster is still up under --keep.
      assert.ok((await sh("ip netns list")).includes(`${PREFIX}n3-p2`));
    } finally {
      const down = await demo("--down");
      await Deno.remove(reportFile).catch(() => {});
      assert.equal(down.code, 0, down.out);
      assert.deepEqual(await leftovers(), []);
    }
  },
});

Deno.test({
  name: "demo: a failing step says which step and why, and removes what it made",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // An agent flag the agent refuses: the first agent exits, so step 5 fails.
    const r = await demo("--agent-args=--voters 9");
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /\[ 5\/9\] start agent n1 \(--init\) +[\d.]+ s +FAILED/);
    assert.match(r.out, /demo: step "start agent n1 \(--init\)" failed: the agent on n1 exited/);
    assert.match(r.out, /--voters must be a whole number from 1 to 7/);
    assert.match(r.out, /demo: removed everything it made/);
    assert.deepEqual(await leftovers(), []);
  },
});
