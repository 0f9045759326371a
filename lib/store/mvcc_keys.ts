// Byte-string keys as JS "binary strings" (one char per byte, 0..255): comparing two such strings
// with < is exactly etcd's bytewise key order, and they can key a Map.

export function toBin(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return s;
}

export function fromBin(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** etcd's range convention: end "" = just key; end "\0" = every key >= key; else [key, end). */
export function inRange(key: string, start: string, end: string): boolean {
  if (end === "") return key === start;
  if (end === "\0") return key >= start;
  return key >= start && key < end;
}

/** Index of the first element >= key in a sorted array (of keys or of revisions). */
export function lowerBound<T extends string | number>(sorted: T[], key: T): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Bytewise three-way comparison. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
