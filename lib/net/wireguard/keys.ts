// WireGuard keys: Curve25519 (X25519) key pairs through WebCrypto, their two spellings (base64 in
// Flannel's lease `PublicKey` and in `wg` output, hex on the userspace API), and the node's private
// key file, created once in the data dir and reused on every restart so the published public key
// stays the same.
import { decodeBase64, encodeBase64 } from "../../base64.ts";
import { writeTextFileAtomic } from "../../fs_atomic.ts";

export const KEY_LENGTH = 32;

export interface KeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

// A PKCS#8 PrivateKeyInfo for X25519 (RFC 8410) is this fixed prefix followed by the raw key:
// WebCrypto imports private keys only in PKCS#8 or JWK form.
const PKCS8_X25519_PREFIX = Uint8Array.from([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x6e,
  0x04,
  0x22,
  0x04,
  0x20,
]);

function assertKeyLength(key: Uint8Array, what: string): void {
  if (key.length !== KEY_LENGTH) {
    throw new Error(`${what} must be ${KEY_LENGTH} bytes, got ${key.length}`);
  }
}

/** A key that decodes from base64 to 32 bytes, or an error naming what was wrong. */
export function keyFromBase64(s: string, what = "WireGuard key"): Uint8Array {
  let key: Uint8Array;
  try {
    key = decodeBase64(s.trim());
  } catch {
    throw new Error(`${what} is not valid base64`);
  }
  assertKeyLength(key, what);
  return key;
}

export function keyToBase64(key: Uint8Array): string {
  assertKeyLength(key, "WireGuard key");
  return encodeBase64(key);
}

export function keyToHex(key: Uint8Array): string {
  assertKeyLength(key, "WireGuard key");
  return Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function keyFromHex(s: string, what = "WireGuard key"): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(s)) throw new Error(`${what} is not 64 hex digits`);
  const key = new Uint8Array(KEY_LENGTH);
  for (let i = 0; i < KEY_LENGTH; i++) key[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return key;
}

/** Clears and sets the bits X25519 ignores anyway, as `wg genkey` stores its keys. */
export function clampPrivateKey(key: Uint8Array): Uint8Array {
  assertKeyLength(key, "WireGuard private key");
  const out = key.slice();
  out[0] &= 248;
  out[31] = (out[31] & 127) | 64;
  return out;
}

function base64UrlToBytes(s: string): Uint8Array {
  const std = s.replace(/-/g, "+").replace(/_/g, "/");
  return decodeBase64(std + "=".repeat((4 - (std.length % 4)) % 4));
}

/** The public key of a raw 32-byte X25519 private key. */
export async function publicKeyOf(privateKey: Uint8Array): Promise<Uint8Array> {
  assertKeyLength(privateKey, "WireGuard private key");
  const pkcs8 = new Uint8Array(PKCS8_X25519_PREFIX.length + KEY_LENGTH);
  pkcs8.set(PKCS8_X25519_PREFIX);
  pkcs8.set(privateKey, PKCS8_X25519_PREFIX.length);
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, true, [
    "deriveBits",
  ]);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  if (typeof jwk.x !== "string") throw new Error("X25519 key export gave no public part");
  const pub = base64UrlToBytes(jwk.x);
  assertKeyLength(pub, "X25519 public key");
  return pub;
}

/** A fresh key pair from the system's CSPRNG. */
export async function generateKeyPair(): Promise<KeyPair> {
  const privateKey = clampPrivateKey(crypto.getRandomValues(new Uint8Array(KEY_LENGTH)));
  return { privateKey, publicKey: await publicKeyOf(privateKey) };
}

/**
 * The node's key pair from `path` (one base64 line, as `wg genkey` writes), creating the file
 * (mode 0600, written atomically) on first use. A file that exists but does not hold a key is an
 * error: replacing it would silently change the node's published public key.
 */
export async function loadOrCreateKeyPair(path: string): Promise<KeyPair & { created: boolean }> {
  let text: string | undefined;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (text !== undefined) {
    const privateKey = keyFromBase64(text, `WireGuard private key in ${path}`);
    return { privateKey, publicKey: await publicKeyOf(privateKey), created: false };
  }
  const pair = await generateKeyPair();
  await writeTextFileAtomic(path, keyToBase64(pair.privateKey) + "\n", 0o600);
  return { ...pair, created: true };
}
