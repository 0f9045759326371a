import assert from "node:assert/strict";
import { join } from "node:path";
import { DurableStorage } from "../../../lib/store/wal/durable_storage.ts";
import { WalCorruptError, WalInconsistentError } from "../../../lib/store/wal/errors.ts";
import { scanRecords } from "../../../lib/store/wal/record.ts";
import type { Entry, Snapshot } from "../../../lib/raft/types.ts";
import { copyDir, ent, ents, tempDir, warnings } from "./helpers.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function allEntries(s: DurableStorage): Entry[] {
  if (s.lastIndex() < s.firstIndex()) return [];
  return s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity);
}

Deno.test("entries, hard state and metadata survive a restart", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir);
    await a.setMetadata({ nodeId: 7, clusterId: "c1" });
    await a.save({ entries: ents(1, 3, 1), hardState: { term: 1, vote: 7, commit: 0 } });
    await a.save({ entries: ents(4, 5, 1), hardState: { term: 2, vote: 3, commit: 4 } });
    await a.close();

    const b = await DurableStorage.open(dir);
    assert.deepEqual(b.initialState().hardState, { term: 2, vote: 3, commit: 4 });
    assert.deepEqual(allEntries(b), ents(1, 5, 1));
    assert.deepEqual(b.metadata(), { nodeId: 7, clusterId: "c1" });
    assert.equal(b.firstIndex(), 1);
    assert.equal(b.term(0), 0);
    await b.close();
  } finally {
    await cleanup();
  }
});

Deno.test("a later entry at an existing index overwrites the conflicting suffix", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir);
    await a.save({ entries: ents(1, 6, 1), hardState: { term: 1, vote: 1, commit: 2 } });
    await a.save({ entries: [ent(4, 2), ent(5, 2)], hardState: { term: 2, vote: 0, commit: 2 } });
    assert.deepEqual(allEntries(a), [...ents(1, 3, 1), ent(4, 2), ent(5, 2)]);
    await a.close();
    const b = await DurableStorage.open(dir);
    assert.deepEqual(allEntries(b), [...ents(1, 3, 1), ent(4, 2), ent(5, 2)]);
    await b.close();
  } finally {
    await cleanup();
  }
});

Deno.test("a crash inside the last write loses only that write, with a warning", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir);
    await a.save({ entries: ents(1, 4, 1), hardState: { term: 1, vote: 1, commit: 3 } });
    const [seg] = a.segmentPaths();
    const before = (await Deno.stat(seg)).size;
    await a.save({ entries: [ent(5, 1, "the last record")] });
    const after = (await Deno.stat(seg)).size;
    await a.close();
    assert.ok(after - before > 20);

    for (let cut = before; cut < after; cut++) {
      const copy = join(dir, `cut-${cut}`);
      await copyDir(join(dir, "wal"), join(copy, "wal"));
      await Deno.truncate(join(copy, "wal", seg.split("/").pop()!), cut);
      const w = warnings();
      const b = await DurableStorage.open(copy, { warn: w.warn });
      assert.deepEqual(allEntries(b), ents(1, 4, 1), `cut at ${cut}`);
      assert.deepEqual(b.hardState(), { term: 1, vote: 1, commit: 3 });
      if (cut === before) assert.deepEqual(w.lines, []);
      else {
        assert.equal(w.lines.length, 1, `cut at ${cut}`);
        assert.match(w.lines[0], new RegExp(`torn record at the end of .* at offset ${before}`));
      }
      // The member keeps working after the cut: the next write lands where the torn one was.
      await b.save({ entries: [ent(5, 2)] });
      await b.close();
      const c = await DurableStorage.open(copy, { warn: w.warn });
      assert.deepEqual(allEntries(c), [...ents(1, 4, 1), ent(5, 2)]);
      await c.close();
      await Deno.remove(copy, { recursive: true });
    }
  } finally {
    await cleanup();
  }
});

Deno.test("a byte flipped mid-log refuses to start, naming the file and offset", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir);
    for (let i = 1; i <= 10; i++) {
      await a.save({ entries: [ent(i, 1)], hardState: { term: 1, vote: 1, commit: i - 1 } });
    }
    const [seg] = a.segmentPaths();
    await a.close();
    const data = await Deno.readFile(seg);
    const recs = scanRecords(data).records;
    const victim = recs[Math.floor(recs.length / 2)];
    data[victim.offset + 20] ^= 0x01;
    await Deno.writeFile(seg, data);
    await assert.rejects(
      () => DurableStorage.open(dir),
      (e: Error) => {
        assert.ok(e instanceof WalCorruptError);
        assert.equal(
          e.message,
          `wal: corrupt record in ${seg} at offset ${victim.offset} (crc mismatch); ` +
            "refusing to start — restore this member from a snapshot or remove it and re-join",
        );
        return true;
      },
    );
  } finally {
    await cleanup();
  }
});

Deno.test("snapshots let whole old segments be deleted, and a restart resumes from them", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir, { segmentBytes: 512 });
    await a.setMetadata({ nodeId: 1, clusterId: "x" });
    for (let i = 1; i <= 100; i++) {
      await a.save({ entries: [ent(i, 1)], hardState: { term: 1, vote: 1, commit: i } });
    }
    const segsBefore = a.segmentPaths().length;
    assert.ok(segsBefore > 10, `expected many segments, got ${segsBefore}`);
    const cs = { voters: [1, 2, 3], learners: [] };
    await a.createSnapshot(40, cs, bytes("state@40"));
    await a.compact(40);
    // One snapshot: nothing older than it may go while it is the only fallback.
    const afterFirst = a.segmentPaths().length;
    assert.ok(afterFirst < segsBefore);
    await a.createSnapshot(90, cs, bytes("state@90"));
    await a.compact(85);
    await a.createSnapshot(95, cs, bytes("state@95"));
    // Kept snapshots are 95 and 90: every segment wholly at or below 90 is gone.
    const snapFiles = [...Deno.readDirSync(join(dir, "snap"))].map((e) => e.name).sort();
    assert.deepEqual(snapFiles, [
      "000000000000005a-0000000000000001.snap",
      "000000000000005f-0000000000000001.snap",
    ]);
    const remaining = a.segmentPaths();
    assert.ok(remaining.length < afterFirst);
    assert.equal(a.stats().segments, remaining.length);
    await a.close();

    const b = await DurableStorage.open(dir, { segmentBytes: 512 });
    assert.equal(text(b.snapshot().data), "state@95");
    assert.deepEqual(b.snapshot().metadata, { index: 95, term: 1, confState: cs });
    assert.deepEqual(b.initialState().confState, cs);
    assert.equal(b.firstIndex(), 96);
    assert.deepEqual(allEntries(b), ents(96, 100, 1));
    assert.deepEqual(b.hardState(), { term: 1, vote: 1, commit: 100 });
    assert.deepEqual(b.metadata(), { nodeId: 1, clusterId: "x" });
    await b.close();
  } finally {
    await cleanup();
  }
});

Deno.test("a snapshot received from the leader replaces the log across a restart", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir);
    await a.save({ entries: ents(1, 20, 1), hardState: { term: 1, vote: 1, commit: 5 } });
    const snap: Snapshot = {
      data: bytes("leader state@10"),
      metadata: { index: 10, term: 3, confState: { voters: [1, 2], learners: [4] } },
    };
    await a.save({ snapshot: snap, entries: [], hardState: { term: 3, vote: 0, commit: 10 } });
    assert.equal(a.lastIndex(), 10);
    await a.save({ entries: ents(11, 12, 3), hardState: { term: 3, vote: 0, commit: 12 } });
    await a.close();

    const b = await DurableStorage.open(dir);
    assert.deepEqual(b.snapshot().metadata, snap.metadata);
    assert.equal(text(b.snapshot().data), "leader state@10");
    assert.deepEqual(allEntries(b), ents(11, 12, 3)); // the stale 11..20 of term 1 are gone
    assert.deepEqual(b.hardState(), { term: 3, vote: 0, commit: 12 });
    assert.deepEqual(b.initialState().confState, { voters: [1, 2], learners: [4] });
    await b.close();
  } finally {
    await cleanup();
  }
});

Deno.test("a damaged newest snapshot falls back to the older one plus the log", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir, { segmentBytes: 256 });
    for (let i = 1; i <= 30; i++) {
      await a.save({ entries: [ent(i, 2)], hardState: { term: 2, vote: 1, commit: i } });
    }
    const cs = { voters: [1], learners: [] };
    await a.createSnapshot(10, cs, bytes("s10"));
    await a.createSnapshot(20, cs, bytes("s20"));
    await a.close();
    const newest = join(dir, "snap", "0000000000000014-0000000000000002.snap");
    const data = await Deno.readFile(newest);
    data[data.length - 10] ^= 0xff;
    await Deno.writeFile(newest, data);
    const w = warnings();
    const b = await DurableStorage.open(dir, { warn: w.warn });
    assert.equal(text(b.snapshot().data), "s10");
    assert.deepEqual(allEntries(b), ents(11, 30, 2));
    assert.equal(w.lines.length, 1);
    assert.match(
      w.lines[0],
      /skipping damaged snapshot .*0014-0000000000000002\.snap \(snapshot crc/,
    );
    await b.close();
  } finally {
    await cleanup();
  }
});

Deno.test("a missing segment or a missing log is refused, not half-loaded", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir, { segmentBytes: 200 });
    for (let i = 1; i <= 20; i++) await a.save({ entries: [ent(i, 1)] });
    const segs = a.segmentPaths();
    await a.createSnapshot(5, { voters: [1], learners: [] }, bytes("s5"));
    await a.close();
    assert.ok(segs.length >= 3);
    await Deno.remove(segs[Math.floor(segs.length / 2)]);
    await assert.rejects(() => DurableStorage.open(dir), WalInconsistentError);
    await Deno.remove(join(dir, "wal"), { recursive: true });
    await assert.rejects(
      () => DurableStorage.open(dir),
      /wal: snapshots exist in .*snap but the log is missing \(.*wal\); refusing to start/,
    );
  } finally {
    await cleanup();
  }
});

Deno.test("save persists in one write and one fsync per Ready; a gap is refused before writing", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir);
    const s0 = a.stats();
    await a.save({ entries: ents(1, 50, 1), hardState: { term: 1, vote: 1, commit: 0 } });
    await a.save({ entries: ents(51, 60, 1), mustSync: false });
    const s1 = a.stats();
    assert.equal(s1.writes - s0.writes, 2);
    assert.equal(s1.syncs - s0.syncs, 1);
    await assert.rejects(() => a.save({ entries: [ent(70, 1)] }), /entries start at 70/);
    await a.save({ entries: [ent(61, 1)] }); // still usable after a refused request
    assert.equal(a.lastIndex(), 61);
    await a.close();
  } finally {
    await cleanup();
  }
});

Deno.test("a commit-only hard state costs no disk write; it is written ahead of the next write and at close", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const src = join(dir, "src");
    const a = await DurableStorage.open(src);
    await a.save({ entries: ents(1, 5, 1), hardState: { term: 1, vote: 1, commit: 0 } });
    const s0 = a.stats();
    await a.save({ entries: [], hardState: { term: 1, vote: 1, commit: 3 }, mustSync: false });
    assert.equal(a.stats().writes, s0.writes, "commit-only save wrote to disk");
    assert.deepEqual(a.hardState(), { term: 1, vote: 1, commit: 3 });
    // A crash now loses the commit index (Raft allows it) but nothing else.
    const crashed = join(dir, "crashed");
    await copyDir(src, crashed);
    const c = await DurableStorage.open(crashed);
    assert.deepEqual(c.hardState(), { term: 1, vote: 1, commit: 0 });
    assert.deepEqual(allEntries(c), ents(1, 5, 1));
    await c.close();
    // The next write carries it, ahead of its own records.
    await a.save({ entries: ents(6, 6, 1) });
    assert.equal(a.stats().writes, s0.writes + 1);
    const mid = join(dir, "mid");
    await copyDir(src, mid);
    const m = await DurableStorage.open(mid);
    assert.deepEqual(m.hardState(), { term: 1, vote: 1, commit: 3 });
    assert.deepEqual(allEntries(m), ents(1, 6, 1));
    await m.close();
    // A deferred one with nothing after it is written at close.
    await a.save({ entries: [], hardState: { term: 1, vote: 1, commit: 6 }, mustSync: false });
    await a.close();
    const b = await DurableStorage.open(src);
    assert.deepEqual(b.hardState(), { term: 1, vote: 1, commit: 6 });
    await b.close();
  } finally {
    await cleanup();
  }
});

Deno.test("saves made while a write runs complete in order and share one write and one fsync", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir);
    await a.save({ entries: ents(1, 5, 1), hardState: { term: 1, vote: 1, commit: 0 } });
    const s0 = a.stats();
    const done: number[] = [];
    // What asynchronous Raft writes do: the next Ready is saved before the previous one is durable.
    const first = a.save({ entries: ents(6, 8, 1) }).then(() => done.push(1));
    const queued = [
      a.save({ entries: ents(9, 10, 1), hardState: { term: 1, vote: 1, commit: 6 } }),
      a.save({ entries: [], hardState: { term: 1, vote: 1, commit: 8 }, mustSync: false }),
      // A new leader's entries replace 10 while the saves before are still queued.
      a.save({ entries: [ent(10, 2)], hardState: { term: 2, vote: 0, commit: 9 } }),
    ].map((p, i) => p.then(() => done.push(i + 2)));
    await Promise.all([first, ...queued]);
    assert.deepEqual(done, [1, 2, 3, 4]);
    const s1 = a.stats();
    // The first save's write may already be running when the others arrive, or not yet.
    assert.ok(s1.writes - s0.writes <= 2, `${s1.writes - s0.writes} writes for 4 saves`);
    assert.ok(s1.syncs - s0.syncs <= 2, `${s1.syncs - s0.syncs} fsyncs for 4 saves`);
    assert.deepEqual(a.hardState(), { term: 2, vote: 0, commit: 9 });
    await a.close();
    const b = await DurableStorage.open(dir);
    assert.deepEqual(b.hardState(), { term: 2, vote: 0, commit: 9 });
    assert.deepEqual(allEntries(b), [...ents(1, 9, 1), ent(10, 2)]);
    await b.close();
  } finally {
    await cleanup();
  }
});
