// Property: wherever a crash cuts the log file, the member restarts (never refuses) with exactly
// the state the log's complete records describe: every earlier save, plus the records of the
// interrupted save that reached the disk whole (entries first, hard state last), and a warning
// when a record was cut.
import assert from "node:assert/strict";
import { join } from "node:path";
import { DurableStorage } from "../../../lib/store/wal/durable_storage.ts";
import type { Entry, HardState } from "../../../lib/raft/types.ts";
import { ent, tempDir, warnings } from "./helpers.ts";

interface Expected {
  size: number;
  entries: Entry[];
  hardState: HardState;
  /** The save that led here. */
  batch: Entry[];
  hs?: HardState;
}

const RECORD_HEADER = 16;
const entryRecordBytes = (e: Entry) => RECORD_HEADER + 17 + e.data.length;
const HARD_STATE_RECORD_BYTES = RECORD_HEADER + 24;

/** The state after `prev` and the first `records` records of the save that led to `next`. */
function partial(prev: Expected, next: Expected, records: number): Entry[] {
  const got = next.batch.slice(0, records);
  if (got.length === 0) return prev.entries;
  return [...prev.entries.slice(0, got[0].index - 1), ...got];
}

function lcg(seed: number) {
  let s = seed;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

Deno.test("a log cut at any byte restarts with exactly its complete records", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const src = join(dir, "src");
    const a = await DurableStorage.open(src);
    const [seg] = a.segmentPaths();
    const rand = lcg(42);
    const history: Expected[] = [{
      size: (await Deno.stat(seg)).size,
      entries: [],
      hardState: { term: 0, vote: 0, commit: 0 },
      batch: [],
    }];
    let term = 1;
    let commit = 0;
    for (let k = 0; k < 40; k++) {
      const last = a.lastIndex();
      // Sometimes a new leader overwrites an uncommitted suffix, sometimes we just append.
      const from = rand(4) === 0 && last > commit ? commit + 1 + rand(last - commit) : last + 1;
      if (from <= last) term++;
      const n = 1 + rand(3);
      const batch = Array.from({ length: n }, (_, j) => ent(from + j, term, `k${k}j${j}`));
      commit = Math.min(from + n - 1, commit + rand(3));
      const hs = rand(2) === 0 ? { term, vote: 1 + rand(3), commit } : undefined;
      await a.save({ entries: batch, hardState: hs });
      history.push({
        size: (await Deno.stat(seg)).size,
        entries: a.entries(1, a.lastIndex() + 1, Infinity),
        hardState: a.hardState(),
        batch,
        hs,
      });
    }
    await a.close();
    const bytes = await Deno.readFile(seg);
    const name = seg.split("/").pop()!;

    const trial = join(dir, "trial");
    await Deno.mkdir(join(trial, "wal"), { recursive: true });
    await Deno.mkdir(join(trial, "snap"));
    let cuts = 0;
    for (let h = 1; h < history.length; h++) {
      const prev = history[h - 1];
      const next = history[h];
      const ends: number[] = []; // where each record of save h ends
      let at = prev.size;
      for (const e of next.batch) ends.push(at += entryRecordBytes(e));
      if (next.hs) ends.push(at += HARD_STATE_RECORD_BYTES);
      assert.equal(at, next.size);
      for (let cut = prev.size; cut < next.size; cut += 1 + (cut % 5)) {
        const whole = ends.filter((end) => end <= cut).length;
        const onBoundary = cut === prev.size || ends.includes(cut);
        await Deno.writeFile(join(trial, "wal", name), bytes.subarray(0, cut));
        const w = warnings();
        const b = await DurableStorage.open(trial, { warn: w.warn });
        const got = b.lastIndex() > 0 ? b.entries(1, b.lastIndex() + 1, Infinity) : [];
        assert.deepEqual(got, partial(prev, next, whole), `cut at ${cut}`);
        assert.deepEqual(b.hardState(), prev.hardState, `cut at ${cut}`);
        assert.equal(w.lines.length, onBoundary ? 0 : 1, `cut at ${cut}`);
        await b.close();
        cuts++;
      }
    }
    assert.ok(cuts > 200, `only ${cuts} cuts tried`);
  } finally {
    await cleanup();
  }
});
