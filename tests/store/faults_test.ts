// Real member processes under a client load while the test SIGKILLs the leader, SIGKILLs a
// follower, freezes the leader (SIGSTOP) past an election timeout and restarts everything from
// its data dir. Afterwards: the client history is linearizable, every acknowledged write is on
// every member, and every watcher saw an ordered, gap-free, duplicate-free stream.
import assert from "node:assert/strict";
import { checkLinearizable, kvModel } from "../../lib/linearizability/mod.ts";
import { b64, post, prefixEnd, type ProcessCluster, withCluster } from "./process_cluster.ts";
import { checkWatchStreams, Workload } from "./workload.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function converge(c: ProcessCluster): Promise<number> {
  let revision = 0;
  await c.waitFor(
    async () => {
      const st = await Promise.all(c.members.map((m) => c.status(m)));
      if (st.some((s) => s === undefined)) return false;
      const applied = new Set(st.map((s) => s!.applied));
      const revs = new Set(st.map((s) => s!.revision));
      revision = Number(st[0]!.revision);
      return applied.size === 1 && revs.size === 1;
    },
    20_000,
    "every member to apply the same index",
  );
  return revision;
}

/** The first revision after everything the cluster holds before the load (its /twill seeding). */
async function nextRevision(c: ProcessCluster): Promise<number> {
  const leader = await c.waitLeader();
  const res = await post(leader.address, "/v3/kv/range", { key: b64("/t/"), count_only: true });
  assert.equal(res.status, 200);
  const revision = Number((res.body.header as { revision?: string } | undefined)?.revision);
  assert.ok(revision >= 1, `cluster revision ${JSON.stringify(res.body.header)}`);
  return revision + 1;
}

async function checkAfterHealing(c: ProcessCluster, w: Workload): Promise<void> {
  const revision = await converge(c);
  await w.waitWatchers(revision);
  const r = await w.finish();
  // Every acknowledged unique write is on every member (serializable reads: each member's own copy).
  for (const m of c.members) {
    const res = await post(m.address, "/v3/kv/range", {
      key: b64("/t/ack/"),
      range_end: prefixEnd("/t/ack/"),
      serializable: true,
    });
    assert.equal(res.status, 200);
    const have = new Set(((res.body.kvs ?? []) as { key: string }[]).map((kv) => atob(kv.key)));
    const missing = [...r.acked.keys()].filter((k) => !have.has(k));
    assert.deepEqual(missing, [], `member ${m.address} lacks acknowledged writes`);
  }
  const verdict = checkLinearizable(kvModel, r.history);
  assert.equal(verdict.verdict, "ok", "explanation" in verdict ? verdict.explanation : "");
  assert.deepEqual(checkWatchStreams(r.watched, w.fromRevision, revision), []);
  assert.ok(r.ops.ok > 50, `the load made progress (${JSON.stringify(r.ops)})`);
  console.log(
    `ops ${
      JSON.stringify(r.ops)
    }, acked unique writes ${r.acked.size}, history ${r.history.length}, ` +
      `revision ${revision}, watch resumes ${r.watchResumes}`,
  );
}

Deno.test({
  name:
    "3 members: leader SIGKILL, follower SIGKILL, leader SIGSTOP past an election timeout, restarts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 0, size: 3 }, async (c) => {
      await c.start(3);
      const w = new Workload(c, 4, 2);
      w.run(await nextRevision(c));
      await sleep(1500);

      let leader = await c.waitLeader();
      await c.kill(leader);
      const t0 = Date.now();
      const next = await c.waitLeader();
      console.log(`failover after SIGKILL: new leader ${next.address} in ${Date.now() - t0} ms`);
      await sleep(1000);
      c.restart(leader);
      await c.waitReady(leader);

      leader = await c.waitLeader();
      const follower = c.members.find((m) => m !== leader)!;
      await c.kill(follower);
      await sleep(1500);
      c.restart(follower);
      await c.waitReady(follower);

      leader = await c.waitLeader();
      c.signal(leader, "SIGSTOP");
      await sleep(2500);
      c.signal(leader, "SIGCONT");
      await sleep(1500);

      await checkAfterHealing(c, w);
    }, 30);
  },
});

Deno.test({
  name: "5 members: leader and a follower SIGKILLed together, then restarted",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 10, size: 5 }, async (c) => {
      await c.start(5);
      const w = new Workload(c, 4, 2);
      w.run(await nextRevision(c));
      await sleep(1000);
      const leader = await c.waitLeader();
      const follower = c.members.find((m) => m !== leader)!;
      await Promise.all([c.kill(leader), c.kill(follower)]);
      await c.waitLeader();
      await sleep(1500);
      c.restart(leader);
      c.restart(follower);
      await c.waitReady(leader);
      await c.waitReady(follower);
      await sleep(1000);
      await checkAfterHealing(c, w);
    }, 30);
  },
});

Deno.test({
  name: "a leader stopped with SIGTERM hands leadership over first; writes go on at once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 25, size: 3 }, async (c) => {
      await c.start(3);
      const leader = await c.waitLeader();
      await c.kill(leader, "SIGTERM");
      assert.match(leader.log.join("\n"), /event=leadership_handed_off .*done=true/);
      const t0 = Date.now();
      const next = await c.waitLeader();
      const r = await post(next.address, "/v3/kv/put", { key: b64("/h/x"), value: b64("1") });
      assert.equal(r.status, 200);
      console.log(`write accepted ${Date.now() - t0} ms after the old leader exited`);
    }, 20);
  },
});
