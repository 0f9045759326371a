// Paper tests: one test per rule of the Raft paper (Figure 2 and §5–§6), each named after the
// rule it proves. Single nodes are driven by stepping messages directly and reading the messages
// they would send; clusters use the synchronous network of harness.ts.
import assert from "node:assert/strict";
import { MemoryStorage } from "../../lib/raft/memory_storage.ts";
import { bootstrap } from "../../lib/raft/bootstrap.ts";
import type { Entry, Message, NodeId } from "../../lib/raft/types.ts";
import type { RawNode } from "../../lib/raft/rawnode.ts";
import { enc, Network, newMessage, newTestRawNode, readMessages, seededRand } from "./harness.ts";

const ent = (index: number, term: number, data = ""): Entry => ({
  index,
  term,
  type: "normal",
  data: enc(data),
});

/** A storage whose log holds entries 2.. with the given terms after the bootstrap entry (index 1, term 1). */
function storageWithLog(
  voters: NodeId[],
  terms: number[],
  hs?: { term: number; vote: NodeId; commit?: number },
) {
  const s = new MemoryStorage();
  bootstrap(s, { voters, learners: [] });
  s.append(terms.map((t, i) => ent(i + 2, t)));
  if (hs) s.setHardState({ term: hs.term, vote: hs.vote, commit: hs.commit ?? 1 });
  return s;
}

function becomeLeader(rn: RawNode, voters: NodeId[]): void {
  rn.campaign();
  for (const id of voters) {
    if (id === rn.raft.id) continue;
    rn.step(newMessage({ type: "MsgVoteResp", from: id, to: rn.raft.id, term: rn.raft.term }));
  }
  assert.equal(rn.raft.state, "leader");
  readMessages(rn);
}

function persistAll(rn: RawNode, storage: MemoryStorage): void {
  const rd = rn.ready();
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
  rn.advance(rd);
}

// ---- §5.1 terms ----------------------------------------------------------------------------

for (const role of ["follower", "candidate", "leader"] as const) {
  Deno.test(`§5.1 a ${role} that sees a higher term updates its term and becomes a follower`, () => {
    const rn = newTestRawNode(1, [1, 2, 3]);
    if (role === "candidate") rn.campaign();
    if (role === "leader") becomeLeader(rn, [1, 2, 3]);
    assert.equal(rn.raft.state, role);
    const higher = rn.raft.term + 1;
    rn.step(newMessage({ type: "MsgApp", from: 2, to: 1, term: higher, index: 0, logTerm: 0 }));
    assert.equal(rn.raft.term, higher);
    assert.equal(rn.raft.state, "follower");
    assert.equal(rn.raft.lead, 2);
  });
}

Deno.test("§5.1 a request with a stale term is rejected", () => {
  const rn = newTestRawNode(1, [1, 2, 3], {
    storage: storageWithLog([1, 2, 3], [], { term: 5, vote: 0 }),
  });
  assert.equal(rn.raft.term, 5);
  // A stale vote request is not granted (no response at all without PreVote/CheckQuorum).
  rn.step(newMessage({ type: "MsgVote", from: 2, to: 1, term: 4, index: 10, logTerm: 4 }));
  assert.equal(rn.raft.vote, 0);
  assert.equal(readMessages(rn).length, 0);
  // A stale append is not appended.
  rn.step(
    newMessage({
      type: "MsgApp",
      from: 2,
      to: 1,
      term: 4,
      index: 1,
      logTerm: 1,
      entries: [ent(2, 4)],
    }),
  );
  assert.equal(rn.raft.raftLog.lastIndex(), 1);
  assert.equal(rn.raft.term, 5);
});

Deno.test("§5.1 with CheckQuorum a stale leader is told the newer term in an append response", () => {
  const rn = newTestRawNode(1, [1, 2, 3], {
    storage: storageWithLog([1, 2, 3], [], { term: 5, vote: 0 }),
    checkQuorum: true,
  });
  rn.step(newMessage({ type: "MsgHeartbeat", from: 2, to: 1, term: 3 }));
  const msgs = readMessages(rn);
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0].type, "MsgAppResp");
  assert.equal(msgs[0].term, 5);
});

// ---- §5.2 leader election -----------------------------------------------------------------

Deno.test("§5.2 a leader sends heartbeats to every follower each heartbeat timeout", () => {
  const rn = newTestRawNode(1, [1, 2, 3], { heartbeatTick: 2 });
  becomeLeader(rn, [1, 2, 3]);
  rn.tick();
  assert.equal(readMessages(rn).length, 0);
  rn.tick();
  const msgs = readMessages(rn);
  assert.deepEqual(msgs.map((m) => [m.type, m.to]), [["MsgHeartbeat", 2], ["MsgHeartbeat", 3]]);
});

Deno.test("§5.2 a follower that hears nothing for an election timeout becomes a candidate and requests votes", () => {
  const rn = newTestRawNode(1, [1, 2, 3]);
  for (let i = 0; i < 10; i++) rn.tick();
  assert.equal(rn.raft.state, "candidate");
  assert.equal(rn.raft.term, 2);
  assert.equal(rn.raft.vote, 1, "a candidate votes for itself");
  const msgs = readMessages(rn);
  assert.deepEqual(msgs.map((m) => [m.type, m.to, m.term]), [["MsgVote", 2, 2], ["MsgVote", 3, 2]]);
});

Deno.test("§5.2 a candidate whose election times out starts a new election in a higher term", () => {
  const rn = newTestRawNode(1, [1, 2, 3]);
  rn.campaign();
  assert.equal(rn.raft.term, 2);
  readMessages(rn);
  for (let i = 0; i < 10; i++) rn.tick();
  assert.equal(rn.raft.state, "candidate");
  assert.equal(rn.raft.term, 3);
  assert.equal(readMessages(rn).filter((m) => m.type === "MsgVote").length, 2);
});

Deno.test("§5.2 election timeouts are randomized in [electionTick, 2*electionTick)", () => {
  const seen = new Set<number>();
  for (let seed = 1; seed <= 60; seed++) {
    const rn = newTestRawNode(1, [1, 2, 3], { rand: seededRand(seed) });
    let ticks = 0;
    while (rn.raft.state === "follower") {
      rn.tick();
      ticks++;
    }
    assert.ok(ticks >= 10 && ticks < 20, `campaigned after ${ticks} ticks`);
    seen.add(ticks);
  }
  assert.ok(seen.size > 5, "timeouts must actually vary");
});

Deno.test("§5.2 a candidate becomes leader with votes from a majority, and only then", () => {
  const cases: [number, Record<number, boolean>, string][] = [
    [1, {}, "leader"],
    [3, { 2: true }, "leader"],
    [3, { 2: false }, "candidate"],
    [3, { 2: false, 3: false }, "follower"],
    [5, { 2: true }, "candidate"],
    [5, { 2: true, 3: true }, "leader"],
    [5, { 2: false, 3: false }, "candidate"],
    [5, { 2: false, 3: false, 4: false }, "follower"],
  ];
  for (const [size, votes, want] of cases) {
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    const rn = newTestRawNode(1, ids);
    rn.campaign();
    for (const [id, granted] of Object.entries(votes)) {
      rn.step(
        newMessage({
          type: "MsgVoteResp",
          from: Number(id),
          to: 1,
          term: rn.raft.term,
          reject: !granted,
        }),
      );
    }
    assert.equal(rn.raft.state, want, `size ${size} votes ${JSON.stringify(votes)}`);
  }
});

Deno.test("§5.2 each node votes for at most one candidate per term, first come first served", () => {
  const rn = newTestRawNode(1, [1, 2, 3]);
  rn.step(newMessage({ type: "MsgVote", from: 2, to: 1, term: 2, index: 1, logTerm: 1 }));
  rn.step(newMessage({ type: "MsgVote", from: 3, to: 1, term: 2, index: 1, logTerm: 1 }));
  // Repeating the request of the candidate we voted for is granted again (idempotent).
  rn.step(newMessage({ type: "MsgVote", from: 2, to: 1, term: 2, index: 1, logTerm: 1 }));
  const resps = readMessages(rn).map((m) => [m.to, m.reject]);
  assert.deepEqual(resps, [[2, false], [3, true], [2, false]]);
  assert.equal(rn.raft.vote, 2);
});

Deno.test("§5.2 the vote survives a restart (it is in the persisted hard state)", () => {
  const storage = storageWithLog([1, 2, 3], []);
  let rn = newTestRawNode(1, [1, 2, 3], { storage });
  rn.step(newMessage({ type: "MsgVote", from: 2, to: 1, term: 2, index: 1, logTerm: 1 }));
  persistAll(rn, storage);
  rn = newTestRawNode(1, [1, 2, 3], { storage });
  rn.step(newMessage({ type: "MsgVote", from: 3, to: 1, term: 2, index: 1, logTerm: 1 }));
  assert.equal(readMessages(rn)[0].reject, true);
  assert.equal(rn.raft.vote, 2);
});

Deno.test("§5.2 a candidate that receives an append from a leader of its term falls back to follower", () => {
  const rn = newTestRawNode(1, [1, 2, 3]);
  rn.campaign();
  const term = rn.raft.term;
  rn.step(newMessage({ type: "MsgApp", from: 2, to: 1, term, index: 1, logTerm: 1 }));
  assert.equal(rn.raft.state, "follower");
  assert.equal(rn.raft.lead, 2);
  assert.equal(rn.raft.term, term);
});

Deno.test("§5.2 a candidate that sees a heartbeat from a leader of its term falls back to follower", () => {
  const rn = newTestRawNode(1, [1, 2, 3]);
  rn.campaign();
  rn.step(newMessage({ type: "MsgHeartbeat", from: 3, to: 1, term: rn.raft.term }));
  assert.equal(rn.raft.state, "follower");
  assert.equal(rn.raft.lead, 3);
});

Deno.test("§6 learners are not asked to vote and their replies are not counted", () => {
  const rn = newTestRawNode(1, [1, 2, 3], { learners: [4] });
  rn.campaign();
  const asked = readMessages(rn).filter((m) => m.type === "MsgVote").map((m) => m.to);
  assert.deepEqual(asked, [2, 3]);
  rn.step(newMessage({ type: "MsgVoteResp", from: 4, to: 1, term: rn.raft.term }));
  assert.equal(rn.raft.state, "candidate", "a learner's vote does not make a majority");
  rn.step(newMessage({ type: "MsgVoteResp", from: 2, to: 1, term: rn.raft.term }));
  assert.equal(rn.raft.state, "leader");
});

Deno.test("§6 a learner never starts an election", () => {
  const rn = newTestRawNode(4, [1, 2, 3], { learners: [4] });
  for (let i = 0; i < 100; i++) rn.tick();
  assert.equal(rn.raft.state, "follower");
  rn.campaign();
  assert.equal(rn.raft.state, "follower");
  assert.equal(readMessages(rn).length, 0);
});

// ---- §5.4.1 election restriction ----------------------------------------------------------

Deno.test("§5.4.1 a vote is granted only to a candidate whose log is at least as up to date", () => {
  // Voter's log: terms [2, 2] at indexes 2, 3 (last index 3, last term 2).
  const cases: [number, number, boolean][] = [
    [3, 2, true], // same
    [4, 2, true], // longer, same last term
    [2, 2, false], // shorter, same last term
    [2, 3, true], // higher last term wins even if shorter
    [10, 1, false], // lower last term loses even if longer
  ];
  for (const [index, logTerm, granted] of cases) {
    const rn = newTestRawNode(1, [1, 2, 3], {
      storage: storageWithLog([1, 2, 3], [2, 2], { term: 2, vote: 0 }),
    });
    rn.step(newMessage({ type: "MsgVote", from: 2, to: 1, term: 3, index, logTerm }));
    const resp = readMessages(rn)[0];
    assert.equal(resp.type, "MsgVoteResp");
    assert.equal(!resp.reject, granted, `candidate (index ${index}, term ${logTerm})`);
  }
});

// ---- §5.3 log replication -----------------------------------------------------------------

Deno.test("§5.3 the leader appends a proposal to its log and sends it to every follower", () => {
  const rn = newTestRawNode(1, [1, 2, 3]);
  becomeLeader(rn, [1, 2, 3]);
  // Followers acknowledge the leader's empty entry so they are in replicate state.
  for (const id of [2, 3]) {
    rn.step(newMessage({ type: "MsgAppResp", from: id, to: 1, term: rn.raft.term, index: 2 }));
  }
  readMessages(rn);
  rn.propose(enc("cmd"));
  const last = rn.raft.raftLog.lastIndex();
  assert.equal(last, 3);
  const msgs = readMessages(rn);
  assert.deepEqual(msgs.map((m) => [m.type, m.to, m.index, m.entries.map((e) => e.index)]), [
    ["MsgApp", 2, 2, [3]],
    ["MsgApp", 3, 2, [3]],
  ]);
});

Deno.test("§5.3 an entry is committed once a majority has it, and followers learn the commit index", () => {
  for (
    const [size, acks, committed] of [[1, [], true], [3, [2], true], [5, [2], false], [
      5,
      [2, 3],
      true,
    ]] as const
  ) {
    const ids = Array.from({ length: size }, (_, i) => i + 1);
    const rn = newTestRawNode(1, ids);
    becomeLeader(rn, ids);
    const idx = rn.raft.raftLog.lastIndex();
    for (const id of acks) {
      rn.step(newMessage({ type: "MsgAppResp", from: id, to: 1, term: rn.raft.term, index: idx }));
    }
    assert.equal(rn.raft.raftLog.committed === idx, committed, `size ${size} acks ${acks}`);
    if (committed && size > 1) {
      const apps = readMessages(rn).filter((m) => m.type === "MsgApp");
      assert.ok(apps.some((m) => m.commit === idx), "commit index is broadcast");
    }
  }
});

Deno.test("§5.3 a follower commits up to min(leaderCommit, index of last new entry)", () => {
  const rn = newTestRawNode(2, [1, 2, 3]);
  rn.step(newMessage({
    type: "MsgApp",
    from: 1,
    to: 2,
    term: 2,
    index: 1,
    logTerm: 1,
    commit: 10,
    entries: [ent(2, 2), ent(3, 2)],
  }));
  assert.equal(rn.raft.raftLog.committed, 3);
  rn.step(
    newMessage({
      type: "MsgApp",
      from: 1,
      to: 2,
      term: 2,
      index: 3,
      logTerm: 2,
      commit: 3,
      entries: [ent(4, 2)],
    }),
  );
  assert.equal(rn.raft.raftLog.committed, 3);
});

Deno.test("§5.3 log matching: a follower appends only after an entry that matches in index and term", () => {
  const storage = storageWithLog([1, 2, 3], [2, 2], { term: 2, vote: 0 });
  const rn = newTestRawNode(2, [1, 2, 3], { storage });
  // prev (3, 3) does not match our (3, 2): rejected.
  rn.step(
    newMessage({
      type: "MsgApp",
      from: 1,
      to: 2,
      term: 3,
      index: 3,
      logTerm: 3,
      entries: [ent(4, 3)],
    }),
  );
  let resp = readMessages(rn)[0];
  assert.equal(resp.reject, true);
  assert.equal(rn.raft.raftLog.lastIndex(), 3);
  // prev (5, 2) is beyond our log: rejected.
  rn.step(
    newMessage({
      type: "MsgApp",
      from: 1,
      to: 2,
      term: 3,
      index: 5,
      logTerm: 2,
      entries: [ent(6, 3)],
    }),
  );
  resp = readMessages(rn)[0];
  assert.equal(resp.reject, true);
  assert.equal(resp.rejectHint, 3, "hint points at our last index");
  // prev (3, 2) matches: appended.
  rn.step(
    newMessage({
      type: "MsgApp",
      from: 1,
      to: 2,
      term: 3,
      index: 3,
      logTerm: 2,
      entries: [ent(4, 3)],
    }),
  );
  resp = readMessages(rn)[0];
  assert.equal(resp.reject, false);
  assert.equal(resp.index, 4);
  assert.equal(rn.raft.raftLog.lastIndex(), 4);
});

Deno.test("§5.3 conflicting entries in a follower are deleted and replaced by the leader's", () => {
  const storage = storageWithLog([1, 2, 3], [2, 2, 2], { term: 2, vote: 0 });
  const rn = newTestRawNode(2, [1, 2, 3], { storage });
  rn.step(
    newMessage({
      type: "MsgApp",
      from: 1,
      to: 2,
      term: 3,
      index: 2,
      logTerm: 2,
      entries: [ent(3, 3)],
    }),
  );
  const ents = rn.raft.raftLog.allEntries().map((e) => [e.index, e.term]);
  assert.deepEqual(ents, [[2, 2], [3, 3]]);
  // An append that matches entries we already have is idempotent (does not truncate).
  rn.step(
    newMessage({
      type: "MsgApp",
      from: 1,
      to: 2,
      term: 3,
      index: 1,
      logTerm: 1,
      entries: [ent(2, 2)],
    }),
  );
  assert.deepEqual(rn.raft.raftLog.allEntries().map((e) => [e.index, e.term]), [[2, 2], [3, 3]]);
});

Deno.test("§5.3 follower consistency check: the leader backtracks and brings every Figure 7 follower in line", () => {
  // Figure 7 logs (terms of indexes 1..), shifted by our bootstrap entry at index 1 (term 1).
  const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followers = [
    [1, 1, 1, 4, 4, 5, 5, 6, 6], // (a) missing one
    [1, 1, 1, 4], // (b) missing many
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], // (c) one extra
    [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // (d) extra from a later term
    [1, 1, 1, 4, 4, 4, 4], // (e) extra uncommitted from term 4
    [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], // (f) entries from terms 2, 3
  ];
  for (const [fi, flog] of followers.entries()) {
    const net = new Network([1, 2]);
    const ls = storageWithLog([1, 2], leaderLog, { term: 7, vote: 0 });
    const fs = storageWithLog([1, 2], flog, { term: 7, vote: 0 });
    net.addNode(1, ls);
    net.addNode(2, fs);
    // Node 2 could not vote for node 1 in (d) (its log is more up to date); make node 1 the
    // leader of term 8 directly, as if elected by other servers of Figure 7.
    const leader = net.node(1).rn;
    leader.raft.becomeCandidate();
    leader.raft.becomeLeader();
    net.stabilize();
    net.tick(2);
    const want = net.raft(1).raftLog.allEntries().map((e) => [e.index, e.term]);
    assert.deepEqual(
      net.raft(2).raftLog.allEntries().map((e) => [e.index, e.term]),
      want,
      `follower (${"abcdef"[fi]})`,
    );
  }
});

Deno.test("§5.3 a rejection hint lets the leader skip a whole conflicting term in one round trip", () => {
  // Follower (f) of Figure 7 has many term-2/3 entries the leader does not: the leader must not
  // probe them one by one.
  const net = new Network([1, 2]);
  net.addNode(1, storageWithLog([1, 2], [1, 1, 1, 4, 4, 5, 5, 6, 6, 6], { term: 7, vote: 0 }));
  net.addNode(2, storageWithLog([1, 2], [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], { term: 7, vote: 0 }));
  net.raft(1).becomeCandidate();
  net.raft(1).becomeLeader();
  net.trace = [];
  net.stabilize();
  const rejects = net.trace.filter((m) => m.type === "MsgAppResp" && m.reject);
  assert.ok(rejects.length <= 3, `took ${rejects.length} rejections`);
});

Deno.test("§5.3 the leader never overwrites or deletes entries in its own log (append-only)", () => {
  const storage = storageWithLog([1, 2, 3], [2, 2], { term: 2, vote: 0 });
  const rn = newTestRawNode(1, [1, 2, 3], { storage });
  becomeLeader(rn, [1, 2, 3]);
  const before = rn.raft.raftLog.allEntries().map((e) => [e.index, e.term]);
  // A rejection from a follower only moves the follower's progress, never the leader's log.
  rn.step(
    newMessage({
      type: "MsgAppResp",
      from: 2,
      to: 1,
      term: rn.raft.term,
      index: 4,
      reject: true,
      rejectHint: 1,
      logTerm: 1,
    }),
  );
  // A stale-term append (from a deposed leader) is ignored.
  rn.step(
    newMessage({
      type: "MsgApp",
      from: 3,
      to: 1,
      term: 2,
      index: 1,
      logTerm: 1,
      entries: [ent(2, 2), ent(3, 2)],
    }),
  );
  rn.propose(enc("x"));
  const after = rn.raft.raftLog.allEntries().map((e) => [e.index, e.term]);
  assert.deepEqual(after.slice(0, before.length), before);
  assert.equal(after.length, before.length + 1);
});

Deno.test("§8 a new leader appends an empty entry of its term", () => {
  const rn = newTestRawNode(1, [1, 2, 3]);
  becomeLeader(rn, [1, 2, 3]);
  const last = rn.raft.raftLog.allEntries().at(-1)!;
  assert.equal(last.term, rn.raft.term);
  assert.equal(last.data.length, 0);
  assert.equal(last.type, "normal");
});

// ---- §5.4.2 committing entries from previous terms ----------------------------------------

Deno.test("§5.4.2 a leader commits only entries of its current term by counting replicas", () => {
  // Log: index 2 from term 2 (uncommitted), leader now in term 3.
  const storage = storageWithLog([1, 2, 3], [2], { term: 2, vote: 0 });
  const rn = newTestRawNode(1, [1, 2, 3], { storage });
  becomeLeader(rn, [1, 2, 3]);
  assert.equal(rn.raft.term, 3);
  // Follower 2 acknowledges the old-term entry (index 2): a majority has it, yet it is not committed.
  rn.step(newMessage({ type: "MsgAppResp", from: 2, to: 1, term: 3, index: 2 }));
  assert.equal(rn.raft.raftLog.committed, 1);
  // Once the current-term entry (index 3) is on a majority, both are committed.
  rn.step(newMessage({ type: "MsgAppResp", from: 2, to: 1, term: 3, index: 3 }));
  assert.equal(rn.raft.raftLog.committed, 3);
});

function figure8Prefix(): Network {
  const net = new Network([1, 2, 3, 4, 5], {
    preVote: false,
    checkQuorum: false,
    config: { maxSizePerMsg: 0 },
  });
  // (a) S1 leads term 2 and replicates its index-2 entry to S2 only.
  net.filter = (m) => !(m.type === "MsgApp" && m.from === 1 && m.to > 2);
  net.campaign(1);
  assert.equal(net.raft(1).term, 2);
  assert.equal(net.raft(1).raftLog.committed, 1);
  // (b) S1 crashes; S5 wins term 3 with S3, S4 and itself, appends index 2 (term 3), replicates nowhere.
  net.heal();
  net.restart(1);
  net.isolate(1);
  net.filter = (m) => !(m.type === "MsgApp" && m.from === 5);
  net.campaign(5);
  assert.equal(net.raft(5).state, "leader");
  assert.equal(net.raft(5).term, 3);
  assert.equal(net.raft(5).raftLog.term(2), 3);
  net.heal();
  return net;
}

Deno.test("§5.4.2 Figure 8: an old-term entry on a majority is not committed and may be overwritten safely", () => {
  const net = figure8Prefix();
  // (c) S5 crashes; S1 leads term 4 and replicates the term-2 entry (index 2) to a majority, but
  // not its own term-4 entry.
  net.restart(5);
  net.isolate(5);
  net.filter = (m) => {
    if (m.type === "MsgApp" && m.from === 1) m.entries = m.entries.filter((e) => e.index < 3);
    return true;
  };
  while (net.raft(1).state !== "leader") net.campaign(1);
  assert.equal(net.raft(1).term, 4);
  const holders = [1, 2, 3, 4].filter((id) => net.raft(id).raftLog.matchTerm(2, 2));
  assert.ok(holders.length >= 3, `index 2 (term 2) is on ${holders}`);
  assert.equal(
    net.raft(1).raftLog.committed,
    1,
    "the term-2 entry must not be committed by counting",
  );
  // (d) S1 crashes; S5 is elected (its last term 3 beats 2) and overwrites index 2 everywhere.
  net.heal();
  net.restart(1);
  net.isolate(1);
  while (net.raft(5).state !== "leader") net.campaign(5);
  net.stabilize();
  for (const id of [2, 3, 4, 5]) {
    assert.equal(net.raft(id).raftLog.term(2), 3, `node ${id} index 2`);
    assert.ok(net.raft(id).raftLog.committed >= 2);
  }
  net.heal();
  net.tick(3);
  assert.equal(net.raft(1).raftLog.term(2), 3, "S1's uncommitted entry is replaced too");
  // No node ever handed index 2 of term 2 to its application.
  for (const n of net.nodes.values()) {
    assert.ok(
      !n.committedLog.some((e) => e.index === 2 && e.term === 2),
      `node ${n.id} applied a lost entry`,
    );
  }
});

Deno.test("§5.4.2 Figure 8 (e): once the leader commits an entry of its term, the old entry is safe", () => {
  const net = figure8Prefix();
  net.restart(5);
  net.isolate(5);
  while (net.raft(1).state !== "leader") net.campaign(1);
  net.stabilize();
  assert.equal(
    net.raft(1).raftLog.committed,
    3,
    "the term-4 entry commits the term-2 entry with it",
  );
  net.heal();
  net.restart(1);
  net.isolate(1);
  // S5 can no longer win: a majority has a log more up to date than its (index 2, term 3).
  for (let i = 0; i < 5; i++) net.campaign(5);
  assert.notEqual(net.raft(5).state, "leader");
  net.tick(40, [2, 3, 4, 5]);
  const leader = net.leaders().find((id) => id !== 1)!;
  assert.ok([2, 3, 4].includes(leader));
  assert.equal(net.raft(leader).raftLog.term(2), 2);
});

// ---- Safety properties under random faults ------------------------------------------------

Deno.test("election safety, leader completeness and state machine safety under random message loss", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const rand = seededRand(seed * 104729);
    const ids = [1, 2, 3, 4, 5];
    const net = new Network(ids);
    const leaderOfTerm = new Map<number, NodeId>();
    const committed = new Map<number, number>(); // index -> term, ever committed anywhere
    net.filter = () => rand(100) >= 15;
    for (let round = 0; round < 300; round++) {
      if (rand(20) === 0) {
        net.heal();
        net.filter = () => rand(100) >= 15;
        net.isolate(ids[rand(ids.length)]);
      }
      const lead = net.leaders();
      if (lead.length > 0 && rand(3) === 0) {
        try {
          net.node(lead[rand(lead.length)]).rn.propose(enc(`s${seed}r${round}`));
        } catch { /* dropped during transfer etc. */ }
      }
      net.tick(1);
      for (const n of net.nodes.values()) {
        const r = n.rn.raft;
        if (r.state === "leader") {
          const prev = leaderOfTerm.get(r.term);
          assert.ok(
            prev === undefined || prev === n.id,
            `two leaders in term ${r.term}: ${prev} and ${n.id}`,
          );
          if (prev === undefined) {
            // Leader completeness: a new leader's log holds every entry committed so far.
            for (const [idx, t] of committed) {
              assert.equal(
                r.raftLog.zeroTermOnError(idx),
                t === 0 ? 0 : t,
                `leader ${n.id} of term ${r.term} misses committed ${idx}`,
              );
            }
          }
          leaderOfTerm.set(r.term, n.id);
        }
        for (const e of n.committedLog) {
          const t = committed.get(e.index);
          assert.ok(
            t === undefined || t === e.term,
            `state machine safety: index ${e.index} applied with terms ${t} and ${e.term}`,
          );
          committed.set(e.index, e.term);
        }
      }
    }
    assert.ok(leaderOfTerm.size >= 1);
    assert.ok(committed.size > 20, `seed ${seed}: only ${committed.size} entries committed`);
  }
});

Deno.test("§5.5 followers handle duplicate and reordered appends idempotently", () => {
  const rn = newTestRawNode(2, [1, 2, 3]);
  const app = (index: number, logTerm: number, entries: Entry[]): Message =>
    newMessage({ type: "MsgApp", from: 1, to: 2, term: 2, index, logTerm, entries, commit: 1 });
  rn.step(app(1, 1, [ent(2, 2), ent(3, 2)]));
  rn.step(app(3, 2, [ent(4, 2)]));
  rn.step(app(1, 1, [ent(2, 2)])); // a late duplicate of an earlier message
  assert.deepEqual(rn.raft.raftLog.allEntries().map((e) => e.index), [2, 3, 4]);
  const resps = readMessages(rn);
  assert.deepEqual(resps.map((m) => [m.reject, m.index]), [[false, 3], [false, 4], [false, 2]]);
});
