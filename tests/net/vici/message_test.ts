import assert from "node:assert/strict";
import { decodeViciMessage, encodeViciMessage } from "../../../lib/net/vici/message.ts";
import {
  CMD_REQUEST,
  CMD_RESPONSE,
  decodePacket,
  encodePacket,
  EVENT_CONFIRM,
  EVENT_REGISTER,
  FrameReader,
  MAX_PACKET,
} from "../../../lib/net/vici/packet.ts";

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

// The encoding example of strongSwan's vici README, byte for byte.
// deno-fmt-ignore
const README_EXAMPLE = Uint8Array.from([
  3, 4, ...ascii("key1"), 0, 6, ...ascii("value1"),
  1, 8, ...ascii("section1"),
  1, 11, ...ascii("sub-section"),
  3, 4, ...ascii("key2"), 0, 6, ...ascii("value2"),
  2,
  4, 5, ...ascii("list1"),
  5, 0, 5, ...ascii("item1"),
  5, 0, 5, ...ascii("item2"),
  6,
  2,
]);

const README_TREE = {
  key1: "value1",
  section1: { "sub-section": { key2: "value2" }, list1: ["item1", "item2"] },
};

Deno.test("the README's example encodes and decodes byte for byte", () => {
  assert.deepEqual(encodeViciMessage(README_TREE), README_EXAMPLE);
  assert.deepEqual(decodeViciMessage(README_EXAMPLE), README_TREE);
});

Deno.test("values longer than 255 bytes use the 16-bit length; empty lists survive", () => {
  const tree = { data: "x".repeat(300), owners: [] as string[], deep: { a: { b: { c: "d" } } } };
  const bytes = encodeViciMessage(tree);
  assert.deepEqual([...bytes.subarray(0, 8)], [3, 4, ...ascii("data"), 1, 44]);
  assert.deepEqual(decodeViciMessage(bytes), tree);
});

Deno.test("malformed messages are refused with a reason", () => {
  const bad: [number[], RegExp][] = [
    [[1, 1, 0x61], /ends inside a section/],
    [[2], /section end without a section/],
    [[3, 4, ...ascii("key1"), 0, 9, 0x61], /truncated in a value/],
    [[4, 1, 0x6c, 3, 1, 0x6b, 0, 0], /element 3 inside a list/],
    [[9], /element type 9/],
    [[3, 1, 0x6b, 0, 0, 3, 1, 0x6b, 0, 0], /key "k" repeated/],
    [[...Array(40).fill([1, 1, 0x73]).flat()], /nested deeper than 32/],
  ];
  for (const [bytes, re] of bad) {
    assert.throws(() => decodeViciMessage(Uint8Array.from(bytes)), re);
  }
  assert.throws(() => encodeViciMessage({ ["k".repeat(256)]: "v" }), /must be 1-255 bytes/);
  assert.throws(() => encodeViciMessage({ k: "v".repeat(65536) }), /value over 65535/);
});

Deno.test("named packets carry their name; framing is a 32-bit big-endian length", () => {
  const req = encodePacket({ type: CMD_REQUEST, name: "version", message: {} });
  assert.deepEqual([...req], [0, 0, 0, 9, CMD_REQUEST, 7, ...ascii("version")]);
  const reg = encodePacket({ type: EVENT_REGISTER, name: "list-sa" });
  assert.deepEqual([...reg], [0, 0, 0, 9, EVENT_REGISTER, 7, ...ascii("list-sa")]);
  const resp = encodePacket({ type: CMD_RESPONSE, message: { success: "yes" } });
  assert.deepEqual(decodePacket(resp.subarray(4)), {
    type: CMD_RESPONSE,
    name: undefined,
    message: { success: "yes" },
  });
  assert.deepEqual(decodePacket(Uint8Array.of(EVENT_CONFIRM)), {
    type: EVENT_CONFIRM,
    name: undefined,
    message: undefined,
  });
});

Deno.test("the frame reader reassembles split packets and refuses absurd lengths", () => {
  const a = encodePacket({ type: CMD_RESPONSE, message: { a: "1" } });
  const b = encodePacket({ type: CMD_RESPONSE, message: { b: "2" } });
  const stream = new Uint8Array([...a, ...b]);
  const r = new FrameReader();
  const got: Uint8Array[] = [];
  for (let i = 0; i < stream.length; i += 3) got.push(...r.push(stream.subarray(i, i + 3)));
  assert.deepEqual(got.map((g) => decodePacket(g).message), [{ a: "1" }, { b: "2" }]);
  const huge = new Uint8Array(4);
  new DataView(huge.buffer).setUint32(0, MAX_PACKET + 1);
  assert.throws(() => new FrameReader().push(huge), /frame length 524289 outside/);
  assert.throws(() => new FrameReader().push(new Uint8Array(4)), /frame length 0 outside/);
});
