// Standard base64 for bytes (etcd's JSON API carries keys and values this way; the Raft command
// codec too). Pure. Strict validation of client input (etcd's error messages) stays in
// lib/store/api/json_codec.ts; this decodes whatever atob accepts.

export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  // In chunks: one String.fromCharCode call per byte is slow, one per buffer overflows the stack.
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(s);
}

export function decodeBase64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
