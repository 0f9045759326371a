// The Raft driver (lib/store/raft_kv.ts) in process: writes through any member apply once
// everywhere, reads after a barrier see acknowledged writes, leader loss, snapshot catch-up and
// membership changes — over an in-memory network, no sockets.
import assert from "node:assert/strict";
import { InprocCluster, type InprocNode, put } from "./inproc_cluster.ts";
import { MemoryLogStore } from "../../lib/store/member/log_store.ts";
import { MemberTable } from "../../lib/store/member/members.ts";

Deno.test("a write through a follower is applied exactly once on every member", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3]);
  try {
    const leader = await c.waitLeader();
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    const r = await follower.kv.write(put("a", "1", "req-1")) as { revision: string };
    assert.equal(r.revision, "2");
    // The same request id again (a client retry) is not applied twice.
    await leader.kv.write(put("a", "1", "req-1"));
    await c.waitFor(
      () => [...c.nodes.values()].every((n) => n.sm.value("a") === "1"),
      3000,
      "replication",
    );
    for (const n of c.nodes.values()) {
      assert.deepEqual(n.sm.appliedLog.map((x) => x.requestId), ["req-1"]);
    }
  } finally {
    c.stopAll();
  }
});

Deno.test("after readBarrier a follower's state machine holds every acknowledged write", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3]);
  try {
    const leader = await c.waitLeader();
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    for (let i = 0; i < 20; i++) await leader.kv.write(put(`k${i}`, `v${i}`));
    await follower.kv.readBarrier();
    for (let i = 0; i < 20; i++) assert.equal(follower.sm.value(`k${i}`), `v${i}`);
  } finally {
    c.stopAll();
  }
});

Deno.test("an isolated leader is replaced and writes continue through the new one", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3]);
  try {
    const old = await c.waitLeader();
    await old.kv.write(put("x", "1"));
    c.isolate(old.id);
    // A write on the isolated leader cannot commit: its outcome is unknown -> "unavailable".
    await assert.rejects(
      old.kv.write(put("y", "lost?")),
      (e: Error & { code?: string }) => e.code === "unavailable",
    );
    const next = await c.waitLeader(old.id);
    assert.notEqual(next.id, old.id);
    await next.kv.write(put("x", "2"));
    // The isolated leader's reads must not be served.
    c.heal();
    await c.waitFor(
      () => [...c.nodes.values()].every((n) => n.sm.value("x") === "2"),
      3000,
      "convergence",
    );
  } finally {
    c.stopAll();
  }
});

Deno.test("a member behind the compaction point catches up through a snapshot", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3], 10, 10);
  try {
    const leader = await c.waitLeader();
    const lagging = [...c.nodes.values()].find((n) => n !== leader)!;
    c.isolate(lagging.id);
    for (let i = 0; i < 40; i++) await leader.kv.write(put(`s${i}`, `${i}`));
    assert.ok(leader.storage.firstIndex() > 5, "the leader compacted its log");
    c.heal();
    await c.waitFor(() => lagging.sm.value("s39") === "39", 5000, "snapshot catch-up");
    assert.equal(lagging.sm.count("s"), 40);
  } finally {
    c.stopAll();
  }
});

Deno.test("a learner added with an empty log catches up and is promoted to voter", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3]);
  try {
    const leader = await c.waitLeader();
    for (let i = 0; i < 5; i++) await leader.kv.write(put(`m${i}`, `${i}`));
    await leader.kv.changeMembership({ type: "addLearner", nodeId: 4 }, {
      address: "node4",
      name: "n4",
    });
    const n4 = c.start(4, new MemoryLogStore(), new MemberTable());
    await c.waitFor(() => n4.sm.value("m4") === "4", 5000, "learner catch-up");
    assert.equal(n4.kv.members.get(4)?.address, "node4");
    assert.deepEqual(leader.kv.confState.learners, [4]);
    await leader.kv.changeMembership({ type: "addNode", nodeId: 4 }, {
      address: "node4",
      name: "n4",
    });
    assert.deepEqual([...leader.kv.confState.voters].sort(), [1, 2, 3, 4]);
    await c.waitFor(
      () => n4.kv.confState.voters.includes(4),
      3000,
      "promotion applied on the new voter",
    );
  } finally {
    c.stopAll();
  }
});

Deno.test("a forwarded proposal lost on the way is forwarded again and applied once", async () => {
  const c = InprocCluster.bootstrap([1, 2, 3]);
  try {
    const leader = await c.waitLeader();
    const follower = [...c.nodes.values()].find((n) => n !== leader)!;
    let dropped = 0;
    c.drop = (from, m) => {
      if (from === follower.id && m.type === "MsgProp" && dropped === 0) {
        dropped++;
        return true;
      }
      return false;
    };
    await follower.kv.write(put("lost", "once", "req-lost"));
    assert.equal(dropped, 1);
    await c.waitFor(
      () => [...c.nodes.values()].every((n) => n.sm.value("lost") === "once"),
      3000,
      "replication",
    );
    for (const n of c.nodes.values()) {
      assert.deepEqual(n.sm.appliedLog.map((x) => x.requestId), ["req-lost"]);
    }
  } finally {
    c.stopAll();
  }
});

/** A cluster built with asynchronous Raft writes (the environment switch), or the default. */
function bootstrapWrites(ids: number[], sync: boolean): InprocCluster {
  if (sync) return InprocCluster.bootstrap(ids);
  Deno.env.set("TWILL_RAFT_ASYNC_WRITES", "1");
  try {
    return InprocCluster.bootstrap(ids); // RaftKv reads the switch when constructed
  } finally {
    Deno.env.delete("TWILL_RAFT_ASYNC_WRITES");
  }
}

/** Holds the leader's next save of entries until `release()`; records what the leader sends. */
function holdLeaderSave(c: InprocCluster, leader: InprocNode) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const held = { from: 0, release, sent: [] as { type: string; commit: number; to: number }[] };
  const save = leader.storage.save.bind(leader.storage);
  leader.storage.save = (rd) => {
    if (rd.entries.length > 0 && held.from === 0) held.from = rd.entries[0].index;
    // Saves complete in order (as the WAL's do): later ones wait behind the held one.
    return held.from > 0 ? gate.then(() => save(rd)) : save(rd);
  };
  c.drop = (from, m) => {
    if (from === leader.id) held.sent.push({ type: m.type, commit: m.commit, to: m.to });
    return false;
  };
  return held;
}

Deno.test("sync writes: a leader replicates while its own save is in flight, but nothing commits on it until that save is done", async () => {
  const c = bootstrapWrites([1, 2, 3], true);
  try {
    const leader = await c.waitLeader();
    await leader.kv.write(put("warm", "up"));
    const held = holdLeaderSave(c, leader);
    let done = false;
    const write = leader.kv.write(put("k", "v")).then(() => (done = true));
    write.catch(() => {}); // reported by `await write` below, not as an unhandled rejection
    // The followers get the entry and make it durable although the leader has not yet.
    await c.waitFor(
      () =>
        held.from > 0 &&
        [...c.nodes.values()].filter((n) => n !== leader)
          .every((n) => n.storage.lastIndex() >= held.from),
      3000,
      "the followers to hold the entry",
    );
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(done, false, "a write was acknowledged before the leader's own save");
    assert.ok(held.sent.some((m) => m.type === "MsgApp"), "no append went out during the save");
    const early = held.sent.filter((m) => m.commit >= held.from);
    assert.deepEqual(early, [], "a commit index covering unsaved entries went out");
    held.release();
    await write;
    await c.waitFor(
      () => [...c.nodes.values()].every((n) => n.sm.value("k") === "v"),
      3000,
      "replication",
    );
  } finally {
    c.stopAll();
  }
});

Deno.test("async writes: followers' durable copies commit an entry while the leader's own save is held; the leader applies it once saved", async () => {
  const c = bootstrapWrites([1, 2, 3], false);
  try {
    const leader = await c.waitLeader();
    await leader.kv.write(put("warm", "up"));
    const held = holdLeaderSave(c, leader);
    let done = false;
    const write = leader.kv.write(put("k", "v")).then(() => (done = true));
    write.catch(() => {}); // reported by `await write` below, not as an unhandled rejection
    // Two followers hold it durably: a quorum of 3, so it commits and they apply it, although
    // the leader's own write of it has not even started.
    await c.waitFor(
      () =>
        held.from > 0 &&
        [...c.nodes.values()].filter((n) => n !== leader).every((n) => n.sm.value("k") === "v"),
      3000,
      "the followers to apply the entry",
    );
    assert.ok(
      held.sent.some((m) => m.commit >= held.from),
      "the leader never told the followers the entry is committed",
    );
    assert.equal(leader.sm.value("k"), undefined, "the leader applied an entry not on its disk");
    assert.equal(done, false, "a write was acknowledged before it was durable on the leader");
    held.release();
    await write;
    assert.equal(leader.sm.value("k"), "v");
  } finally {
    c.stopAll();
  }
});
