// The on-disk record framing of the write-ahead log. Pure: bytes in, records out.
//
// A record is a 16-byte header followed by its payload:
//
//   0  u32 LE  payload length
//   4  u8      record type
//   5  3 bytes zero
//   8  u32 LE  crc32 of bytes 0..8 (so a damaged length is detected before it is trusted)
//   12 u32 LE  crc32 of the payload
//   16 payload
//
// Scanning a segment ends in one of three ways: clean (the last record ends at the end of the
// file), torn (the file ends inside a record, the last record has a sector that reads as zeros,
// or the rest of the file is zeros — what an interrupted append leaves), or corrupt (a complete
// record that fails its checksum, or damage followed by more data — never the result of a crash,
// always refused).
import { crc32 } from "node:zlib";

export const HEADER_BYTES = 16;
/** No record may be larger than this; a bigger length is damage, not data. */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

export const RecordType = {
  segmentHeader: 1,
  entry: 2,
  hardState: 3,
  snapshotReset: 4,
  metadata: 5,
} as const;
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];
const KNOWN_TYPES = new Set<number>(Object.values(RecordType));

export interface WalRecord {
  /** Byte offset of the record's header within its segment. */
  offset: number;
  type: RecordTypeCode;
  payload: Uint8Array;
}

export type ScanEnd =
  | { kind: "clean" }
  | { kind: "torn"; offset: number; reason: string }
  | { kind: "corrupt"; offset: number; reason: string };

export interface ScanResult {
  records: WalRecord[];
  end: ScanEnd;
}

function checksum(bytes: Uint8Array): number {
  return crc32(bytes) >>> 0;
}

/** Frame one record. */
export function encodeRecord(type: RecordTypeCode, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length, true);
  out[4] = type;
  view.setUint32(8, checksum(out.subarray(0, 8)), true);
  view.setUint32(12, checksum(payload), true);
  out.set(payload, HEADER_BYTES);
  return out;
}

function allZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

/** Sector size for telling a torn append from damage: a crash leaves whole sectors unwritten. */
export const SECTOR_BYTES = 512;

/**
 * A record [at, end) that is all there but fails its payload checksum. If it is the last one
 * (nothing but zeros after it) and one of the sectors it covers reads as zeros, the append was
 * interrupted before that sector reached the disk: torn. Otherwise the bytes were written whole
 * and changed since — corruption, even at the end of the file (dropping it could lose a synced
 * vote).
 */
function crcMismatch(bytes: Uint8Array, at: number, end: number): ScanEnd {
  const last = end === bytes.length || allZero(bytes.subarray(end));
  if (!last) return { kind: "corrupt", offset: at, reason: "crc mismatch" };
  const payloadStart = at + HEADER_BYTES;
  for (let s = payloadStart; s < end; s = (Math.floor(s / SECTOR_BYTES) + 1) * SECTOR_BYTES) {
    const sectorEnd = Math.min(end, (Math.floor(s / SECTOR_BYTES) + 1) * SECTOR_BYTES);
    if (allZero(bytes.subarray(s, sectorEnd))) {
      const sector = Math.floor(s / SECTOR_BYTES) * SECTOR_BYTES;
      return {
        kind: "torn",
        offset: at,
        reason: `the last record's sector at ${sector} was never written`,
      };
    }
  }
  return { kind: "corrupt", offset: at, reason: "crc mismatch in the last record" };
}

/** Split a segment's bytes into records, stopping at the first damaged one. */
export function scanRecords(bytes: Uint8Array): ScanResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: WalRecord[] = [];
  let at = 0;
  while (at < bytes.length) {
    const left = bytes.length - at;
    if (left < HEADER_BYTES) {
      return { records, end: { kind: "torn", offset: at, reason: "file ends inside a header" } };
    }
    const headerCrc = view.getUint32(at + 8, true);
    if (checksum(bytes.subarray(at, at + 8)) !== headerCrc) {
      if (allZero(bytes.subarray(at))) {
        return { records, end: { kind: "torn", offset: at, reason: "zero-filled tail" } };
      }
      // A header that straddles a sector boundary, with nothing but zeros from that boundary on:
      // its first sector reached the disk, the next one never did.
      const boundary = (Math.floor(at / SECTOR_BYTES) + 1) * SECTOR_BYTES;
      if (boundary < at + HEADER_BYTES && allZero(bytes.subarray(boundary))) {
        return {
          records,
          end: {
            kind: "torn",
            offset: at,
            reason: `the last record's sector at ${boundary} was never written`,
          },
        };
      }
      return { records, end: { kind: "corrupt", offset: at, reason: "header crc mismatch" } };
    }
    const length = view.getUint32(at, true);
    const type = bytes[at + 4];
    if (
      bytes[at + 5] !== 0 || bytes[at + 6] !== 0 || bytes[at + 7] !== 0 || !KNOWN_TYPES.has(type)
    ) {
      return {
        records,
        end: { kind: "corrupt", offset: at, reason: `unknown record type ${type}` },
      };
    }
    if (length > MAX_RECORD_BYTES) {
      return { records, end: { kind: "corrupt", offset: at, reason: `record length ${length}` } };
    }
    const end = at + HEADER_BYTES + length;
    if (end > bytes.length) {
      return { records, end: { kind: "torn", offset: at, reason: "file ends inside a record" } };
    }
    const payload = bytes.subarray(at + HEADER_BYTES, end);
    if (checksum(payload) !== view.getUint32(at + 12, true)) {
      return { records, end: crcMismatch(bytes, at, end) };
    }
    records.push({ offset: at, type: type as RecordTypeCode, payload });
    at = end;
  }
  return { records, end: { kind: "clean" } };
}
