import assert from "node:assert/strict";
import { connect } from "node:tls";
import { createClusterCa } from "../../lib/pki/ca.ts";
import { startCertificateRenewal } from "../../lib/pki/cert_renewal.ts";
import {
  issueMemberCertificate,
  readMemberCertificate,
  writeMemberCertificate,
} from "../../lib/pki/member_cert.ts";
import { serveTls } from "../../lib/http/tls_server.ts";
import type { LogLevel } from "../../lib/log.ts";

const HOST = "127.0.0.1";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function recorder() {
  const lines: { level: LogLevel; event: string; fields: Record<string, unknown> }[] = [];
  return {
    lines,
    log: (level: LogLevel, event: string, fields: object = {}) =>
      lines.push({ level, event, fields: fields as Record<string, unknown> }),
  };
}

function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: HOST, port, rejectUnauthorized: false });
    sock.once("secureConnect", () => {
      resolve(BigInt(`0x${sock.getPeerCertificate().serialNumber}`).toString(16));
      sock.destroy();
    });
    sock.once("error", reject);
  });
}

async function fetchOk(port: number, caPem: string): Promise<string> {
  // One retry: a connection at the instant of a listener swap may be reset before it is sent.
  for (let attempt = 0;; attempt++) {
    const client = Deno.createHttpClient({ caCerts: [caPem] });
    try {
      return await (await fetch(`https://${HOST}:${port}/`, { client })).text();
    } catch (e) {
      if (attempt > 0 || !/client error \(Connect\)/.test(String((e as Error).cause))) throw e;
    } finally {
      client.close();
    }
  }
}

Deno.test("a 3-second certificate is renewed without a restart; clients keep verifying", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twill-pki-renew-" });
  const ca = await createClusterCa();
  const issue = () =>
    issueMemberCertificate(ca, { advertiseHost: HOST, name: "m", lifetimeMs: 3000 });
  const first = await issue();
  const server = serveTls({
    hostname: HOST,
    port: 0,
    handler: () => new Response("ok"),
    certPem: first.chainPem,
    keyPem: first.keyPem,
  });
  const rec = recorder();
  const renewal = startCertificateRenewal({
    current: first.cert,
    issue,
    persist: (m) => writeMemberCertificate(dir, m),
    install: (c, k) => server.replaceCertificate(c, k),
    log: rec.log,
  });
  try {
    await sleep(4500); // past the first certificate's notAfter
    assert.ok(Date.now() > first.cert.notAfter.getTime());
    assert.equal(await fetchOk(server.port, ca.certPem), "ok");
    const served = await servedSerial(server.port);
    assert.notEqual(served, BigInt(`0x${first.cert.serialNumber}`).toString(16));
    assert.equal(served, BigInt(`0x${renewal.current.serialNumber}`).toString(16));
    const onDisk = (await readMemberCertificate(dir))!;
    assert.equal(onDisk.cert.serialNumber, renewal.current.serialNumber);
    const renewed = rec.lines.filter((l) => l.event === "member_cert_renewed");
    assert.ok(renewed.length >= 1, "no renewal logged");
  } finally {
    renewal.stop();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("renewal failures are warnings, then errors once the certificate has expired", async () => {
  const ca = await createClusterCa();
  const first = await issueMemberCertificate(ca, {
    advertiseHost: HOST,
    name: "m",
    lifetimeMs: 2000,
  });
  const rec = recorder();
  let installs = 0;
  const renewal = startCertificateRenewal({
    current: first.cert,
    issue: () => Promise.reject(new Error("no voter reachable")),
    persist: () => Promise.resolve(),
    install: () => {
      installs++;
      return Promise.resolve();
    },
    log: rec.log,
    retryMs: 50,
  });
  try {
    await sleep(Math.max(0, first.cert.notAfter.getTime() - Date.now()) + 300);
  } finally {
    renewal.stop();
  }
  const failed = rec.lines.filter((l) => l.event === "member_cert_renewal_failed");
  assert.ok(failed.some((l) => l.level === "warn" && l.fields.expired === false));
  assert.ok(failed.some((l) => l.level === "error" && l.fields.expired === true));
  assert.ok(failed.every((l) => l.fields.error === "no voter reachable"));
  assert.equal(installs, 0);
  assert.equal(renewal.current, first.cert);
});

Deno.test("a certificate far from renewal (beyond setTimeout's range) is not renewed early", async () => {
  const ca = await createClusterCa();
  const first = await issueMemberCertificate(ca, { advertiseHost: HOST, name: "m" }); // 1 year
  let issued = 0;
  const renewal = startCertificateRenewal({
    current: first.cert,
    issue: () => {
      issued++;
      return Promise.reject(new Error("must not be called"));
    },
    persist: () => Promise.resolve(),
    install: () => Promise.resolve(),
    log: () => {},
  });
  await sleep(200);
  renewal.stop();
  assert.equal(issued, 0);
});

Deno.test("a not-yet-valid certificate is renewed at once", async () => {
  const ca = await createClusterCa();
  const future = await issueMemberCertificate(ca, {
    advertiseHost: HOST,
    name: "m",
    now: Date.now() + 3600_000,
  });
  const fresh = await issueMemberCertificate(ca, { advertiseHost: HOST, name: "m" });
  const rec = recorder();
  const renewal = startCertificateRenewal({
    current: future.cert,
    issue: () => Promise.resolve(fresh),
    persist: () => Promise.resolve(),
    install: () => Promise.resolve(),
    log: rec.log,
  });
  await sleep(100);
  renewal.stop();
  assert.equal(renewal.current, fresh.cert);
  assert.ok(rec.lines.some((l) => l.event === "member_cert_renewed"));
});
