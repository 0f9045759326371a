import assert from "node:assert/strict";
import { join } from "node:path";
import {
  clampPrivateKey,
  generateKeyPair,
  keyFromBase64,
  keyFromHex,
  keyToBase64,
  keyToHex,
  loadOrCreateKeyPair,
  publicKeyOf,
} from "../../../lib/net/wireguard/keys.ts";

// RFC 7748 section 6.1: Alice's and Bob's private keys and the public keys they derive.
const RFC7748 = [
  {
    priv: "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    pub: "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
  },
  {
    priv: "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    pub: "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
  },
];

Deno.test("public keys match the RFC 7748 X25519 test vectors", async () => {
  for (const v of RFC7748) {
    assert.equal(keyToHex(await publicKeyOf(keyFromHex(v.priv))), v.pub);
  }
});

Deno.test("hex and base64 spellings round-trip and reject wrong lengths", () => {
  const key = keyFromHex(RFC7748[0].priv);
  assert.deepEqual(keyFromBase64(keyToBase64(key)), key);
  assert.deepEqual(keyFromHex(keyToHex(key)), key);
  assert.throws(() => keyFromBase64("AAAA"), /must be 32 bytes, got 3/);
  assert.throws(() => keyFromBase64("!!!"), /not valid base64/);
  assert.throws(() => keyFromHex("abc"), /not 64 hex digits/);
});

Deno.test("generated keys are clamped as wg genkey's", async () => {
  const { privateKey } = await generateKeyPair();
  assert.deepEqual(clampPrivateKey(privateKey), privateKey);
});

Deno.test("a generated key's public key equals `wg pubkey`", async () => {
  const pair = await generateKeyPair();
  const p = new Deno.Command("wg", { args: ["pubkey"], stdin: "piped", stdout: "piped" }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(keyToBase64(pair.privateKey) + "\n"));
  await w.close();
  const out = await p.output();
  assert.equal(out.code, 0);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), keyToBase64(pair.publicKey));
});

Deno.test("the key file is created 0600 once and reused after a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twill-wgkey-" });
  try {
    const path = join(dir, "wireguard.key");
    const first = await loadOrCreateKeyPair(path);
    assert.equal(first.created, true);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const again = await loadOrCreateKeyPair(path);
    assert.equal(again.created, false);
    assert.deepEqual(again.publicKey, first.publicKey);
    assert.deepEqual(again.privateKey, first.privateKey);
    await Deno.writeTextFile(path, "not a key\n");
    await assert.rejects(
      () => loadOrCreateKeyPair(path),
      /WireGuard private key in .* (is not valid base64|must be 32 bytes)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
