// A Raft node restarted over DurableStorage comes back with its term, vote, commit and log,
// and keeps the promise its vote made.
import assert from "node:assert/strict";
import { RawNode } from "../../../lib/raft/rawnode.ts";
import { bootstrapSnapshot } from "../../../lib/raft/bootstrap.ts";
import { decodeConfChange } from "../../../lib/raft/confchange_codec.ts";
import type { Message, NodeId } from "../../../lib/raft/types.ts";
import { newMessage } from "../../../lib/raft/util.ts";
import { DurableStorage } from "../../../lib/store/wal/durable_storage.ts";
import { tempDir } from "./helpers.ts";
import { join } from "node:path";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

interface Member {
  id: NodeId;
  rn: RawNode;
  storage: DurableStorage;
  applied: string[];
  appliedIndex: number;
}

async function openMember(dir: string, id: NodeId, voters: NodeId[]): Promise<Member> {
  const storage = await DurableStorage.open(join(dir, `n${id}`));
  if (storage.lastIndex() === 0) {
    await storage.save({ snapshot: bootstrapSnapshot({ voters, learners: [] }), entries: [] });
  }
  const rn = new RawNode({
    id,
    electionTick: 10,
    heartbeatTick: 1,
    storage,
    rand: () => 0,
    applied: storage.snapshot().metadata.index,
  });
  const snap = storage.snapshot();
  const applied = snap.data.length > 0 ? JSON.parse(dec(snap.data)) as string[] : [];
  return { id, rn, storage, applied, appliedIndex: snap.metadata.index };
}

/** The Ready loop: persist, collect messages, apply, advance. */
async function drain(m: Member, outbox: Message[]): Promise<void> {
  while (m.rn.hasReady()) {
    const rd = m.rn.ready();
    await m.storage.save(rd);
    outbox.push(...rd.messages);
    if (rd.snapshot) {
      m.applied = JSON.parse(dec(rd.snapshot.data));
      m.appliedIndex = rd.snapshot.metadata.index;
    }
    for (const e of rd.committedEntries) {
      m.appliedIndex = e.index;
      if (e.type === "confChange") m.rn.applyConfChange(decodeConfChange(e.data));
      else if (e.data.length > 0) m.applied.push(dec(e.data));
    }
    m.rn.advance(rd);
  }
}

/** Deliver messages until the network is quiet (all members up). */
async function settle(members: Map<NodeId, Member>): Promise<void> {
  const queue: Message[] = [];
  for (const m of members.values()) await drain(m, queue);
  while (queue.length > 0) {
    const msg = queue.shift()!;
    const to = members.get(msg.to);
    if (!to) continue;
    to.rn.step(msg);
    await drain(to, queue);
  }
}

Deno.test("a RawNode restarted over DurableStorage keeps its term, vote and log", async () => {
  const { dir, cleanup } = await tempDir();
  const members = new Map<NodeId, Member>();
  try {
    for (const id of [1, 2, 3]) members.set(id, await openMember(dir, id, [1, 2, 3]));
    members.get(1)!.rn.campaign();
    await settle(members);
    assert.equal(members.get(1)!.rn.basicStatus().softState.role, "leader");
    for (const v of ["a", "b", "c"]) {
      members.get(1)!.rn.propose(enc(v));
      await settle(members);
    }
    const before = members.get(2)!.rn.basicStatus().hardState;
    assert.equal(before.vote, 1);
    assert.ok(before.term >= 2);
    const logBefore = members.get(2)!.storage.entries(
      2,
      members.get(2)!.storage.lastIndex() + 1,
      Infinity,
    );
    assert.deepEqual(members.get(2)!.applied, ["a", "b", "c"]);

    // Crash and restart every member from its files.
    for (const m of members.values()) await m.storage.close();
    for (const id of [1, 2, 3]) members.set(id, await openMember(dir, id, [1, 2, 3]));
    const n2 = members.get(2)!;
    assert.deepEqual(n2.rn.basicStatus().hardState, before);
    assert.deepEqual(n2.storage.entries(2, n2.storage.lastIndex() + 1, Infinity), logBefore);

    // Its vote in this term is still taken: a rival candidate for the same term is refused.
    const rival = newMessage({
      type: "MsgVote",
      from: 3,
      to: 2,
      term: before.term,
      logTerm: before.term,
      index: n2.storage.lastIndex() + 10,
    });
    n2.rn.step(rival);
    const out: Message[] = [];
    await drain(n2, out);
    const resp = out.find((m) => m.type === "MsgVoteResp");
    assert.ok(resp, "a vote response is sent");
    assert.equal(resp.reject, true);
    assert.equal(n2.rn.basicStatus().hardState.vote, 1);

    // The restarted cluster re-applies the committed log from the snapshot and keeps going.
    members.get(1)!.rn.campaign();
    await settle(members);
    members.get(1)!.rn.propose(enc("d"));
    await settle(members);
    assert.deepEqual(members.get(3)!.applied, ["a", "b", "c", "d"]);
    assert.ok(members.get(3)!.rn.basicStatus().hardState.term > before.term);
  } finally {
    for (const m of members.values()) await m.storage.close();
    await cleanup();
  }
});

Deno.test("a follower restored from the leader's snapshot restarts from that snapshot", async () => {
  const { dir, cleanup } = await tempDir();
  const members = new Map<NodeId, Member>();
  try {
    for (const id of [1, 2, 3]) members.set(id, await openMember(dir, id, [1, 2, 3]));
    const leader = members.get(1)!;
    leader.rn.campaign();
    await settle(members);
    const n3 = members.get(3)!;
    members.delete(3); // partitioned: messages to it are lost
    for (const v of ["a", "b", "c", "d", "e"]) {
      leader.rn.propose(enc(v));
      await settle(members);
    }
    const state = enc(JSON.stringify(leader.applied));
    await leader.storage.createSnapshot(leader.appliedIndex, leader.rn.basicStatus().config, state);
    await leader.storage.compact(leader.appliedIndex);
    members.set(3, n3); // heals; the leader must send a snapshot
    leader.rn.tick();
    await settle(members);
    assert.deepEqual(n3.applied, ["a", "b", "c", "d", "e"]);
    assert.equal(n3.storage.snapshot().metadata.index, leader.appliedIndex);
    leader.rn.propose(enc("f"));
    await settle(members);
    const hs = n3.rn.basicStatus().hardState;

    await n3.storage.close();
    const again = await openMember(dir, 3, [1, 2, 3]);
    members.set(3, again);
    assert.deepEqual(again.applied, ["a", "b", "c", "d", "e"]); // rebuilt from the snapshot
    assert.deepEqual(again.rn.basicStatus().hardState, hs);
    // Raft re-delivers the committed entries after the snapshot.
    await settle(members);
    assert.deepEqual(again.applied, ["a", "b", "c", "d", "e", "f"]);
  } finally {
    for (const m of members.values()) await m.storage.close();
    await cleanup();
  }
});
