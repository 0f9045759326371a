import assert from "node:assert/strict";
import { join } from "node:path";
import {
  caCertPath,
  caKeyPath,
  certificateSha256,
  createClusterCa,
  EC_ALGORITHM,
  isCaCertificate,
  loadClusterCa,
  privateKeyFromPem,
  readClusterCa,
  writeClusterCa,
} from "../../lib/pki/ca.ts";
import {
  createCertificateRequest,
  issueMemberCertificate,
  memberSans,
  readMemberCertificate,
  renewAt,
  renewDelayMs,
  signCertificateRequest,
  writeMemberCertificate,
} from "../../lib/pki/member_cert.ts";
import { x509 } from "../../lib/pki/x509.ts";

const YEAR = 365 * 24 * 3600_000;

Deno.test("cluster CA: ECDSA P-256, CA:true, keyCertSign, self-signed, 10 years", async () => {
  const now = Date.UTC(2026, 0, 1);
  const ca = await createClusterCa({ now });
  assert.equal(isCaCertificate(ca.cert), true);
  assert.equal(await ca.cert.verify({ signatureOnly: true }), true);
  const alg = ca.cert.publicKey.algorithm as EcKeyAlgorithm;
  assert.equal(alg.name, "ECDSA");
  assert.equal(alg.namedCurve, "P-256");
  const ku = ca.cert.getExtension(x509.KeyUsagesExtension)!;
  assert.ok(ku.usages & x509.KeyUsageFlags.keyCertSign);
  assert.equal(ca.cert.notAfter.getUTCFullYear(), 2036);
  assert.ok(ca.cert.notBefore.getTime() <= now);
  assert.match(ca.certPem, /^-----BEGIN CERTIFICATE-----\n/);
  assert.match(ca.keyPem!, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.match(certificateSha256(ca.cert), /^[0-9a-f]{64}$/);
});

Deno.test("cluster CA files: ca.crt 0644, ca.key 0600, read back equal; key optional", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twill-pki-ca-" });
  try {
    const ca = await createClusterCa();
    await writeClusterCa(dir, ca, { withKey: true });
    assert.equal((await Deno.stat(caCertPath(dir))).mode! & 0o777, 0o644);
    assert.equal((await Deno.stat(caKeyPath(dir))).mode! & 0o777, 0o600);
    const back = (await readClusterCa(dir))!;
    assert.equal(back.certPem, ca.certPem);
    assert.equal(certificateSha256(back.cert), certificateSha256(ca.cert));
    assert.ok(back.privateKey);

    const learner = join(dir, "learner");
    await writeClusterCa(learner, { ...ca, keyPem: null, privateKey: null }, { withKey: false });
    const verifyOnly = (await readClusterCa(learner))!;
    assert.equal(verifyOnly.privateKey, null);
    await assert.rejects(() => Deno.stat(caKeyPath(learner)), Deno.errors.NotFound);
    assert.equal(await readClusterCa(join(dir, "none")), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cluster CA: a key from another CA is refused at load", async () => {
  const a = await createClusterCa();
  const b = await createClusterCa();
  await assert.rejects(() => loadClusterCa(a.certPem, b.keyPem), /does not belong/);
  await assert.rejects(() => loadClusterCa("not pem", null), /expected exactly one/);
});

Deno.test("member certificate: SANs, usages, chain, signed by the CA, default 1 year", async () => {
  const ca = await createClusterCa();
  const now = Date.now();
  const m = await issueMemberCertificate(ca, { advertiseHost: "10.0.0.7", name: "n1", now });
  assert.equal(await m.cert.verify({ publicKey: ca.cert.publicKey, date: new Date(now) }), true);
  const san = m.cert.getExtension(x509.SubjectAlternativeNameExtension)!;
  assert.deepEqual(san.names.toJSON(), [
    { type: "ip", value: "10.0.0.7" },
    { type: "ip", value: "127.0.0.1" },
  ]);
  const ku = m.cert.getExtension(x509.KeyUsagesExtension)!;
  assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature);
  const eku = m.cert.getExtension(x509.ExtendedKeyUsageExtension)!;
  assert.deepEqual([...eku.usages], [x509.ExtendedKeyUsage.serverAuth]);
  assert.equal(isCaCertificate(m.cert), false);
  const lifetime = m.cert.notAfter.getTime() - now;
  assert.ok(Math.abs(lifetime - YEAR) < 2000, `lifetime ${lifetime}`);
  assert.equal(m.chainPem, m.certPem + ca.certPem);
});

Deno.test("member certificate SANs: DNS name, IPv6 in brackets, loopback not doubled", () => {
  assert.deepEqual(memberSans("node-1.example"), [
    { type: "dns", value: "node-1.example" },
    { type: "ip", value: "127.0.0.1" },
  ]);
  assert.deepEqual(memberSans("[fd00::1]"), [
    { type: "ip", value: "fd00::1" },
    { type: "ip", value: "127.0.0.1" },
  ]);
  assert.deepEqual(memberSans("127.0.0.1"), [{ type: "ip", value: "127.0.0.1" }]);
  for (const bad of ["", "a b", "host:8473", "-x.example", "a/b"]) {
    assert.throws(() => memberSans(bad), /bad advertise host/, bad);
  }
});

Deno.test("member certificate: a node without the CA key cannot sign; lifetime capped by CA", async () => {
  const ca = await createClusterCa();
  await assert.rejects(
    () => issueMemberCertificate({ ...ca, privateKey: null }, { advertiseHost: "a.b", name: "x" }),
    /only voters can sign/,
  );
  const m = await issueMemberCertificate(ca, {
    advertiseHost: "a.b",
    name: "x",
    lifetimeMs: 20 * YEAR,
  });
  assert.equal(m.cert.notAfter.getTime(), ca.cert.notAfter.getTime());
  await assert.rejects(
    () => issueMemberCertificate(ca, { advertiseHost: "a.b", name: "x", lifetimeMs: 500 }),
    /at least 2000 ms/,
  );
});

Deno.test("renewAt: two thirds of the lifetime; renewDelayMs counts down to it", async () => {
  const ca = await createClusterCa();
  const now = Date.now();
  const m = await issueMemberCertificate(ca, {
    advertiseHost: "127.0.0.1",
    name: "x",
    lifetimeMs: 30_000,
    now,
  });
  const from = m.cert.notBefore.getTime();
  const to = m.cert.notAfter.getTime();
  assert.equal(renewAt(m.cert).getTime(), from + Math.floor(((to - from) * 2) / 3));
  assert.ok(renewAt(m.cert).getTime() > now);
  assert.equal(renewDelayMs(m.cert, renewAt(m.cert).getTime()), 0);
  assert.equal(renewDelayMs(m.cert, to + 1), 0);
  assert.equal(renewDelayMs(m.cert, from - 1), 0, "not yet valid: renew now");
  assert.equal(renewDelayMs(m.cert, from), renewAt(m.cert).getTime() - from);
});

Deno.test("member certificate files: key 0600, chain 0644, read back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twill-pki-member-" });
  try {
    const ca = await createClusterCa();
    const m = await issueMemberCertificate(ca, { advertiseHost: "127.0.0.1", name: "x" });
    await writeMemberCertificate(dir, m);
    assert.equal((await Deno.stat(join(dir, "pki/member.key"))).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(join(dir, "pki/member.crt"))).mode! & 0o777, 0o644);
    const back = (await readMemberCertificate(dir))!;
    assert.equal(back.chainPem, m.chainPem);
    assert.equal(back.keyPem, m.keyPem);
    assert.equal(back.cert.serialNumber, m.cert.serialNumber);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("learner issuance: a CSR signed by a voter; names come from the voter, not the CSR", async () => {
  const ca = await createClusterCa();
  const { csrPem, keyPem } = await createCertificateRequest("learner-1");
  assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/);
  const { cert, chainPem } = await signCertificateRequest(ca, csrPem, {
    advertiseHost: "10.0.0.9",
    name: "learner-1",
  });
  assert.equal(await cert.verify({ publicKey: ca.cert.publicKey }), true);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension)!;
  assert.deepEqual(san.names.toJSON(), [
    { type: "ip", value: "10.0.0.9" },
    { type: "ip", value: "127.0.0.1" },
  ]);
  assert.ok(chainPem.endsWith(ca.certPem));
  // The certificate carries the CSR's key: the learner's private key signs for it.
  const probe = new Uint8Array([1, 2, 3]);
  const sig = await crypto.subtle.sign(EC_ALGORITHM, await privateKeyFromPem(keyPem), probe);
  const pub = await cert.publicKey.export(EC_ALGORITHM, ["verify"]);
  assert.equal(await crypto.subtle.verify(EC_ALGORITHM, pub, sig, probe), true);
});

Deno.test("learner issuance: garbage, oversize and tampered requests are refused", async () => {
  const ca = await createClusterCa();
  const opts = { advertiseHost: "10.0.0.9", name: "x" };
  await assert.rejects(() => signCertificateRequest(ca, "junk", opts), /not a PEM certificate/);
  await assert.rejects(
    () => signCertificateRequest(ca, "x".repeat(5000), opts),
    /too large/,
  );
  const { csrPem } = await createCertificateRequest("x");
  const der = x509.PemConverter.decode(csrPem)[0];
  const bytes = new Uint8Array(der);
  bytes[bytes.length - 5] ^= 0xff; // inside the signature
  const tampered = x509.PemConverter.encode(bytes.buffer, "CERTIFICATE REQUEST");
  await assert.rejects(() => signCertificateRequest(ca, tampered, opts), /signature|request/);
});
