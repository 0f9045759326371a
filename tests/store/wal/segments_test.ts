// Behaviour across segment boundaries: overwrites that reach back into older segments, a torn
// tail only in the newest segment, damage at the end of an older segment.
import assert from "node:assert/strict";
import { join } from "node:path";
import { DurableStorage } from "../../../lib/store/wal/durable_storage.ts";
import { WalCorruptError } from "../../../lib/store/wal/errors.ts";
import { scanRecords } from "../../../lib/store/wal/record.ts";
import type { Entry } from "../../../lib/raft/types.ts";
import { ent, ents, tempDir, warnings } from "./helpers.ts";

function allEntries(s: DurableStorage): Entry[] {
  return s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity);
}

Deno.test("an overwrite in a newer segment truncates entries written in older ones", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir, { segmentBytes: 300 });
    for (let i = 1; i <= 30; i++) await a.save({ entries: [ent(i, 1)] });
    const segs = a.segmentPaths().length;
    assert.ok(segs >= 4, `got ${segs} segments`);
    await a.save({ entries: ents(12, 14, 2), hardState: { term: 2, vote: 2, commit: 11 } });
    for (let i = 15; i <= 40; i++) await a.save({ entries: [ent(i, 2)] });
    const expected = [...ents(1, 11, 1), ...ents(12, 40, 2)];
    assert.deepEqual(allEntries(a), expected);
    await a.close();
    const b = await DurableStorage.open(dir, { segmentBytes: 300 });
    assert.deepEqual(allEntries(b), expected);
    assert.deepEqual(b.hardState(), { term: 2, vote: 2, commit: 11 });
    await b.close();
  } finally {
    await cleanup();
  }
});

Deno.test("damage at the end of an older segment is refused, a torn end of the newest is cut", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir, { segmentBytes: 300 });
    for (let i = 1; i <= 20; i++) await a.save({ entries: [ent(i, 1)] });
    const segs = a.segmentPaths();
    await a.close();
    // The newest segment's last record, half written: cut with a warning.
    const newest = segs[segs.length - 1];
    const size = (await Deno.stat(newest)).size;
    await Deno.truncate(newest, size - 3);
    const w = warnings();
    const b = await DurableStorage.open(dir, { segmentBytes: 300, warn: w.warn });
    assert.equal(b.lastIndex(), 19);
    assert.equal(w.lines.length, 1);
    await b.close();
    // An older segment's last record cut short: not a crash artefact, refused.
    const older = segs[0];
    const data = await Deno.readFile(older);
    const last = scanRecords(data).records.at(-1)!;
    await Deno.truncate(older, data.length - 2);
    await assert.rejects(
      () => DurableStorage.open(dir, { segmentBytes: 300 }),
      (e: Error) => {
        assert.ok(e instanceof WalCorruptError);
        assert.equal(e.path, older);
        assert.equal(e.offset, last.offset);
        return true;
      },
    );
  } finally {
    await cleanup();
  }
});

Deno.test("a log whose older part was dropped for snapshots that are now gone is refused", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir, { segmentBytes: 300 });
    for (let i = 1; i <= 40; i++) await a.save({ entries: [ent(i, 1)] });
    const cs = { voters: [1], learners: [] };
    await a.createSnapshot(20, cs, new Uint8Array([1]));
    await a.createSnapshot(30, cs, new Uint8Array([2]));
    const start = Number.parseInt(a.segmentPaths()[0].split("/").pop()!, 16);
    assert.ok(start > 1, "old segments were deleted");
    await a.close();
    for (const e of Deno.readDirSync(join(dir, "snap"))) {
      await Deno.remove(join(dir, "snap", e.name));
    }
    await assert.rejects(
      () => DurableStorage.open(dir),
      /wal: the log begins after index \d+ but the newest readable snapshot is at index 0, so entries 1\.\.\d+ are missing \(.*wal\); refusing to start/,
    );
  } finally {
    await cleanup();
  }
});
