// Binary encoding of a ConfChange carried in a confChange log entry:
//   byte 0: version (1) · byte 1: type (0 addNode, 1 addLearner, 2 removeNode)
//   bytes 2..9: node id as a big-endian float64 (ids are safe integers) · rest: context
import type { ConfChange, ConfChangeType } from "./types.ts";
import { RaftError } from "./types.ts";

const TYPES: ConfChangeType[] = ["addNode", "addLearner", "removeNode"];
const HEADER = 10;

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const t = TYPES.indexOf(cc.type);
  if (t < 0) throw new RaftError("InvalidConfChange", `unknown conf change type "${cc.type}"`);
  if (!Number.isSafeInteger(cc.nodeId) || cc.nodeId <= 0) {
    throw new RaftError(
      "InvalidConfChange",
      `conf change node id ${cc.nodeId} is not a positive integer`,
    );
  }
  const ctx = cc.context ?? new Uint8Array();
  const out = new Uint8Array(HEADER + ctx.length);
  out[0] = 1;
  out[1] = t;
  new DataView(out.buffer).setFloat64(2, cc.nodeId);
  out.set(ctx, HEADER);
  return out;
}

export function decodeConfChange(b: Uint8Array): ConfChange {
  if (b.length < HEADER || b[0] !== 1 || b[1] >= TYPES.length) {
    throw new RaftError("InvalidConfChange", "bytes are not an encoded conf change (version 1)");
  }
  const nodeId = new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(2);
  const cc: ConfChange = { type: TYPES[b[1]], nodeId };
  if (b.length > HEADER) cc.context = b.slice(HEADER);
  return cc;
}
