// The key history of a state-machine snapshot in a flat binary form: one pass to size it, one to
// write it, no base64 and no JSON for the bulk of a snapshot (values). Pure.
//
// Layout (little endian): u32 key count, then per key: u32 key length, key bytes, u32 record
// count, then per record: f64 mod, u32 sub, f64 create, f64 version, u8 tombstone, u8 lease
// length, lease id (ASCII decimal), u32 value length, value bytes.

/** One revision of one key, as the state machine keeps it. */
export interface HistoryRecord {
  mod: number;
  sub: number;
  create: number;
  ver: number;
  value: Uint8Array;
  lease: string;
  tomb: boolean;
}

const RECORD_FIXED = 8 + 4 + 8 + 8 + 1 + 1 + 4;

/** Encodes keys (binary strings, one char per byte) with their records. */
export function encodeHistory(keys: [string, HistoryRecord[]][]): Uint8Array {
  let size = 4;
  for (const [k, recs] of keys) {
    size += 8 + k.length;
    for (const r of recs) size += RECORD_FIXED + r.lease.length + r.value.length;
  }
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let p = 0;
  dv.setUint32(p, keys.length, true);
  p += 4;
  for (const [k, recs] of keys) {
    dv.setUint32(p, k.length, true);
    p += 4;
    for (let i = 0; i < k.length; i++) out[p++] = k.charCodeAt(i);
    dv.setUint32(p, recs.length, true);
    p += 4;
    for (const r of recs) {
      dv.setFloat64(p, r.mod, true);
      dv.setUint32(p + 8, r.sub, true);
      dv.setFloat64(p + 12, r.create, true);
      dv.setFloat64(p + 20, r.ver, true);
      out[p + 28] = r.tomb ? 1 : 0;
      if (r.lease.length > 255) throw new Error(`store: lease id ${r.lease} is too long`);
      out[p + 29] = r.lease.length;
      p += 30;
      for (let i = 0; i < r.lease.length; i++) out[p++] = r.lease.charCodeAt(i);
      dv.setUint32(p, r.value.length, true);
      p += 4;
      out.set(r.value, p);
      p += r.value.length;
    }
  }
  return out;
}

/** Decodes what encodeHistory made; values are copies (the input can be dropped). */
export function decodeHistory(bytes: Uint8Array): [string, HistoryRecord[]][] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const need = (n: number) => {
    if (p + n > bytes.length) throw new Error("store: snapshot history is truncated");
  };
  need(4);
  const nKeys = dv.getUint32(p, true);
  p += 4;
  const keys: [string, HistoryRecord[]][] = new Array(nKeys);
  for (let ki = 0; ki < nKeys; ki++) {
    need(4);
    const kl = dv.getUint32(p, true);
    p += 4;
    need(kl + 4);
    const key = binString(bytes, p, kl);
    p += kl;
    const nRecs = dv.getUint32(p, true);
    p += 4;
    const recs: HistoryRecord[] = new Array(nRecs);
    for (let ri = 0; ri < nRecs; ri++) {
      need(30);
      const mod = dv.getFloat64(p, true);
      const sub = dv.getUint32(p + 8, true);
      const create = dv.getFloat64(p + 12, true);
      const ver = dv.getFloat64(p + 20, true);
      const tomb = bytes[p + 28] === 1;
      const ll = bytes[p + 29];
      p += 30;
      need(ll + 4);
      const lease = binString(bytes, p, ll);
      p += ll;
      const vl = dv.getUint32(p, true);
      p += 4;
      need(vl);
      const value = bytes.slice(p, p + vl);
      p += vl;
      recs[ri] = { mod, sub, create, ver, value, lease, tomb };
    }
    keys[ki] = [key, recs];
  }
  if (p !== bytes.length) throw new Error("store: snapshot history has trailing bytes");
  return keys;
}

function binString(bytes: Uint8Array, at: number, n: number): string {
  let s = "";
  for (let i = at; i < at + n; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, Math.min(at + n, i + 8192)));
  }
  return s;
}
