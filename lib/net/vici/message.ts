// VICI messages (strongSwan's src/libcharon/plugins/vici/README.md, "Message format"): a tree of
// sections holding key/values, lists of values and sub-sections, encoded as a flat sequence of
// typed elements. Pure. Values are strings here: charon sends and expects text only.

export const SECTION_START = 1;
export const SECTION_END = 2;
export const KEY_VALUE = 3;
export const LIST_START = 4;
export const LIST_ITEM = 5;
export const LIST_END = 6;

/** A value, a list of values, or a sub-section. */
export type ViciValue = string | string[] | ViciSection;
export interface ViciSection {
  [key: string]: ViciValue;
}

/** Sections nest deeper than any charon message does well below this. */
export const MAX_DEPTH = 32;
const MAX_NAME = 255;
const MAX_VALUE = 65535;

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

class Writer {
  #parts: number[] = [];
  byte(b: number): void {
    this.#parts.push(b);
  }
  name(s: string): void {
    const b = enc.encode(s);
    if (b.length === 0 || b.length > MAX_NAME) {
      throw new Error(`vici name ${JSON.stringify(s.slice(0, 40))} must be 1-${MAX_NAME} bytes`);
    }
    this.#parts.push(b.length, ...b);
  }
  value(s: string): void {
    const b = enc.encode(s);
    if (b.length > MAX_VALUE) throw new Error(`vici value over ${MAX_VALUE} bytes`);
    this.#parts.push(b.length >> 8, b.length & 0xff);
    for (const x of b) this.#parts.push(x);
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.#parts);
  }
}

function writeSection(w: Writer, s: ViciSection, depth: number): void {
  if (depth > MAX_DEPTH) throw new Error(`vici sections nested deeper than ${MAX_DEPTH}`);
  for (const [key, v] of Object.entries(s)) {
    if (typeof v === "string") {
      w.byte(KEY_VALUE);
      w.name(key);
      w.value(v);
    } else if (Array.isArray(v)) {
      w.byte(LIST_START);
      w.name(key);
      for (const item of v) {
        w.byte(LIST_ITEM);
        w.value(item);
      }
      w.byte(LIST_END);
    } else {
      w.byte(SECTION_START);
      w.name(key);
      writeSection(w, v, depth + 1);
      w.byte(SECTION_END);
    }
  }
}

export function encodeViciMessage(root: ViciSection): Uint8Array {
  const w = new Writer();
  writeSection(w, root, 0);
  return w.bytes();
}

class Reader {
  at = 0;
  constructor(readonly b: Uint8Array) {}
  need(n: number, what: string): void {
    if (this.at + n > this.b.length) throw new Error(`vici message truncated in ${what}`);
  }
  byte(what: string): number {
    this.need(1, what);
    return this.b[this.at++];
  }
  name(): string {
    const n = this.byte("a name length");
    this.need(n, "a name");
    return dec.decode(this.b.subarray(this.at, this.at += n));
  }
  value(): string {
    this.need(2, "a value length");
    const n = (this.b[this.at] << 8) | this.b[this.at + 1];
    this.at += 2;
    this.need(n, "a value");
    return dec.decode(this.b.subarray(this.at, this.at += n));
  }
}

function setUnique(s: ViciSection, key: string, v: ViciValue): void {
  if (Object.hasOwn(s, key)) throw new Error(`vici key ${JSON.stringify(key)} repeated`);
  s[key] = v;
}

function readList(r: Reader): string[] {
  const items: string[] = [];
  for (;;) {
    const t = r.byte("a list");
    if (t === LIST_END) return items;
    if (t !== LIST_ITEM) throw new Error(`vici element ${t} inside a list`);
    items.push(r.value());
  }
}

/** Decodes a whole message; anything unbalanced, unknown or truncated is an error. */
export function decodeViciMessage(bytes: Uint8Array): ViciSection {
  const r = new Reader(bytes);
  const root: ViciSection = {};
  const stack: ViciSection[] = [root];
  while (r.at < bytes.length) {
    const t = r.byte("an element");
    const top = stack[stack.length - 1];
    if (t === KEY_VALUE) {
      setUnique(top, r.name(), r.value());
    } else if (t === LIST_START) {
      setUnique(top, r.name(), readList(r));
    } else if (t === SECTION_START) {
      if (stack.length > MAX_DEPTH) {
        throw new Error(`vici sections nested deeper than ${MAX_DEPTH}`);
      }
      const child: ViciSection = {};
      setUnique(top, r.name(), child);
      stack.push(child);
    } else if (t === SECTION_END) {
      if (stack.length === 1) throw new Error("vici section end without a section");
      stack.pop();
    } else {
      throw new Error(`vici element type ${t} unexpected here`);
    }
  }
  if (stack.length !== 1) throw new Error("vici message ends inside a section");
  return root;
}
