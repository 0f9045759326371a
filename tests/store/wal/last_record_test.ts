// The last record of the newest segment: a record that runs past the end of the file is a torn
// write (cut off, the member starts), a complete record whose checksum is wrong is corruption
// (the member refuses to start, naming the file and offset). A synced hard state (a vote) must
// never be dropped silently, or the member could vote twice in one term.
import assert from "node:assert/strict";
import { concatBytes } from "../../../lib/bytes.ts";
import { DurableStorage } from "../../../lib/store/wal/durable_storage.ts";
import { WalCorruptError } from "../../../lib/store/wal/errors.ts";
import { encodeRecord, RecordType, scanRecords } from "../../../lib/store/wal/record.ts";
import { ent, tempDir, warnings } from "./helpers.ts";

Deno.test("a complete last record with a wrong crc is corruption, not a torn write", () => {
  const recs = [
    encodeRecord(RecordType.segmentHeader, new Uint8Array(10).fill(1)),
    encodeRecord(RecordType.hardState, new Uint8Array(24).fill(3)),
  ];
  const bytes = concatBytes(recs);
  const flipped = bytes.slice();
  flipped[bytes.length - 1] ^= 0x01;
  assert.deepEqual(scanRecords(flipped).end, {
    kind: "corrupt",
    offset: recs[0].length,
    reason: "crc mismatch in the last record",
  });
  // Followed by zeros (a preallocated or extended file): still a complete record, still damage.
  assert.equal(scanRecords(concatBytes([flipped, new Uint8Array(64)])).end.kind, "corrupt");
});

Deno.test("a last record whose unwritten sector reads as zeros is a torn write", () => {
  // A record spanning several 512-byte sectors of which the last never reached the disk: the
  // file length covers it, but that sector is zeros (what a crash during an append leaves).
  const head = encodeRecord(RecordType.segmentHeader, new Uint8Array(10).fill(1));
  const big = encodeRecord(RecordType.entry, new Uint8Array(2000).fill(7));
  const bytes = concatBytes([head, big]);
  bytes.fill(0, 1536);
  assert.deepEqual(scanRecords(bytes).end, {
    kind: "torn",
    offset: head.length,
    reason: "the last record's sector at 1536 was never written",
  });
});

Deno.test("a last record whose header straddles an unwritten sector is a torn write", () => {
  // The first record ends 4 bytes before a sector boundary: the next header's first 4 bytes are
  // in a written sector, the rest (and everything after) in one that never reached the disk.
  const head = encodeRecord(RecordType.segmentHeader, new Uint8Array(512 - 16 - 4).fill(1));
  const next = encodeRecord(RecordType.entry, new Uint8Array(600).fill(7));
  const bytes = concatBytes([head, next]);
  bytes.fill(0, 512);
  assert.deepEqual(scanRecords(bytes).end, {
    kind: "torn",
    offset: head.length,
    reason: "the last record's sector at 512 was never written",
  });
  // The same header damaged with data after it is corruption.
  const damaged = concatBytes([head, next]);
  damaged[head.length + 1] ^= 0x01;
  assert.equal(scanRecords(damaged).end.kind, "corrupt");
});

Deno.test("a synced vote whose record is damaged refuses to start; one cut short is truncated", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const a = await DurableStorage.open(dir);
    await a.save({ entries: [ent(1, 1)], hardState: { term: 1, vote: 1, commit: 1 } });
    await a.save({ entries: [], hardState: { term: 2, vote: 3, commit: 1 }, mustSync: true });
    const [seg] = a.segmentPaths();
    await a.close();
    const data = await Deno.readFile(seg);
    const last = scanRecords(data).records.at(-1)!;
    assert.equal(last.type, RecordType.hardState);

    const damaged = data.slice();
    damaged[data.length - 2] ^= 0x04;
    await Deno.writeFile(seg, damaged);
    await assert.rejects(
      () => DurableStorage.open(dir),
      (e: Error) => {
        assert.ok(e instanceof WalCorruptError);
        assert.equal(
          e.message,
          `wal: corrupt record in ${seg} at offset ${last.offset} (crc mismatch in the last ` +
            "record); refusing to start — restore this member from a snapshot or remove it and " +
            "re-join",
        );
        return true;
      },
    );

    await Deno.writeFile(seg, data.subarray(0, data.length - 3));
    const w = warnings();
    const b = await DurableStorage.open(dir, { warn: w.warn });
    assert.deepEqual(b.hardState(), { term: 1, vote: 1, commit: 1 });
    assert.equal(w.lines.length, 1);
    assert.match(w.lines[0], new RegExp(`torn record at the end of .* at offset ${last.offset}`));
    await b.close();
  } finally {
    await cleanup();
  }
});
