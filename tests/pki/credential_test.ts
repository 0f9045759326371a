import assert from "node:assert/strict";
import { join } from "node:path";
import {
  bearerCredential,
  constantTimeEqual,
  createCredential,
  type CredentialRecord,
  findCredential,
  hashCredential,
  isAdminCredential,
  looksLikeCredential,
  readCredential,
  writeCredential,
} from "../../lib/pki/credential.ts";
import { checkInitSecret } from "../../lib/pki/join_token.ts";

Deno.test("credentials: prefixed, 32 random bytes base64url, distinct, never a join secret", () => {
  const n = createCredential();
  const a = createCredential(true);
  assert.match(n, /^twn_[A-Za-z0-9_-]{43}$/);
  assert.match(a, /^twa_[A-Za-z0-9_-]{43}$/);
  assert.notEqual(createCredential(), n);
  assert.equal(isAdminCredential(a), true);
  assert.equal(isAdminCredential(n), false);
  assert.equal(looksLikeCredential("108b2f6c0a1d"), false);
  assert.equal(looksLikeCredential(n + "x"), false);
  // A node credential passed as --init --token is accepted as a secret string, but the two never
  // collide the other way: no generated join secret has a credential's shape.
  assert.equal(looksLikeCredential(checkInitSecret("0123456789abcdef0123").secret), false);
});

Deno.test("credentials: sha256 hash, constant-time equality", () => {
  const c = createCredential();
  assert.match(hashCredential(c), /^[0-9a-f]{64}$/);
  assert.equal(hashCredential(c), hashCredential(c));
  assert.notEqual(hashCredential(c), hashCredential(createCredential()));
  assert.equal(constantTimeEqual("abc", "abc"), true);
  assert.equal(constantTimeEqual("abc", "abd"), false);
  assert.equal(constantTimeEqual("abc", "abcd"), false);
});

Deno.test("credentials: lookup by hash; revoked and unknown find nothing", () => {
  const live = createCredential();
  const gone = createCredential();
  const records: CredentialRecord[] = [
    { hash: hashCredential(live), nodeName: "n1", kind: "node", revoked: false },
    { hash: hashCredential(gone), nodeName: "n2", kind: "member", revoked: true },
  ];
  assert.equal(findCredential(live, records)?.nodeName, "n1");
  assert.equal(findCredential(gone, records), null);
  assert.equal(findCredential(createCredential(), records), null);
  assert.equal(findCredential("garbage", records), null);
});

Deno.test("credentials: Bearer header parsing rejects anything that is not a credential", () => {
  const c = createCredential();
  assert.equal(bearerCredential(`Bearer ${c}`), c);
  assert.equal(bearerCredential(null), null);
  assert.equal(bearerCredential(c), null);
  assert.equal(bearerCredential("Bearer 108b2f"), null);
  assert.equal(bearerCredential(`Bearer ${c} extra`), null);
});

Deno.test("credential files are 0600 and read back; a foreign file is an error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twill-pki-cred-" });
  try {
    const c = createCredential();
    const p = join(dir, "credential");
    await writeCredential(p, c);
    assert.equal((await Deno.stat(p)).mode! & 0o777, 0o600);
    assert.equal(await readCredential(p), c);
    assert.equal(await readCredential(join(dir, "admin-credential")), null);
    await Deno.writeTextFile(join(dir, "token"), "108b2f\n");
    await assert.rejects(() => readCredential(join(dir, "token")), /does not hold/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
