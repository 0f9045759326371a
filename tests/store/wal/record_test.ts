import assert from "node:assert/strict";
import { concatBytes } from "../../../lib/bytes.ts";
import {
  encodeRecord,
  HEADER_BYTES,
  RecordType,
  scanRecords,
} from "../../../lib/store/wal/record.ts";

const payload = (n: number, fill: number) => new Uint8Array(n).fill(fill);

function threeRecords() {
  const recs = [
    encodeRecord(RecordType.segmentHeader, payload(10, 1)),
    encodeRecord(RecordType.entry, payload(40, 2)),
    encodeRecord(RecordType.hardState, payload(24, 3)),
  ];
  return { recs, bytes: concatBytes(recs) };
}

Deno.test("records round-trip with their offsets, types and payloads", () => {
  const { recs, bytes } = threeRecords();
  const { records, end } = scanRecords(bytes);
  assert.deepEqual(end, { kind: "clean" });
  assert.deepEqual(records.map((r) => r.offset), [
    0,
    recs[0].length,
    recs[0].length + recs[1].length,
  ]);
  assert.deepEqual(records.map((r) => r.type), [1, 2, 3]);
  assert.deepEqual(records[1].payload, payload(40, 2));
});

Deno.test("a file cut anywhere inside the last record scans as torn at that record", () => {
  const { recs, bytes } = threeRecords();
  const lastStart = bytes.length - recs[2].length;
  for (let cut = lastStart + 1; cut < bytes.length; cut++) {
    const { records, end } = scanRecords(bytes.subarray(0, cut));
    assert.equal(records.length, 2, `cut at ${cut}`);
    assert.equal(end.kind, "torn", `cut at ${cut}`);
    assert.equal((end as { offset: number }).offset, lastStart);
  }
});

Deno.test("a zero-filled tail after the last record is torn, not corrupt", () => {
  const { bytes } = threeRecords();
  const zeros = concatBytes([bytes, new Uint8Array(100)]);
  assert.deepEqual(scanRecords(zeros).end, {
    kind: "torn",
    offset: bytes.length,
    reason: "zero-filled tail",
  });
});

Deno.test("a byte flipped in any earlier record is corruption at that record's offset", () => {
  const { recs, bytes } = threeRecords();
  const starts = [0, recs[0].length, recs[0].length + recs[1].length];
  for (let at = 0; at < starts[2]; at++) {
    const damaged = bytes.slice();
    damaged[at] ^= 0x40;
    const { records, end } = scanRecords(damaged);
    const victim = at < starts[1] ? 0 : 1;
    assert.equal(end.kind, "corrupt", `flip at ${at}`);
    assert.equal((end as { offset: number }).offset, starts[victim], `flip at ${at}`);
    assert.equal(records.length, victim);
  }
  assert.equal(HEADER_BYTES, 16);
});
