// Lowering --voters on a rolling restart: 3 voters, each member restarted with --voters 1 in
// turn; the leader demotes voters to learners one change at a time until 1 voter and 2 learners
// remain, and writes keep succeeding throughout.
import assert from "node:assert/strict";
import { b64, type Member, post, type ProcessCluster, withCluster } from "./process_cluster.ts";
import { adminCredentials, membersView, statusOf } from "./membership_admins.ts";

/** Puts a key every 100 ms through whichever member answers; records the longest time without
 *  a successful write. */
function writer(c: ProcessCluster) {
  let stop = false;
  let last = Date.now();
  let worstGapMs = 0;
  let ok = 0;
  const done = (async () => {
    for (let i = 0; !stop; i++) {
      // A demoted voter's admin credential is revoked: write with any voter's that works.
      const tokens = await adminCredentials(c);
      for (
        const [m, token] of c.members.filter((x) => !x.stopped).flatMap((m) =>
          tokens.map((t) => [m, t] as const)
        )
      ) {
        try {
          const body = { key: b64(`/d/${i}`), value: b64("v") };
          const r = await post(m.address, "/v3/kv/put", body, 3000, token);
          if (r.status === 200) {
            worstGapMs = Math.max(worstGapMs, Date.now() - last);
            last = Date.now();
            ok++;
            break;
          }
        } catch { /* next member */ }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async finish() {
      stop = true;
      await done;
      return { ok, worstGapMs: Math.max(worstGapMs, Date.now() - last) };
    },
  };
}

/** SIGTERM (a leader hands its leadership off first), then SIGKILL if it has not exited within
 *  5 s: the test is about the membership, not about how fast a member stops. */
async function stop(c: ProcessCluster, m: Member): Promise<void> {
  c.signal(m, "SIGTERM");
  const exited = await Promise.race([
    m.child!.status.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 5000)),
  ]);
  if (!exited) console.log(`${m.address} did not exit within 5 s of SIGTERM; killed`);
  await c.kill(m);
  m.stopped = true;
}

Deno.test({
  name: "a rolling restart with a lower --voters demotes voters to learners, one at a time",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 100, size: 3 }, async (c) => {
      await c.start(3);
      const w = writer(c);
      // Followers first, the leader last (it hands its leadership off when it stops).
      const leader = await c.waitLeader();
      for (const m of [...c.members.filter((x) => x !== leader), leader]) {
        await stop(c, m);
        c.restart(m, ["--voters", "1"]);
        await c.waitFor(
          async () => Number((await statusOf(c, m.address))?.leader ?? 0) > 0,
          20_000,
          `${m.address} to serve with a leader`,
        );
      }
      let view = (await membersView(c))!;
      const kinds = () => view.members.map((m) => m.kind).sort();
      await c.waitFor(
        async () => {
          view = (await membersView(c)) ?? view;
          return JSON.stringify(kinds()) === JSON.stringify(["learner", "learner", "voter"]);
        },
        30_000,
        "1 voter and 2 learners",
      );
      const { ok, worstGapMs } = await w.finish();
      console.log(`${ok} writes, longest gap ${worstGapMs} ms`);
      assert.ok(worstGapMs < 5000, `writes stalled for ${worstGapMs} ms`);
      const logs = c.members.map((m) => m.log.join("\n")).join("\n");
      assert.equal((logs.match(/event=voter_demoted /g) ?? []).length, 2, "two demotions");
      assert.doesNotMatch(logs, /event=removed_from_cluster/);
      // The learners are caught up: every member serves the last write.
      await c.waitFor(
        async () => {
          for (const m of c.members) {
            const s = await statusOf(c, m.address);
            if (
              !s || s.role !== (view.members.find((x) => x.address === m.address)!.kind ===
                    "voter"
                  ? "leader"
                  : "learner")
            ) return false;
          }
          return true;
        },
        10_000,
        "the voter to lead and the others to be learners",
      );
    });
  },
});
