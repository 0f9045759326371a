// Asynchronous storage writes (Config.asyncStorageWrites): one test per durability rule. The
// nodes here hand out a Ready, keep its write pending for as long as the test wants, and report
// it durable with persisted(); messages travel only when a test delivers them, so every test can
// put a write's completion before or after any message.
import assert from "node:assert/strict";
import { MemoryStorage } from "../../lib/raft/memory_storage.ts";
import { bootstrap } from "../../lib/raft/bootstrap.ts";
import { RawNode } from "../../lib/raft/rawnode.ts";
import type { Entry, Message, NodeId, Ready, Snapshot } from "../../lib/raft/types.ts";
import { enc, newMessage, newTestRawNode } from "./harness.ts";

interface AsyncNode {
  rn: RawNode;
  storage: MemoryStorage;
  /** Readies whose write has not completed, oldest first. */
  writes: Ready[];
  /** Committed entries handed to the application, in order. */
  applied: Entry[];
}

/** Nodes with asynchronous writes and a hand-driven network. */
class AsyncCluster {
  readonly nodes = new Map<NodeId, AsyncNode>();
  /** Messages sent and not yet delivered. */
  wire: Message[] = [];

  constructor(voters: NodeId[], preVote = false) {
    for (const id of voters) {
      const storage = new MemoryStorage();
      bootstrap(storage, { voters, learners: [] });
      const rn = new RawNode({
        id,
        electionTick: 10,
        heartbeatTick: 1,
        storage,
        rand: () => 0,
        preVote,
        checkQuorum: false,
        asyncStorageWrites: true,
      });
      this.nodes.set(id, { rn, storage, writes: [], applied: [] });
    }
  }

  node(id: NodeId): AsyncNode {
    return this.nodes.get(id)!;
  }

  /** Hand out every Ready of `id`: send its messages, apply, advance; its writes stay pending. */
  ready(id: NodeId): Ready[] {
    const n = this.node(id);
    const out: Ready[] = [];
    while (n.rn.hasReady()) {
      const rd = n.rn.ready();
      this.wire.push(...structuredClone(rd.messages));
      n.applied.push(...rd.committedEntries);
      n.rn.advance(rd);
      n.writes.push(rd);
      out.push(rd);
    }
    return out;
  }

  /** The oldest pending write of `id` reaches its disk. */
  persist(id: NodeId): Ready {
    const n = this.node(id);
    const rd = n.writes.shift();
    assert.ok(rd, `node ${id} has no write pending`);
    if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    this.wire.push(...structuredClone(rd.messagesAfterPersist));
    n.rn.persisted(rd);
    return rd;
  }

  /** Every pending write of `id` reaches its disk, including those of new Readies. */
  persistAll(id: NodeId): void {
    this.ready(id);
    while (this.node(id).writes.length > 0) {
      this.persist(id);
      this.ready(id);
    }
  }

  /** Deliver the messages on the wire that `pick` selects (default: all). */
  deliver(pick: (m: Message) => boolean = () => true): Message[] {
    const now = this.wire.filter(pick);
    this.wire = this.wire.filter((m) => !pick(m));
    for (const m of now) this.node(m.to).rn.step(m);
    return now;
  }

  /** Elect node 1 and let every node catch up and persist everything. */
  electOne(): void {
    this.node(1).rn.campaign();
    for (let round = 0; round < 10; round++) {
      for (const id of this.nodes.keys()) this.persistAll(id);
      if (this.wire.length === 0) break;
      this.deliver();
    }
    assert.equal(this.node(1).rn.raft.state, "leader");
  }
}

const types = (ms: Message[]) => ms.map((m) => `${m.type}->${m.to}`);

/** A single node with asynchronous writes over its own storage. */
function asyncNode(id: NodeId, voters: NodeId[]): { rn: RawNode; write: (rd: Ready) => void } {
  const storage = new MemoryStorage();
  bootstrap(storage, { voters, learners: [] });
  const rn = newTestRawNode(id, voters, { storage, asyncStorageWrites: true });
  const write = (rd: Ready) => {
    if (rd.snapshot) storage.applySnapshot(rd.snapshot);
    storage.append(rd.entries);
    if (rd.hardState) storage.setHardState(rd.hardState);
    rn.persisted(rd);
  };
  return { rn, write };
}

// ---- votes and terms ------------------------------------------------------------------------

Deno.test("async: a candidate counts its own vote only once its term and vote are durable", () => {
  const { rn, write } = asyncNode(1, [1]);
  rn.campaign();
  const rd = rn.ready();
  assert.deepEqual(rd.hardState, { term: 2, vote: 1, commit: 1 });
  assert.ok(rd.mustSync);
  assert.equal(rn.raft.state, "candidate", "a single voter must not win on an unsynced vote");
  rn.advance(rd);
  write(rd);
  assert.equal(rn.raft.state, "leader");
});

Deno.test("async: vote requests of a new term leave only once that term and vote are durable", () => {
  const c = new AsyncCluster([1, 2, 3]);
  c.node(1).rn.campaign();
  const [rd] = c.ready(1);
  assert.deepEqual(types(rd.messages), []);
  assert.deepEqual(types(rd.messagesAfterPersist), ["MsgVote->2", "MsgVote->3"]);
  assert.equal(c.wire.length, 0);
  c.persist(1);
  assert.deepEqual(types(c.wire), ["MsgVote->2", "MsgVote->3"]);
});

Deno.test("async: a granted vote is sent only after the hard state recording it is durable", () => {
  const c = new AsyncCluster([1, 2, 3]);
  c.node(1).rn.campaign();
  c.persistAll(1);
  c.deliver((m) => m.to === 2);
  const [rd] = c.ready(2);
  assert.deepEqual(rd.hardState, { term: 2, vote: 1, commit: 1 });
  assert.deepEqual(types(rd.messages), []);
  assert.deepEqual(types(rd.messagesAfterPersist), ["MsgVoteResp->1"]);
  // The candidate cannot win on it before node 2's disk has the vote.
  c.deliver();
  assert.equal(c.node(1).rn.raft.state, "candidate");
  c.persist(2);
  c.deliver((m) => m.to === 1);
  assert.equal(c.node(1).rn.raft.state, "leader");
});

Deno.test("async: nothing of a new term is sent before that term is durable", () => {
  const { rn, write } = asyncNode(2, [1, 2, 3]);
  rn.step(newMessage({ type: "MsgHeartbeat", from: 1, to: 2, term: 5, commit: 1 }));
  const first = rn.ready();
  assert.equal(first.hardState?.term, 5);
  assert.deepEqual(types(first.messages), []);
  assert.deepEqual(types(first.messagesAfterPersist), ["MsgHeartbeatResp->1"]);
  // A second heartbeat while the term's write is still running also waits for it.
  rn.step(newMessage({ type: "MsgHeartbeat", from: 1, to: 2, term: 5, commit: 1 }));
  const second = rn.ready();
  assert.deepEqual(types(second.messages), []);
  assert.deepEqual(types(second.messagesAfterPersist), ["MsgHeartbeatResp->1"]);
  write(first);
  write(second);
  // Once term 5 is durable, a heartbeat response needs no write.
  rn.step(newMessage({ type: "MsgHeartbeat", from: 1, to: 2, term: 5, commit: 1 }));
  assert.deepEqual(types(rn.ready().messages), ["MsgHeartbeatResp->1"]);
});

// ---- appends --------------------------------------------------------------------------------

Deno.test("async: a follower acknowledges entries only once they are durable, and right then", () => {
  const c = new AsyncCluster([1, 2, 3]);
  c.electOne();
  c.node(1).rn.propose(enc("x"));
  c.ready(1);
  c.deliver((m) => m.to === 2);
  const [rd] = c.ready(2);
  assert.deepEqual(rd.entries.map((e) => e.index), [3]);
  assert.deepEqual(types(rd.messages), []);
  assert.deepEqual(types(rd.messagesAfterPersist), ["MsgAppResp->1"]);
  assert.equal(rd.messagesAfterPersist[0].index, 3);
  // A second append while the first write runs: only the new entry is handed out for writing,
  // and its acknowledgement waits for its own write.
  c.node(1).rn.propose(enc("y"));
  c.ready(1);
  c.deliver((m) => m.to === 2 && m.type === "MsgApp");
  const [rd2] = c.ready(2);
  assert.deepEqual(rd2.entries.map((e) => e.index), [4]);
  assert.deepEqual(types(rd2.messagesAfterPersist), ["MsgAppResp->1"]);
  c.persist(2);
  assert.deepEqual(c.wire.filter((m) => m.from === 2).map((m) => m.index), [3]);
});

Deno.test("async: the leader replicates before its own write is durable", () => {
  const c = new AsyncCluster([1, 2, 3]);
  c.electOne();
  c.node(1).rn.propose(enc("x"));
  const [rd] = c.ready(1);
  assert.deepEqual(rd.entries.map((e) => e.index), [3]);
  assert.deepEqual(types(rd.messages), ["MsgApp->2", "MsgApp->3"]);
  assert.deepEqual(types(rd.messagesAfterPersist), []);
});

Deno.test("async: the leader counts itself toward the quorum only for entries durable on its disk", () => {
  const c = new AsyncCluster([1, 2, 3]);
  c.electOne();
  const leader = c.node(1).rn;
  leader.propose(enc("x"));
  c.ready(1);
  c.deliver((m) => m.to === 2);
  c.persistAll(2);
  c.deliver((m) => m.to === 1); // node 2's acknowledgement of index 3
  assert.equal(leader.raft.prs.progress.get(2)!.match, 3);
  assert.equal(leader.raft.prs.progress.get(1)!.match, 2, "own write not reported durable yet");
  assert.equal(leader.raft.raftLog.committed, 2, "one durable copy of two is not a quorum of 3");
  c.persist(1);
  assert.equal(leader.raft.prs.progress.get(1)!.match, 3);
  assert.equal(leader.raft.raftLog.committed, 3);
});

Deno.test("async: a quorum of followers commits an entry the leader's own write still holds", () => {
  const c = new AsyncCluster([1, 2, 3]);
  c.electOne();
  const leader = c.node(1).rn;
  leader.propose(enc("x"));
  c.ready(1);
  c.deliver();
  c.persistAll(2);
  c.persistAll(3);
  c.deliver((m) => m.to === 1);
  assert.equal(leader.raft.raftLog.committed, 3, "durable on 2 of 3: committed");
  // The application is told the commit index, but applies the entry only once it is durable
  // here too (a restart must never have applied more than its own log holds).
  const [rd] = c.ready(1);
  assert.equal(rd.hardState?.commit, 3);
  assert.deepEqual(rd.committedEntries, []);
  c.persist(1); // the proposal's write
  const after = c.ready(1);
  assert.deepEqual(after.flatMap((r) => r.committedEntries).map((e) => e.index), [3]);
});

Deno.test("async: the commit index never exceeds what a quorum holds durably", () => {
  const c = new AsyncCluster([1, 2, 3]);
  c.electOne();
  const leader = c.node(1).rn;
  leader.propose(enc("x"));
  c.ready(1);
  c.persist(1);
  c.deliver(); // both followers append, but neither write completes
  c.ready(2);
  c.ready(3);
  c.deliver();
  assert.equal(leader.raft.raftLog.committed, 2);
  const committedBefore = c.ready(1).map((r) => r.hardState?.commit ?? 2);
  assert.ok(committedBefore.every((ci) => ci === 2));
  c.persist(3);
  c.deliver((m) => m.to === 1);
  assert.equal(leader.raft.raftLog.committed, 3);
});

Deno.test("async: committed entries are handed out only once durable on this node", () => {
  const { rn, write } = asyncNode(2, [1, 2, 3]);
  rn.step(newMessage({
    type: "MsgApp",
    from: 1,
    to: 2,
    term: 2,
    index: 1,
    logTerm: 1,
    commit: 2,
    entries: [{ index: 2, term: 2, type: "normal", data: enc("a") }],
  }));
  const rd = rn.ready();
  assert.equal(rd.hardState?.commit, 2);
  assert.deepEqual(rd.committedEntries, [], "entry 2 is committed but not yet on this disk");
  rn.advance(rd);
  write(rd);
  assert.deepEqual(rn.ready().committedEntries.map((e) => e.index), [2]);
});

// ---- snapshots ------------------------------------------------------------------------------

Deno.test("async: a snapshot is acknowledged and applied only once durable", () => {
  const { rn, write } = asyncNode(2, [1, 2, 3]);
  const snapshot: Snapshot = {
    data: enc("state at 10"),
    metadata: { index: 10, term: 2, confState: { voters: [1, 2, 3], learners: [] } },
  };
  rn.step(newMessage({ type: "MsgSnap", from: 1, to: 2, term: 2, snapshot }));
  const rd = rn.ready();
  assert.equal(rd.snapshot?.metadata.index, 10);
  assert.deepEqual(types(rd.messages), []);
  assert.deepEqual(types(rd.messagesAfterPersist), ["MsgAppResp->1"]);
  assert.deepEqual(rd.committedEntries, []);
  rn.advance(rd);
  assert.equal(rn.raft.raftLog.applied, 1);
  // An append after the snapshot, while it is still being written: nothing is applied yet.
  rn.step(newMessage({
    type: "MsgApp",
    from: 1,
    to: 2,
    term: 2,
    index: 10,
    logTerm: 2,
    commit: 11,
    entries: [{ index: 11, term: 2, type: "normal", data: enc("b") }],
  }));
  const rd2 = rn.ready();
  assert.equal(rd2.snapshot, undefined, "the snapshot is handed out once");
  assert.deepEqual(rd2.committedEntries, []);
  rn.advance(rd2);
  write(rd);
  assert.equal(rn.raft.raftLog.applied, 10);
  write(rd2);
  assert.deepEqual(rn.ready().committedEntries.map((e) => e.index), [11]);
});

// ---- the contract ---------------------------------------------------------------------------

Deno.test("async: writes must be reported durable in the order of their Readies", () => {
  const { rn, write } = asyncNode(1, [1]);
  rn.campaign();
  write(rn.ready());
  rn.propose(enc("x"));
  const b = rn.ready();
  rn.propose(enc("y"));
  const c = rn.ready();
  assert.throws(() => rn.persisted(c), /out of order/);
  write(b);
  write(c);
  assert.equal(rn.writesInProgress(), 0);
});

Deno.test("async: an entry replaced while its write ran is not counted durable by that write", () => {
  const { rn, write } = asyncNode(2, [1, 2, 3]);
  const app = (term: number, index: number, logTerm: number, ents: [number, number][]) =>
    rn.step(newMessage({
      type: "MsgApp",
      from: term === 2 ? 1 : 3,
      to: 2,
      term,
      index,
      logTerm,
      commit: 1,
      entries: ents.map(([i, t]) => ({ index: i, term: t, type: "normal", data: enc("") })),
    }));
  app(2, 1, 1, [[2, 2], [3, 2]]);
  const first = rn.ready();
  app(3, 2, 2, [[3, 3]]); // a new leader replaces entry 3 while the first write runs
  const second = rn.ready();
  assert.deepEqual(second.entries.map((e) => [e.index, e.term]), [[3, 3]]);
  write(first);
  assert.equal(rn.raft.raftLog.stableLastIndex(), 1, "entry 3 of term 2 is gone; 2 waits too");
  write(second);
  assert.equal(rn.raft.raftLog.stableLastIndex(), 3);
});

Deno.test("sync mode is unchanged: every message is in messages, none after persist", () => {
  const rn = newTestRawNode(1, [1, 2, 3]);
  rn.campaign();
  const rd = rn.ready();
  assert.deepEqual(types(rd.messages), ["MsgVote->2", "MsgVote->3"]);
  assert.deepEqual(rd.messagesAfterPersist, []);
  assert.throws(() => rn.persisted(rd), /without asyncStorageWrites/);
});

// ---- liveness -------------------------------------------------------------------------------

Deno.test("async: a removed member still campaigns (a remaining voter that lost a leader's unsynced entry may need its vote)", () => {
  for (const asyncStorageWrites of [false, true]) {
    const storage = new MemoryStorage();
    bootstrap(storage, { voters: [1, 2], learners: [] });
    const rn = newTestRawNode(1, [1, 2], { storage, asyncStorageWrites });
    rn.applyConfChange({ type: "removeNode", nodeId: 1 });
    rn.campaign();
    if (!asyncStorageWrites) {
      assert.equal(rn.raft.state, "follower", "sync mode: a removed member never campaigns");
      continue;
    }
    const rd = rn.ready();
    assert.deepEqual(types(rd.messagesAfterPersist), ["MsgVote->2"]);
    storage.setHardState(rd.hardState!);
    rn.persisted(rd);
    // Node 2 has not applied the removal and votes for the longer log; node 1's quorum is {2}.
    rn.step(newMessage({ type: "MsgVoteResp", from: 2, to: 1, term: rn.raft.term }));
    assert.equal(rn.raft.state, "leader");
    // As a removed leader it accepts no proposals and hands leadership to node 2.
    assert.throws(() =>
      rn.raft.step(newMessage({
        type: "MsgProp",
        from: 1,
        entries: [
          { index: 0, term: 0, type: "normal", data: enc("x") },
        ],
      })), /removed/);
  }
});
