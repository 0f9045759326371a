// TLS and the voter's files on a real 3-member cluster: the port answers no plain HTTP, serving
// certificates are renewed in place (short lifetime) while clients keep working, every voter
// keeps pki/ca.key and its own admin credential (0600), and remove-node of a member removes it
// and revokes its credentials.
import assert from "node:assert/strict";
import { join } from "node:path";
import { x509 } from "../../lib/pki/x509.ts";
import { fetchPinnedCa } from "../../lib/pki/ca_fetch.ts";
import { certificateSha256 } from "../../lib/pki/ca.ts";
import { hashCredential, readCredential } from "../../lib/pki/credential.ts";
import { b64, TrustCluster, waitFor } from "./trust_cluster.ts";
import type { HttpClient } from "../../lib/http/client.ts";

async function post(h: HttpClient, addr: string, path: string, body: unknown) {
  const r = await h.postJson(addr, path, body, { timeoutMs: 5000 });
  return { status: r.status, body: r.text ? JSON.parse(r.text) : null };
}

/** The serial of the certificate a member serves now (a handshake verified by the CA). */
async function leafOf(host: string, port: number, c: TrustCluster) {
  const { connect } = await import("node:tls");
  return await new Promise<{ chain: string }>((resolve, reject) => {
    const s = connect({ host, port, ca: c.ca.certPem, rejectUnauthorized: true }, () => {
      const cert = s.getPeerCertificate();
      s.destroy();
      resolve({ chain: String(cert.serialNumber) });
    });
    s.once("error", reject);
  });
}

Deno.test("trust: a plain-HTTP request on the store port gets no API answer", async () => {
  const c = await TrustCluster.start({ voters: 1 });
  try {
    const [host, port] = c.address(0).split(":");
    const conn = await Deno.connect({ hostname: host, port: Number(port) });
    const req = "POST /v3/kv/range HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}";
    await conn.write(new TextEncoder().encode(req));
    const buf = new Uint8Array(4096);
    const got: number[] = [];
    const deadline = setTimeout(() => conn.close(), 2000);
    try {
      while (true) {
        const n = await conn.read(buf);
        if (n === null) break;
        got.push(...buf.subarray(0, n));
      }
    } catch { /* closed by the deadline or reset by the server: no answer either way */ }
    clearTimeout(deadline);
    try {
      conn.close();
    } catch { /* already closed */ }
    const text = new TextDecoder().decode(new Uint8Array(got));
    assert.ok(!text.includes("HTTP/1."), `plain HTTP got an HTTP answer: ${text.slice(0, 80)}`);
    // The same port over TLS, pinned to the CA, answers.
    const pinned = await fetchPinnedCa(host, Number(port), certificateSha256(c.ca.cert));
    assert.equal(pinned.trim(), c.ca.certPem.trim());
  } finally {
    await c.stop();
  }
});

Deno.test("trust: serving certificates are renewed in place; clients keep working", async () => {
  const c = await TrustCluster.start({ voters: 3, certLifetimeMs: 4000 });
  try {
    const before = await Promise.all([0, 1, 2].map((i) => leafOf(...hostPort(c, i), c)));
    const h = c.client(c.credentials[0]);
    let ok = 0;
    let failed = 0;
    const end = Date.now() + 7000;
    while (Date.now() < end) {
      for (const i of [0, 1, 2]) {
        try {
          const r = await post(h, c.address(i), "/raft/status", {});
          if (r.status === 200) ok++;
          else failed++;
        } catch {
          failed++; // a connect reset while a listener is replaced (lib/http/tls_server.ts)
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    const after = await Promise.all([0, 1, 2].map((i) => leafOf(...hostPort(c, i), c)));
    for (const i of [0, 1, 2]) assert.notEqual(after[i].chain, before[i].chain, `member ${i}`);
    assert.ok(ok > 50 && failed <= ok / 20, `ok ${ok}, failed ${failed}`);
    assert.ok(c.logs.some((l) => l.includes("member_cert_renewed")));
    // What a renewal persisted is what is served (a renewal persists just before it serves, so
    // a read may fall between the two: look again until both agree).
    let same = false;
    for (let i = 0; i < 20 && !same; i++) {
      const chain = await Deno.readTextFile(join(c.dirs[1], "pki", "member.crt"));
      const leaf = new x509.X509Certificate(x509.PemConverter.decode(chain)[0]);
      const served = await leafOf(...hostPort(c, 1), c);
      same = served.chain.toLowerCase() === leaf.serialNumber.toLowerCase();
      if (!same) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(same, "pki/member.crt is the certificate served");
  } finally {
    await c.stop();
  }
});

Deno.test("trust: voters keep ca.key and an admin credential; remove-node removes a member", async () => {
  const c = await TrustCluster.start({ voters: 3 });
  try {
    await waitFor(
      () => c.logs.filter((l) => l.includes("admin_credential_created")).length >= 3,
      10_000,
      "admin credentials",
    );
    for (const dir of c.dirs.slice(1)) {
      const admin = await readCredential(join(dir, "admin-credential"));
      assert.ok(admin, `${dir} has an admin credential`);
      assert.equal((await Deno.stat(join(dir, "admin-credential"))).mode! & 0o777, 0o600);
      assert.equal((await Deno.stat(join(dir, "pki", "ca.key"))).mode! & 0o777, 0o600);
      const r = await post(c.client(admin), c.address(0), "/v3/kv/range", {
        key: b64("/twill/join-secret"),
      });
      assert.equal(r.status, 200);
    }
    const m3Admin = (await readCredential(join(c.dirs[2], "admin-credential")))!;
    const m3 = c.client(c.credentials[2]);
    const admin = c.client(c.adminCredential);
    const r = await post(admin, c.address(1), "/raft/remove-node", { name: "m3" });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.removed.member, c.members[2].id);
    await waitFor(() => c.leader().kv.confState.voters.length === 2, 5000, "m3 removed");
    assert.equal((await post(m3, c.address(0), "/raft/status", {})).status, 401);
    // The leader revokes the admin record of a member that is no longer a voter.
    await waitFor(
      () => c.leader().trust.index.byHash(hashCredential(m3Admin)) === null,
      5000,
      "m3's admin credential revoked",
    );
    assert.equal((await post(c.client(m3Admin), c.address(0), "/raft/status", {})).status, 401);
  } finally {
    await c.stop();
  }
});

function hostPort(c: TrustCluster, i: number): [string, number] {
  const [h, p] = c.address(i).split(":");
  return [h, Number(p)];
}

Deno.test("trust: a member that has just joined serves its own credential and its peers at once", async () => {
  const c = await TrustCluster.start({ voters: 1 });
  try {
    const m = await c.addMember("learner-1");
    const own = c.credentials[c.credentials.length - 1];
    const r = await post(c.client(own), m.opts.identity.advertise, "/raft/status", {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // The learner catches up through the leader's messages, which it accepts from the start.
    await waitFor(() => m.kv.appliedIndex >= c.leader().kv.appliedIndex, 10_000, "catch-up");
    await waitFor(() => !m.trust.index.provisional, 5000, "the log to confirm the peers");
    assert.equal(
      (await post(c.client(own), m.opts.identity.advertise, "/raft/status", {})).status,
      200,
    );
  } finally {
    await c.stop();
  }
});

Deno.test("trust: a learner renews through POST /raft/sign and keeps its key", async () => {
  const c = await TrustCluster.start({ voters: 1, certLifetimeMs: 3000 });
  try {
    const m = await c.addMember("learner-2");
    assert.ok(c.leader().kv.confState.learners.includes(m.id));
    const before = await leafOf(...hostPort(c, 1), c);
    await waitFor(
      () => c.logs.some((l) => l.startsWith("learner-2 ") && l.includes("member_cert_renewed")),
      8000,
      "the learner's renewal",
    );
    const after = await leafOf(...hostPort(c, 1), c);
    assert.notEqual(after.chain, before.chain);
    assert.ok(!(await Deno.stat(join(c.dirs[1], "pki", "ca.key")).catch(() => null)));
  } finally {
    await c.stop();
  }
});
