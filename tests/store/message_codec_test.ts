// Peer messages are checked field by field where they enter: everything the Raft core would trip
// over is refused by the decoder, before it can reach a member's Raft.
import assert from "node:assert/strict";
import { decodeMessage, type WireMessage } from "../../lib/store/member/message_codec.ts";
import { encodeConfChange } from "../../lib/raft/confchange_codec.ts";
import { Buffer } from "node:buffer";

const base = { to: 2, from: 1, term: 3, logTerm: 3, index: 10, commit: 9 };
const w = (o: Record<string, unknown>) => ({ ...base, ...o }) as unknown as WireMessage;
const cc = Buffer.from(encodeConfChange({ type: "addNode", nodeId: 4 })).toString("base64");

Deno.test("well-formed messages of every shape decode", () => {
  decodeMessage(w({ type: "MsgProp", term: 0, e: [{ t: 0, i: 0, d: "AAE=" }] }));
  decodeMessage(w({ type: "MsgApp", e: [{ t: 3, i: 11 }, { t: 3, i: 12, c: 1, d: cc }] }));
  decodeMessage(w({ type: "MsgReadIndex", term: 0, e: [{ t: 0, i: 0, d: "eA==" }] }));
  decodeMessage(w({ type: "MsgHeartbeat", ctx: "eA==" }));
  decodeMessage(w({
    type: "MsgSnap",
    snap: { d: "", i: 20, t: 3, v: [1, 2, 3], l: [4] },
  }));
});

Deno.test("messages the core would trip over are refused by the decoder", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ type: "MsgProp", term: 0, e: [] }, /without entries/],
    [{ type: "MsgProp", term: 0 }, /without entries/],
    [{ type: "MsgProp", e: [{ t: 0, i: 0 }] }, /carries a term/],
    [{ type: "MsgReadIndex", term: 0, e: [] }, /needs one entry/],
    [{ type: "MsgReadIndexResp", e: [{ t: 0, i: 0 }, { t: 0, i: 0 }] }, /needs one entry/],
    [{ type: "MsgHeartbeat", e: [{ t: 3, i: 11 }] }, /does not carry entries/],
    [{ type: "MsgApp", e: [{ t: 3, i: 11 }, { t: 3, i: 13 }] }, /not consecutive/],
    [{ type: "MsgApp", e: [{ t: 2, i: 11 }] }, /terms out of order/],
    [{ type: "MsgApp", e: [{ t: 9, i: 11 }] }, /terms out of order/],
    [{ type: "MsgApp", e: [{ t: 3, i: 11, c: 1, d: "AAAA" }] }, /conf-change entry 11/],
    [{ type: "MsgApp", e: [{ t: 3, i: 11, d: "%%%=" }] }, /not base64/],
    [{ type: "MsgApp", e: [{ t: 3.5, i: 11 }] }, /entry term is not a count/],
    [{ type: "MsgApp", e: "x" }, /not a list/],
    [{ type: "MsgHeartbeat", commit: -1 }, /commit is not a count/],
    [{ type: "MsgHeartbeat", term: "3" }, /term is not a count/],
    [{ type: "MsgHeartbeat", from: 0 }, /without sender/],
    [{ type: "MsgHeartbeat", hint: 1.5 }, /hint is not a count/],
    [{ type: "MsgHeartbeat", reject: true }, /reject must be 1/],
    [{ type: "MsgHeartbeat", ctx: 7 }, /ctx is not base64/],
    [{ type: "MsgSnap" }, /without a snapshot/],
    [{ type: "MsgApp", snap: { d: "", i: 1, t: 1, v: [1], l: [] } }, /does not carry a snapshot/],
    [{ type: "MsgSnap", snap: { d: "", i: 0, t: 1, v: [1], l: [] } }, /must be positive/],
    [{ type: "MsgSnap", snap: { d: "", i: 5, t: 1, v: [], l: [] } }, /no voter/],
    [{ type: "MsgSnap", snap: { d: "", i: 5, t: 1, v: [1, 1], l: [] } }, /twice/],
    [{ type: "MsgSnap", snap: { d: "", i: 5, t: 1, v: [1], l: [1] } }, /both voter and learner/],
    [{ type: "MsgSnap", snap: { d: "", i: 5, t: 1, v: [0], l: [] } }, /bad id/],
    [{ type: "MsgSnap", snap: { d: "", i: 5, t: 1, v: "1", l: [] } }, /not a list of ids/],
    [{ type: "MsgHup" }, /not a Raft network message/],
  ];
  for (const [o, re] of bad) {
    assert.throws(() => decodeMessage(w(o)), re, JSON.stringify(o));
  }
});
