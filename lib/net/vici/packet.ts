// VICI packets and their transport framing (strongSwan's vici README, "Transport protocol" and
// "Packet layer"): each packet is a 32-bit big-endian length, a type byte, a name for the named
// types, then a message. Pure; FrameReader reassembles packets from a byte stream and refuses
// lengths beyond charon's own limit before buffering them.
import { decodeViciMessage, encodeViciMessage, type ViciSection } from "./message.ts";

export const CMD_REQUEST = 0;
export const CMD_RESPONSE = 1;
export const CMD_UNKNOWN = 2;
export const EVENT_REGISTER = 3;
export const EVENT_UNREGISTER = 4;
export const EVENT_CONFIRM = 5;
export const EVENT_UNKNOWN = 6;
export const EVENT = 7;

const NAMED = new Set([CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT]);
const WITH_MESSAGE = new Set([CMD_REQUEST, CMD_RESPONSE, EVENT]);

/** charon's limit on one packet (512 KiB). */
export const MAX_PACKET = 512 * 1024;

export interface Packet {
  type: number;
  name?: string;
  message?: ViciSection;
}

export function encodePacket(p: Packet): Uint8Array {
  if (p.type < CMD_REQUEST || p.type > EVENT) throw new Error(`vici packet type ${p.type} unknown`);
  const name = NAMED.has(p.type) ? new TextEncoder().encode(p.name ?? "") : undefined;
  if (name && (name.length === 0 || name.length > 255)) {
    throw new Error(`vici packet name must be 1-255 bytes`);
  }
  const body = WITH_MESSAGE.has(p.type) ? encodeViciMessage(p.message ?? {}) : new Uint8Array();
  const len = 1 + (name ? 1 + name.length : 0) + body.length;
  if (len > MAX_PACKET) throw new Error(`vici packet of ${len} bytes over ${MAX_PACKET}`);
  const out = new Uint8Array(4 + len);
  new DataView(out.buffer).setUint32(0, len, false);
  out[4] = p.type;
  let at = 5;
  if (name) {
    out[at++] = name.length;
    out.set(name, at);
    at += name.length;
  }
  out.set(body, at);
  return out;
}

/** One packet from its bytes (without the length prefix). */
export function decodePacket(b: Uint8Array): Packet {
  if (b.length < 1) throw new Error("vici packet is empty");
  const type = b[0];
  if (type > EVENT) throw new Error(`vici packet type ${type} unknown`);
  let at = 1;
  let name: string | undefined;
  if (NAMED.has(type)) {
    if (b.length < 2 || b.length < 2 + b[1]) throw new Error("vici packet name truncated");
    name = new TextDecoder().decode(b.subarray(2, 2 + b[1]));
    at = 2 + b[1];
  }
  const message = WITH_MESSAGE.has(type) ? decodeViciMessage(b.subarray(at)) : undefined;
  return { type, name, message };
}

/** Splits a byte stream into packet bodies. */
export class FrameReader {
  #buf = new Uint8Array(0);

  /** Adds received bytes; returns every packet now complete, in order. */
  push(chunk: Uint8Array): Uint8Array[] {
    const merged = new Uint8Array(this.#buf.length + chunk.length);
    merged.set(this.#buf);
    merged.set(chunk, this.#buf.length);
    const out: Uint8Array[] = [];
    let at = 0;
    while (merged.length - at >= 4) {
      const len = new DataView(merged.buffer, merged.byteOffset + at, 4).getUint32(0, false);
      if (len === 0 || len > MAX_PACKET) {
        throw new Error(`vici frame length ${len} outside 1-${MAX_PACKET}`);
      }
      if (merged.length - at - 4 < len) break;
      out.push(merged.slice(at + 4, at + 4 + len));
      at += 4 + len;
    }
    this.#buf = merged.slice(at);
    return out;
  }
}
