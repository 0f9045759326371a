import assert from "node:assert/strict";
import { certificateSha256, createClusterCa } from "../../lib/pki/ca.ts";
import { CaPinError, fetchPinnedCa } from "../../lib/pki/ca_fetch.ts";
import { issueMemberCertificate } from "../../lib/pki/member_cert.ts";

const HOST = "127.0.0.1";

/** A raw TLS listener presenting `certPem`; counts the application bytes clients send. */
function presenting(certPem: string, keyPem: string) {
  const listener = Deno.listenTls({ hostname: HOST, port: 0, cert: certPem, key: keyPem });
  let received = 0;
  const conns: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.push((async () => {
        const buf = new Uint8Array(1024);
        try {
          for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) received += n;
        } catch { /* the client hangs up right after the handshake */ }
        try {
          conn.close();
        } catch { /* already closed */ }
      })());
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    received: () => received,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      await Promise.all(conns);
    },
  };
}

Deno.test("fetchPinnedCa returns the pinned CA from the presented chain and sends nothing", async () => {
  const ca = await createClusterCa();
  const m = await issueMemberCertificate(ca, { advertiseHost: HOST, name: "m" });
  const srv = presenting(m.chainPem, m.keyPem);
  try {
    const pem = await fetchPinnedCa(HOST, srv.port, certificateSha256(ca.cert));
    assert.equal(pem, ca.certPem);
    const upper = await fetchPinnedCa(HOST, srv.port, certificateSha256(ca.cert).toUpperCase());
    assert.equal(upper, ca.certPem);
  } finally {
    await srv.close();
  }
  assert.equal(srv.received(), 0, "no application byte may be sent before the CA is verified");
});

Deno.test("fetchPinnedCa: a different CA is refused, naming expected and seen hashes", async () => {
  const ca = await createClusterCa();
  const rogue = await createClusterCa();
  const m = await issueMemberCertificate(rogue, { advertiseHost: HOST, name: "rogue" });
  const srv = presenting(m.chainPem, m.keyPem);
  try {
    const want = certificateSha256(ca.cert);
    await assert.rejects(
      () => fetchPinnedCa(HOST, srv.port, want),
      (e: unknown) => {
        assert.ok(e instanceof CaPinError);
        assert.match(e.message, new RegExp(`pins ${want}`));
        assert.ok(e.message.includes(certificateSha256(rogue.cert)), e.message);
        assert.ok(e.message.includes(certificateSha256(m.cert)), e.message);
        assert.ok(e.message.includes(`${HOST}:${srv.port}`));
        return true;
      },
    );
  } finally {
    await srv.close();
  }
  assert.equal(srv.received(), 0);
});

Deno.test("fetchPinnedCa: a server that sends only its leaf cannot be pinned", async () => {
  const ca = await createClusterCa();
  const m = await issueMemberCertificate(ca, { advertiseHost: HOST, name: "m" });
  const srv = presenting(m.certPem, m.keyPem);
  try {
    await assert.rejects(
      () => fetchPinnedCa(HOST, srv.port, certificateSha256(ca.cert)),
      /CA hash mismatch/,
    );
  } finally {
    await srv.close();
  }
});

Deno.test("fetchPinnedCa: the pinned CA shown beside a leaf it did not sign is refused", async () => {
  const ca = await createClusterCa();
  const rogue = await createClusterCa();
  const m = await issueMemberCertificate(rogue, { advertiseHost: HOST, name: "rogue" });
  // A rogue server replays the real CA certificate (public) after its own leaf.
  const srv = presenting(m.certPem + ca.certPem, m.keyPem);
  try {
    await assert.rejects(
      () => fetchPinnedCa(HOST, srv.port, certificateSha256(ca.cert)),
      /not signed by the pinned CA/,
    );
  } finally {
    await srv.close();
  }
});

Deno.test("fetchPinnedCa: nothing listening is a one-line error naming the address", async () => {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assert.rejects(
    () => fetchPinnedCa(HOST, port, "00".repeat(32), { timeoutMs: 2000 }),
    new RegExp(`fetching the cluster CA from ${HOST}:${port}`),
  );
});
