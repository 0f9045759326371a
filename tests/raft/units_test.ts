// The building blocks in isolation: quorum arithmetic, in-flight window, progress, storage,
// log, conf change codec and the RawNode Ready/advance contract.
import assert from "node:assert/strict";
import { committedIndex, voteResult } from "../../lib/raft/quorum.ts";
import { Inflights } from "../../lib/raft/inflights.ts";
import { Progress } from "../../lib/raft/progress.ts";
import { MemoryStorage } from "../../lib/raft/memory_storage.ts";
import { RaftLog } from "../../lib/raft/log.ts";
import { decodeConfChange, encodeConfChange } from "../../lib/raft/confchange_codec.ts";
import { bootstrap, bootstrapSnapshot } from "../../lib/raft/bootstrap.ts";
import { RaftError } from "../../lib/raft/types.ts";
import type { Entry } from "../../lib/raft/types.ts";
import { enc, newMessage, newTestRawNode, readMessages } from "./harness.ts";

const ent = (index: number, term: number, size = 0): Entry => ({
  index,
  term,
  type: "normal",
  data: new Uint8Array(size),
});
const isCode = (code: string) => (e: unknown) => e instanceof RaftError && e.code === code;

Deno.test("quorum: committed index is the largest index acknowledged by a majority", () => {
  const acked = (m: Record<number, number>) => (id: number) => m[id];
  assert.equal(committedIndex(new Set([1]), acked({ 1: 5 })), 5);
  assert.equal(committedIndex(new Set([1, 2, 3]), acked({ 1: 5, 2: 3, 3: 1 })), 3);
  assert.equal(committedIndex(new Set([1, 2, 3, 4]), acked({ 1: 5, 2: 3, 3: 1, 4: 4 })), 3);
  assert.equal(committedIndex(new Set([1, 2, 3, 4, 5]), acked({ 1: 9, 2: 9 })), 0);
  assert.equal(committedIndex(new Set(), acked({})), Infinity);
});

Deno.test("quorum: vote results are won, lost or pending", () => {
  const v = (m: Record<number, boolean>) =>
    new Map(Object.entries(m).map(([k, b]) => [Number(k), b]));
  const five = new Set([1, 2, 3, 4, 5]);
  assert.equal(voteResult(five, v({ 1: true, 2: true, 3: true })), "won");
  assert.equal(voteResult(five, v({ 1: true, 2: true, 3: false })), "pending");
  assert.equal(voteResult(five, v({ 1: false, 2: false, 3: false })), "lost");
  assert.equal(
    voteResult(five, v({ 6: true, 7: true, 8: true })),
    "pending",
    "non-voters do not count",
  );
  assert.equal(voteResult(new Set(), v({})), "won");
});

Deno.test("inflights: the window fills, frees up to an index, and frees one on heartbeat", () => {
  const inf = new Inflights(3);
  inf.add(2);
  inf.add(5);
  inf.add(9);
  assert.equal(inf.full(), true);
  assert.throws(() => inf.add(10));
  inf.freeLE(5);
  assert.equal(inf.count(), 1);
  inf.freeFirstOne();
  assert.equal(inf.count(), 0);
});

Deno.test("progress: probe pauses after one append; replicate pipelines; stale rejections are ignored", () => {
  const pr = new Progress(5, 2, false);
  assert.equal(pr.isPaused(), false);
  pr.probeSent = true;
  assert.equal(pr.isPaused(), true);
  assert.equal(pr.maybeDecrTo(3, 3), false, "rejection of an index we did not send is stale");
  assert.equal(pr.maybeDecrTo(4, 2), true);
  assert.equal(pr.next, 3);
  assert.equal(pr.maybeUpdate(4), true);
  pr.becomeReplicate();
  assert.equal(pr.next, 5);
  pr.optimisticUpdate(7);
  pr.inflights.add(7);
  pr.inflights.add(9);
  assert.equal(pr.isPaused(), true);
  assert.equal(pr.maybeDecrTo(3, 3), false, "rejection below match is stale in replicate");
  pr.becomeSnapshot(20);
  assert.equal(pr.isPaused(), true);
  pr.becomeProbe();
  assert.equal(pr.next, 21);
});

Deno.test("MemoryStorage: bootstrap, append with overwrite, entries, term, snapshot and compaction", () => {
  const s = new MemoryStorage();
  assert.equal(s.lastIndex(), 0);
  bootstrap(s, { voters: [1, 2, 3], learners: [] });
  assert.equal(s.firstIndex(), 2);
  assert.equal(s.lastIndex(), 1);
  assert.equal(s.term(1), 1);
  assert.deepEqual(s.initialState().confState, { voters: [1, 2, 3], learners: [] });
  assert.deepEqual(s.initialState().hardState, { term: 1, vote: 0, commit: 1 });
  s.append([ent(2, 1), ent(3, 2), ent(4, 2)]);
  s.append([ent(4, 3), ent(5, 3)]); // overwrite index 4
  assert.deepEqual([2, 3, 4, 5].map((i) => s.term(i)), [1, 2, 3, 3]);
  assert.throws(() => s.append([ent(9, 3)]), /missing log entries/);
  assert.equal(s.entries(2, 6, 1000).length, 4);
  assert.equal(s.entries(2, 6, 0).length, 1, "at least one entry even over the size limit");
  assert.equal(s.entries(2, 6, 16 * 2).length, 2);
  assert.throws(() => s.entries(1, 3, 100), isCode("Compacted"));
  assert.throws(() => s.entries(2, 7, 100), isCode("Unavailable"));
  assert.throws(() => s.term(6), isCode("Unavailable"));
  const snap = s.createSnapshot(3, { voters: [1, 2], learners: [3] }, enc("state"));
  assert.equal(snap.metadata.term, 2);
  s.compact(3);
  assert.equal(s.firstIndex(), 4);
  assert.equal(s.term(3), 2);
  assert.throws(() => s.term(2), isCode("Compacted"));
  assert.throws(() => s.compact(3), isCode("Compacted"));
  assert.throws(() => s.createSnapshot(2, undefined, enc("")), isCode("SnapOutOfDate"));
  assert.deepEqual(s.initialState().confState, { voters: [1, 2], learners: [3] });
  // Appending entries that are partly compacted keeps only the new ones.
  s.append([ent(3, 2), ent(4, 3), ent(5, 3), ent(6, 3)]);
  assert.equal(s.lastIndex(), 6);
  // Installing a newer snapshot replaces the log.
  s.applySnapshot({
    data: enc("x"),
    metadata: { index: 10, term: 4, confState: { voters: [1], learners: [] } },
  });
  assert.equal(s.firstIndex(), 11);
  assert.equal(s.lastIndex(), 10);
  assert.throws(
    () => s.applySnapshot(bootstrapSnapshot({ voters: [1], learners: [] })),
    isCode("SnapOutOfDate"),
  );
});

Deno.test("RaftLog: unstable entries overlay the stable log; truncation replaces a conflicting suffix", () => {
  const s = new MemoryStorage();
  bootstrap(s, { voters: [1], learners: [] });
  s.append([ent(2, 1), ent(3, 1)]);
  const log = new RaftLog(s, Infinity);
  assert.equal(log.committed, 1);
  assert.equal(log.lastIndex(), 3);
  log.append([ent(4, 2), ent(5, 2)]);
  assert.deepEqual(log.unstableEntries().map((e) => e.index), [4, 5]);
  log.append([ent(3, 3)]); // truncates 3.. (3 was stable)
  assert.equal(log.lastIndex(), 3);
  assert.equal(log.term(3), 3);
  assert.deepEqual(log.unstableEntries().map((e) => [e.index, e.term]), [[3, 3]]);
  // Persist, then mark stable.
  s.append(log.unstableEntries());
  log.stableTo(3, 3);
  assert.deepEqual(log.unstableEntries(), []);
  assert.equal(log.term(3), 3);
  // stableTo with a stale term is ignored.
  log.append([ent(4, 4)]);
  log.stableTo(4, 3);
  assert.equal(log.unstableEntries().length, 1);
  assert.equal(log.isUpToDate(4, 4), true);
  assert.equal(log.isUpToDate(3, 4), false);
  assert.equal(log.isUpToDate(1, 5), true);
  assert.equal(log.maybeCommit(4, 3), false, "term mismatch");
  assert.equal(log.maybeCommit(4, 4), true);
  assert.throws(() => log.append([ent(2, 5)]), /below committed/);
});

Deno.test("RaftLog: findConflictByTerm skips entries with a higher term", () => {
  const s = new MemoryStorage();
  bootstrap(s, { voters: [1], learners: [] });
  s.append([ent(2, 1), ent(3, 2), ent(4, 2), ent(5, 5), ent(6, 5)]);
  const log = new RaftLog(s, Infinity);
  assert.deepEqual(log.findConflictByTerm(6, 3), [4, 2]);
  assert.deepEqual(log.findConflictByTerm(6, 5), [6, 5]);
  assert.deepEqual(log.findConflictByTerm(6, 0), [0, 0]);
});

Deno.test("conf change codec round-trips and rejects garbage", () => {
  for (
    const cc of [
      { type: "addNode" as const, nodeId: 7 },
      { type: "addLearner" as const, nodeId: 2 ** 40 + 3, context: enc("10.0.0.1:8473") },
      { type: "removeNode" as const, nodeId: 1 },
    ]
  ) {
    assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
  }
  assert.throws(() => decodeConfChange(enc("{}")), isCode("InvalidConfChange"));
  assert.throws(
    () => encodeConfChange({ type: "addNode", nodeId: 0 }),
    isCode("InvalidConfChange"),
  );
});

Deno.test("RawNode: step refuses local messages and responses from unknown peers", () => {
  const rn = newTestRawNode(1, [1, 2, 3]);
  assert.throws(
    () => rn.step(newMessage({ type: "MsgHup", from: 1, to: 1 })),
    isCode("StepLocalMsg"),
  );
  assert.throws(
    () => rn.step(newMessage({ type: "MsgAppResp", from: 9, to: 1, term: 1 })),
    isCode("StepPeerNotFound"),
  );
  // A non-response from an unknown peer is fine (e.g. a vote request from a new member).
  rn.step(newMessage({ type: "MsgHeartbeat", from: 9, to: 1, term: 2 }));
  assert.equal(rn.raft.lead, 9);
});

Deno.test("RawNode: Ready carries hard state only when it changed and mustSync only for term/vote/entries", () => {
  const s = new MemoryStorage();
  bootstrap(s, { voters: [1, 2, 3], learners: [] });
  const rn = newTestRawNode(1, [1, 2, 3], { storage: s });
  assert.equal(rn.hasReady(), false);
  rn.campaign();
  let rd = rn.ready();
  assert.deepEqual(rd.hardState, { term: 2, vote: 1, commit: 1 });
  assert.equal(rd.mustSync, true);
  assert.equal(rd.softState?.role, "candidate");
  assert.equal(rd.messages.length, 2);
  rn.advance(rd);
  assert.equal(rn.hasReady(), false);
  rn.step(newMessage({ type: "MsgVoteResp", from: 2, to: 1, term: 2 }));
  rd = rn.ready();
  assert.equal(rd.softState?.role, "leader");
  assert.equal(rd.hardState, undefined, "term and vote did not change; commit did not either");
  assert.equal(rd.entries.length, 1, "the leader's empty entry");
  assert.equal(rd.mustSync, true);
  s.append(rd.entries);
  rn.advance(rd);
  rn.step(newMessage({ type: "MsgAppResp", from: 2, to: 1, term: 2, index: 2 }));
  rd = rn.ready();
  assert.deepEqual(rd.hardState, { term: 2, vote: 1, commit: 2 });
  assert.equal(rd.mustSync, false, "a commit-only change need not be synced");
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [2]);
  rn.advance(rd);
  assert.equal(
    rn.status().applied,
    2,
    "advance moves applied to the last committed entry handed out",
  );
  assert.equal(rn.status().progress?.get(2)?.match, 2);
  assert.equal(rn.basicStatus().progress, undefined);
});

Deno.test("RawNode: committed entries in one Ready are bounded by maxCommittedSizePerReady", () => {
  const s = new MemoryStorage();
  bootstrap(s, { voters: [1], learners: [] });
  const rn = newTestRawNode(1, [1], { storage: s, maxCommittedSizePerReady: 100 });
  rn.campaign();
  for (let i = 0; i < 10; i++) rn.propose(new Uint8Array(30));
  const batches: number[] = [];
  while (rn.hasReady()) {
    const rd = rn.ready();
    s.append(rd.entries);
    if (rd.hardState) s.setHardState(rd.hardState);
    if (rd.committedEntries.length > 0) {
      batches.push(rd.committedEntries.length);
      const size = rd.committedEntries.reduce((t, e) => t + e.data.length + 16, 0);
      assert.ok(rd.committedEntries.length === 1 || size <= 100, `batch of ${size} bytes`);
    }
    rn.advance(rd);
  }
  assert.equal(batches.reduce((a, b) => a + b, 0), 11);
  assert.ok(batches.length >= 4);
});

Deno.test("RawNode: single-voter proposals commit without any message", () => {
  const rn = newTestRawNode(1, [1]);
  rn.campaign();
  assert.equal(rn.raft.state, "leader");
  rn.propose(enc("x"));
  assert.equal(rn.raft.raftLog.committed, 3);
  assert.equal(readMessages(rn).length, 0);
});

Deno.test("Config validation gives a clear error", () => {
  assert.throws(
    () => newTestRawNode(1, [1], { electionTick: 1, heartbeatTick: 1 }),
    /electionTick must be greater/,
  );
  assert.throws(() => newTestRawNode(0, [1]), /id must be a positive integer/);
});

Deno.test("restart with config.applied beyond the persisted commit index trusts the application", () => {
  const s = new MemoryStorage();
  bootstrap(s, { voters: [1, 2, 3], learners: [] });
  s.append([ent(2, 2), ent(3, 2)]);
  s.setHardState({ term: 2, vote: 1, commit: 1 });
  const rn = newTestRawNode(1, [1, 2, 3], { storage: s, applied: 3 });
  assert.equal(rn.raft.raftLog.committed, 3);
  assert.equal(rn.status().applied, 3);
  assert.throws(
    () => newTestRawNode(1, [1, 2, 3], { storage: s, applied: 9 }),
    /storage lost entries/,
  );
});

Deno.test("RawNode: stepping between ready() and advance() loses nothing (async persistence)", () => {
  const s = new MemoryStorage();
  bootstrap(s, { voters: [1, 2, 3], learners: [] });
  const rn = newTestRawNode(2, [1, 2, 3], { storage: s });
  const app = (index: number, logTerm: number, term: number, entries: Entry[], commit = 1) =>
    newMessage({ type: "MsgApp", from: 1, to: 2, term, index, logTerm, entries, commit });
  rn.step(app(1, 1, 2, [ent(2, 2), ent(3, 2)]));
  const rd1 = rn.ready();
  assert.deepEqual(rd1.entries.map((e) => [e.index, e.term]), [[2, 2], [3, 2]]);
  // While rd1 is being persisted, a new leader (term 3) replaces index 3 and commits 2.
  rn.step(app(2, 2, 3, [ent(3, 3), ent(4, 3)], 2));
  s.append(rd1.entries);
  if (rd1.hardState) s.setHardState(rd1.hardState);
  rn.advance(rd1);
  const rd2 = rn.ready();
  // The replaced suffix is handed out again (index 2 may be repeated: persisting it twice is harmless).
  assert.deepEqual(rd2.entries.map((e) => [e.index, e.term]).slice(-2), [[3, 3], [4, 3]]);
  assert.deepEqual(rd2.committedEntries.map((e) => e.index), [2]);
  assert.equal(rd2.messages.filter((m) => m.type === "MsgAppResp").length, 1);
  s.append(rd2.entries);
  if (rd2.hardState) s.setHardState(rd2.hardState);
  rn.advance(rd2);
  assert.equal(rn.hasReady(), false);
  assert.deepEqual([3, 4].map((i) => s.term(i)), [3, 3]);
});
