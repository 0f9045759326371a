// Membership by address with real processes: joiners become learners, the leader promotes
// caught-up learners one at a time up to --voters, and replaces a voter that stays unreachable
// longer than --dead-voter-timeout with a caught-up learner (then removes the dead voter).
import assert from "node:assert/strict";
import { createCertificateRequest } from "../../lib/pki/member_cert.ts";
import {
  b64,
  clusterTrust,
  MAIN,
  post,
  ProcessCluster,
  TOKEN,
  withCluster,
} from "./process_cluster.ts";

/** Runs `twill agent` with these flags to its end (for the ones that must refuse to start). */
function runAgent(...flags: string[]): Promise<Deno.CommandOutput> {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "agent", ...flags],
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test({
  name: "joiners are promoted up to --voters; a dead voter is replaced by a learner and removed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster(
      { base: 20, size: 5, extraArgs: ["--dead-voter-timeout", "3s"] },
      async (c) => {
        await c.start(3);
        let view = (await c.membersView())!;
        const voters = () => view.members.filter((m) => m.kind === "voter").map((m) => m.id).sort();
        const learners = () =>
          view.members.filter((m) => m.kind === "learner").map((m) => m.id).sort();
        assert.equal(voters().length, 3);
        assert.equal(learners().length, 2);
        // Ids are handed out in join order and never reused.
        assert.deepEqual([...voters(), ...learners()].sort(), [1, 2, 3, 4, 5]);

        const r = await post(c.members[0].address, "/v3/kv/put", {
          key: b64("/m/x"),
          value: b64("1"),
        });
        assert.equal(r.status, 200);

        // With every vote and standby place taken, an agent that need not be a member is
        // admitted as a plain client and told where the members are.
        const asClient = await post(c.members[1].address, "/raft/join", {
          address: "127.0.7.29:8473",
          name: "client",
          wantMember: false,
          joinId: "client-1",
          secret: TOKEN,
          csrPem: (await createCertificateRequest("client")).csrPem,
        });
        assert.equal(asClient.status, 200, JSON.stringify(asClient.body));
        assert.equal(asClient.body.role, "client");
        assert.equal(asClient.body.nodeId, 0);
        assert.equal((asClient.body.members as unknown[]).length, 5);

        // Kill a voter that is not the leader.
        const leader = await c.waitLeader();
        const leaderId = view.leader;
        const victimId = voters().find((id) => id !== leaderId)!;
        const victim = c.members.find((m) =>
          view.members.find((x) => x.id === victimId)!.address === m.address
        )!;
        await c.kill(victim);
        const t0 = Date.now();
        await c.waitFor(
          async () => {
            view = (await c.membersView()) ?? view;
            return !view.members.some((m) => m.id === victimId) && voters().length === 3;
          },
          20_000,
          "the dead voter to be replaced and removed",
        );
        console.log(
          `dead voter ${victimId} replaced and removed ${Date.now() - t0} ms after SIGKILL`,
        );
        assert.equal(learners().length, 1);
        const leaderLog = (await c.leader())?.log.join("\n") ?? leader.log.join("\n");
        assert.match(leaderLog, /event=voter_replaced/);
        assert.match(leaderLog, new RegExp(`event=dead_voter_removed .*node=${victimId}`));

        // The removed voter, restarted from its old data dir, learns it was removed and exits
        // with one line saying what to do.
        c.restart(victim);
        const code = await Promise.race([
          victim.child!.status.then((s) => s.code),
          new Promise<null>((r) => setTimeout(() => r(null), 15_000)),
        ]);
        victim.stopped = true;
        assert.equal(code, 1, "the removed member must exit");
        await new Promise((r) => setTimeout(r, 100));
        assert.match(victim.log.join("\n"), /was removed from cluster .* remove .* and join again/);

        // The cluster still takes writes and every live member has them.
        const w = await post(c.members.find((m) => !m.stopped)!.address, "/v3/kv/put", {
          key: b64("/m/y"),
          value: b64("2"),
        });
        assert.equal(w.status, 200);

        // The remaining learner loses its data dir and joins again from the same address once an
        // admin has removed it (its name's credential was live): a new member, a never-used id.
        const learnerId = learners()[0];
        const learnerAddr = view.members.find((m) => m.id === learnerId)!.address;
        const lm = c.members.find((m) => m.address === learnerAddr)!;
        await c.kill(lm);
        await Deno.remove(lm.dataDir, { recursive: true });
        const seed = c.members.find((m) => !m.stopped)!;
        const removed = await post(seed.address, "/raft/remove-node", { name: `m${lm.index + 1}` });
        assert.equal(removed.status, 200, JSON.stringify(removed.body));
        c.spawn(lm, ["--join", seed.address, "--token", TOKEN]);
        await c.waitFor(
          async () => {
            view = (await c.membersView()) ?? view;
            const again = view.members.find((m) => m.address === learnerAddr);
            return again !== undefined && again.id > 5 &&
              !view.members.some((m) => m.id === learnerId);
          },
          20_000,
          "the re-joined node to replace its stale learner entry",
        );
      },
    );
  },
});

Deno.test({
  name:
    "wrong token: the API and the peer routes answer 401 and a join is refused with one clear line",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const c = new ProcessCluster({ base: 40, size: 2, initial: 1 });
    try {
      await c.start(1);
      const m = c.members[0];
      for (
        // (/raft/join is authenticated by the join secret in its body, tested below.)
        const path of ["/v3/kv/put", "/v3/kv/range", "/raft/msg", "/raft/status"]
      ) {
        const r = await post(
          m.address,
          path,
          { key: b64("/secret"), value: b64("x") },
          3000,
          "wrong",
        );
        assert.equal(r.status, 401, path);
      }
      const none = await post(m.address, "/v3/kv/range", { key: b64("/secret") }, 3000, "");
      assert.equal(none.status, 401);
      const check = await post(m.address, "/v3/kv/range", { key: b64("/secret") });
      assert.equal(check.status, 200);
      assert.equal(check.body.kvs, undefined, "the rejected put changed nothing");

      // The right CA hash with a wrong secret is refused by the member; a bare secret never
      // leaves the joiner.
      const pinned = clusterTrust().joinToken.split("::")[0];
      const join = (token: string) =>
        runAgent(
          "--store-only",
          "--join",
          m.address,
          "--token",
          token,
          "--listen",
          c.members[1].address,
          "--data-dir",
          c.members[1].dataDir,
        );
      const out = await join(`${pinned}::wrong-secret`);
      assert.equal(out.code, 1);
      assert.match(new TextDecoder().decode(out.stderr), /join refused: wrong join secret/);
      const bare = await join("wrong");
      assert.equal(bare.code, 1);
      assert.match(new TextDecoder().decode(bare.stderr), /run `twill ctl join-token` on a member/);

      // --init on a data dir that holds a cluster is refused, never a second cluster.
      const again = await runAgent(
        "--store-only",
        "--init",
        "--token",
        TOKEN,
        "--listen",
        "127.0.7.49:8473",
        "--data-dir",
        m.dataDir,
      );
      assert.equal(again.code, 1);
      // A second agent on a data dir in use is refused, whatever it was asked to do.
      const twice = await runAgent(
        "--store-only",
        "--listen",
        "127.0.7.48:8473",
        "--data-dir",
        m.dataDir,
      );
      assert.equal(twice.code, 1);
      assert.match(new TextDecoder().decode(twice.stderr), /is in use by another twill agent/);
      assert.match(
        new TextDecoder().decode(again.stderr),
        /already holds cluster .* run without --init/,
      );
    } finally {
      await c.teardown();
    }
  },
});

Deno.test({
  name:
    "a voter reinstalled with an empty data dir joins again after remove-node and becomes a voter",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 60, size: 3 }, async (c) => {
      await c.start(3);
      const leader = await c.waitLeader();
      const r = await post(leader.address, "/v3/kv/put", { key: b64("/r/x"), value: b64("1") });
      assert.equal(r.status, 200);
      const victim = c.members.find((m) => m !== leader)!;
      const oldId = (await c.membersView())!.members.find((m) => m.address === victim.address)!.id;
      await c.kill(victim);
      await Deno.remove(victim.dataDir, { recursive: true });
      // Its name still has a live credential: refused until an admin removes the node.
      const name = `m${victim.index + 1}`;
      const refused = await runAgent(
        "--store-only",
        "--join",
        leader.address,
        "--token",
        clusterTrust().joinToken,
        "--name",
        name,
        "--listen",
        victim.address,
        "--data-dir",
        victim.dataDir,
      );
      assert.equal(refused.code, 1);
      assert.match(new TextDecoder().decode(refused.stderr), /already has a live credential/);
      await Deno.remove(victim.dataDir, { recursive: true }).catch(() => {});
      const removed = await post(leader.address, "/raft/remove-node", { name });
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      c.spawn(victim, ["--join", leader.address, "--token", TOKEN]);
      await c.waitFor(
        async () => {
          const v = await c.membersView();
          const again = v?.members.find((m) => m.address === victim.address);
          return again !== undefined && again.id !== oldId && again.kind === "voter" &&
            v!.members.length === 3 && !v!.members.some((m) => m.id === oldId);
        },
        25_000,
        "the reinstalled node to be a voter under a new id",
      );
      // It serves the old write once it has caught up (until then it may not yet know the
      // admin credential this request carries).
      await c.waitFor(
        async () => {
          const back = await post(victim.address, "/v3/kv/range", { key: b64("/r/x") });
          const kvs = back.body.kvs as { value: string }[] | undefined;
          return kvs !== undefined && atob(kvs[0].value) === "1";
        },
        10_000,
        "the reinstalled node to serve the old write",
      );
    });
  },
});
