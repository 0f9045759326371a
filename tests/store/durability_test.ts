// A member's write-ahead log after a crash: ending mid-record (a torn, never-acknowledged
// append) it restarts with a warning and catches up; damaged in the middle it refuses to start
// with one clear line naming the file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { b64, post, prefixEnd, withCluster } from "./process_cluster.ts";

async function newestSegment(dataDir: string): Promise<string> {
  const dir = join(dataDir, "raft", "wal");
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".wal")) names.push(e.name);
  }
  names.sort();
  assert.ok(names.length > 0, `no WAL segment in ${dir}`);
  return join(dir, names[names.length - 1]);
}

async function putMany(address: string, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) {
    const r = await post(address, "/v3/kv/put", { key: b64(`/d/${i}`), value: b64(`v${i}`) });
    assert.equal(r.status, 200);
  }
}

async function count(address: string): Promise<number> {
  const r = await post(address, "/v3/kv/range", {
    key: b64("/d/"),
    range_end: prefixEnd("/d/"),
    serializable: true,
    count_only: true,
  });
  return Number(r.body.count ?? 0);
}

Deno.test({
  name: "a WAL torn mid-record restarts and catches up; one damaged in the middle refuses to start",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 30, size: 3 }, async (c) => {
      await c.start(3);
      const leader = await c.waitLeader();
      await putMany(leader.address, 0, 40);
      const victim = c.members.find((m) => m !== leader)!;
      await c.kill(victim);

      // Torn write: a crash in the middle of appending a record (never synced, so never
      // acknowledged) leaves a valid header and part of its payload at the end of the log.
      const seg = await newestSegment(victim.dataDir);
      const whole = await Deno.readFile(seg);
      const f = await Deno.open(seg, { append: true });
      await f.write(whole.subarray(0, 20));
      f.close();
      await putMany(leader.address, 40, 60);
      c.restart(victim);
      await c.waitReady(victim);
      await c.waitFor(
        async () => (await count(victim.address)) === 60,
        15_000,
        "the restarted member to catch up",
      );
      assert.match(victim.log.join("\n"), /wal_warning|torn|truncat/i);

      // Damage in the middle of the log: refuse to start, naming the file.
      await putMany(leader.address, 60, 80);
      await c.waitFor(
        async () => (await count(victim.address)) === 80,
        15_000,
        "replication before the second crash",
      );
      await c.kill(victim);
      const seg2 = await newestSegment(victim.dataDir);
      const bytes = await Deno.readFile(seg2);
      bytes[Math.floor(bytes.length / 2)] ^= 0xff;
      await Deno.writeFile(seg2, bytes);
      c.restart(victim);
      const status = await Promise.race([
        victim.child!.status,
        new Promise<null>((r) => setTimeout(() => r(null), 15_000)),
      ]);
      assert.ok(status !== null, "the member with a damaged log must exit, not run");
      victim.stopped = true;
      assert.notEqual(status.code, 0);
      await new Promise((r) => setTimeout(r, 200));
      const out = victim.log.slice(-5).join("\n");
      assert.match(out, /corrupt/i);
      assert.ok(out.includes(seg2), `the error names the file: ${out}`);
      assert.equal(out.split("\n").filter((l) => /corrupt/i.test(l)).length, 1, out);
    });
  },
});

Deno.test({
  name: "the whole cluster SIGKILLed and restarted from its data dirs alone keeps every write",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 35, size: 3, extraArgs: ["--snapshot-count", "25"] }, async (c) => {
      await c.start(3);
      const leader = await c.waitLeader();
      await putMany(leader.address, 0, 70);
      await Promise.all(c.members.map((m) => c.kill(m)));
      for (const m of c.members) c.restart(m);
      for (const m of c.members) await c.waitReady(m);
      for (const m of c.members) {
        await c.waitFor(
          async () => (await count(m.address)) === 70,
          15_000,
          `${m.address} to hold 70 keys`,
        );
      }
      const r = await post(c.members[2].address, "/v3/kv/range", { key: b64("/d/69") });
      assert.equal(atob((r.body.kvs as { value: string }[])[0].value), "v69");
      const again = await c.waitLeader();
      await putMany(again.address, 70, 75);
    });
  },
});
