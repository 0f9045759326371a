import assert from "node:assert/strict";
import {
  checkInitSecret,
  formatJoinToken,
  generateJoinSecret,
  joinSecretMatches,
  JoinTokenError,
  parseJoinToken,
} from "../../lib/pki/join_token.ts";

const HASH = "ab".repeat(32);

Deno.test("join token: format and parse round-trip; hash read case-insensitively", () => {
  const t = formatJoinToken({ caSha256: HASH, secret: "s3cret-value-long-enough" });
  assert.equal(t, `K10${HASH}::s3cret-value-long-enough`);
  assert.deepEqual(parseJoinToken(t), { caSha256: HASH, secret: "s3cret-value-long-enough" });
  assert.deepEqual(parseJoinToken(`K10${HASH.toUpperCase()}::x\n`), {
    caSha256: HASH,
    secret: "x",
  });
});

Deno.test("join token: a bare secret says to run `twill ctl join-token` and hides the secret", () => {
  for (const bare of ["108b2f6c0a1d", "K10" + HASH, HASH + "::x"]) {
    assert.throws(
      () => parseJoinToken(bare),
      (e: unknown) =>
        e instanceof JoinTokenError && /twill ctl join-token/.test(e.message) &&
        !e.message.includes(bare),
      bare,
    );
  }
});

Deno.test("join token: wrong hash length, non-hex hash and bad secrets are refused", () => {
  const cases: [string, RegExp][] = [
    [`K10${HASH.slice(2)}::secret`, /64 hex digits, got 62/],
    [`K10${HASH}ab::secret`, /64 hex digits, got 66/],
    [`K10${"zz".repeat(32)}::secret`, /must be hex/],
    [`K10${HASH}::`, /secret is empty/],
    [`K10${HASH}::a b`, /whitespace/],
    [`K10${HASH}::a::b`, /contains "::"/],
    [`K10${HASH}::${"x".repeat(1025)}`, /longer than 1024/],
  ];
  for (const [raw, re] of cases) assert.throws(() => parseJoinToken(raw), re, raw);
});

Deno.test("--init secret: kept as given; K10 refused; empty/whitespace/:: refused; short warns", () => {
  assert.deepEqual(checkInitSecret("0123456789abcdef"), {
    secret: "0123456789abcdef",
    warning: null,
  });
  assert.match(checkInitSecret("short").warning!, /shorter than 16/);
  assert.throws(() => checkInitSecret(`K10${HASH}::abc`), /not a join token/);
  assert.throws(() => checkInitSecret(""), /empty/);
  assert.throws(() => checkInitSecret("a\tb"), /whitespace/);
  assert.throws(() => checkInitSecret("a::b"), /"::"/);
});

Deno.test("generated secrets: 32 hex, distinct, valid at --init without a warning", () => {
  const a = generateJoinSecret();
  const b = generateJoinSecret();
  assert.match(a, /^[0-9a-f]{32}$/);
  assert.notEqual(a, b);
  assert.equal(checkInitSecret(a).warning, null);
  assert.throws(() => formatJoinToken({ caSha256: "abc", secret: a }), /64 hex/);
});

Deno.test("join secret check: exact match only; malformed presented secrets never match", () => {
  assert.equal(joinSecretMatches("0123456789abcdef", "0123456789abcdef"), true);
  assert.equal(joinSecretMatches("0123456789abcdeF", "0123456789abcdef"), false);
  assert.equal(joinSecretMatches("0123456789abcde", "0123456789abcdef"), false);
  assert.equal(joinSecretMatches("", ""), false);
});
