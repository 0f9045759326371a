// The bytes of a Raft snapshot of the store: the member table plus the state machine's own
// snapshot. Layout: "TWS1", u32 big-endian length of the member table JSON, that JSON, then the
// state machine bytes. Empty data (a snapshot that carries nothing) decodes to "no content".
import type { MemberTableData } from "./members.ts";

const MAGIC = [0x54, 0x57, 0x53, 0x31]; // "TWS1"

export interface SnapshotContent {
  members: MemberTableData;
  sm: Uint8Array;
}

export function encodeSnapshotData(c: SnapshotContent): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(c.members));
  const out = new Uint8Array(8 + json.length + c.sm.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, json.length);
  out.set(json, 8);
  out.set(c.sm, 8 + json.length);
  return out;
}

export function decodeSnapshotData(b: Uint8Array): SnapshotContent | undefined {
  if (b.length === 0) return undefined;
  if (b.length < 8 || MAGIC.some((x, i) => b[i] !== x)) {
    throw new Error("store: snapshot data is not a twill store snapshot (bad magic)");
  }
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(4);
  if (8 + n > b.length) throw new Error("store: snapshot data is truncated");
  const members = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))) as MemberTableData;
  return { members, sm: b.slice(8 + n) };
}
