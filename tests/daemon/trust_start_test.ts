// The daemon's trust steps without a cluster: a join whose seed presents a CA other than the one
// the join token pins is refused with one line before anything is sent on the connection, and no
// trust file is written; --init's trust files have the contract's names and modes; a join answer
// naming another CA is refused; a revoked credential is recognised only when the 401 lasts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { runDaemon } from "../../lib/daemon/daemon.ts";
import { RevocationWatch } from "../../lib/daemon/network.ts";
import { createFounderTrust, writeJoinedTrust } from "../../lib/daemon/trust_files.ts";
import { certificateSha256, createClusterCa } from "../../lib/pki/ca.ts";
import { issueMemberCertificate } from "../../lib/pki/member_cert.ts";
import { createCredential } from "../../lib/pki/credential.ts";
import { parseJoinToken } from "../../lib/pki/join_token.ts";
import { parseAgentFlags } from "../../cmd/agent.ts";

const HOST = "127.0.0.1";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "twill-daemon-trust-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const mode = async (p: string) => (await Deno.stat(p)).mode! & 0o777;

Deno.test("join: a seed presenting another CA is refused before anything is sent", async () => {
  await withDir(async (dir) => {
    const rogue = await createClusterCa();
    const leaf = await issueMemberCertificate(rogue, { advertiseHost: HOST, name: "rogue" });
    const listener = Deno.listenTls({
      hostname: HOST,
      port: 0,
      cert: leaf.chainPem,
      key: leaf.keyPem,
    });
    let received = 0;
    const serving = (async () => {
      for await (const conn of listener) {
        try {
          await conn.handshake();
          const buf = new Uint8Array(4096);
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            received += n;
          }
        } catch { /* the joiner hung up */ }
        conn.close();
      }
    })();
    const pinned = (await createClusterCa()).cert;
    const token = `K10${certificateSha256(pinned)}::a-join-secret-123456`;
    const addr = `${HOST}:${(listener.addr as Deno.NetAddr).port}`;
    const cfg = parseAgentFlags([
      "--join",
      addr,
      "--token",
      token,
      "--data-dir",
      dir,
      "--advertise",
      "127.0.0.1:8473",
      "--store-only",
    ], {});
    try {
      await assert.rejects(
        runDaemon(cfg, new AbortController().signal),
        (e: Error) => {
          assert.match(
            e.message,
            /^join refused: CA hash mismatch: the join token pins [0-9a-f]{64}/,
          );
          assert.ok(!e.message.includes("\n"), "one line");
          assert.ok(!e.message.includes("a-join-secret"), "the secret is not echoed");
          return true;
        },
      );
    } finally {
      listener.close();
      await serving;
    }
    assert.equal(received, 0, "not one byte after the handshake");
    for (const f of ["credential", "pki/ca.crt", "member.json"]) {
      await assert.rejects(Deno.stat(join(dir, f)), Deno.errors.NotFound, `${f} not written`);
    }
  });
});

Deno.test("init: the CA, member certificate, credentials and join token, with their modes", async () => {
  await withDir(async (dir) => {
    const t = await createFounderTrust(dir, {
      name: "n1",
      advertise: "10.0.0.1:8473",
      clusterId: "42",
      secret: "the-secret-of-n1-cluster",
    });
    const kept = (await Deno.readTextFile(join(dir, "join-token"))).trim();
    assert.equal(kept, t.joinToken);
    assert.deepEqual(parseJoinToken(kept), {
      caSha256: certificateSha256(t.ca.cert),
      secret: "the-secret-of-n1-cluster",
    });
    assert.equal(await mode(join(dir, "join-token")), 0o600);
    assert.equal(await mode(join(dir, "credential")), 0o600);
    assert.equal(await mode(join(dir, "admin-credential")), 0o600);
    assert.equal(await mode(join(dir, "pki", "ca.key")), 0o600);
    assert.equal(await mode(join(dir, "pki", "member.key")), 0o600);
    assert.equal(await mode(join(dir, "pki", "ca.crt")), 0o644);
    assert.match(t.credential, /^twn_/);
    assert.match(t.adminCredential, /^twa_/);
    const generated = await createFounderTrust(join(dir, "g"), {
      name: "n1",
      advertise: "10.0.0.1:8473",
      clusterId: "43",
    });
    assert.match(generated.secret, /^[0-9a-f]{32}$/, "a generated secret");
  });
});

Deno.test("join answer: a CA other than the pinned one is refused and nothing is written", async () => {
  await withDir(async (dir) => {
    const pinned = await createClusterCa();
    const other = await createClusterCa();
    await assert.rejects(
      writeJoinedTrust(dir, pinned.certPem, {
        caPem: other.certPem,
        credential: createCredential(),
      }),
      /names a CA other than the pinned one/,
    );
    await assert.rejects(Deno.stat(join(dir, "credential")), Deno.errors.NotFound);
    await assert.rejects(
      writeJoinedTrust(dir, pinned.certPem, { caPem: pinned.certPem, credential: "" }),
      /holds no credential/,
    );
    const cred = createCredential();
    await writeJoinedTrust(dir, pinned.certPem, { caPem: pinned.certPem, credential: cred });
    assert.equal((await Deno.readTextFile(join(dir, "credential"))).trim(), cred);
    assert.equal(await Deno.readTextFile(join(dir, "pki", "ca.crt")), pinned.certPem);
  });
});

Deno.test("revocation: a lasting, confirmed 401 after an accepted answer; a passing one is not", async () => {
  let revoked = 0;
  const w = new RevocationWatch(30, 10_000, () => revoked++);
  w.probe = () => {
    w.observe(false);
    return Promise.resolve();
  };
  // Never accepted yet (a fresh member still catching up): the long grace applies.
  w.observe(false);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(revoked, 0, "a credential never accepted gets the long grace");
  // A 401 followed by an accepted answer: not revoked.
  w.probe = () => Promise.resolve();
  w.observe(true);
  w.observe(false);
  w.observe(true);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(revoked, 0);
  // A 401 whose confirming probe gets no answer at all proves nothing.
  w.observe(false);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(revoked, 0);
  // A 401 whose probe is refused again: revoked, once.
  w.probe = () => {
    w.observe(false);
    return Promise.resolve();
  };
  w.observe(false);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(revoked, 1);
  w.observe(false);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(revoked, 1, "said once");
  w.stop();
});
