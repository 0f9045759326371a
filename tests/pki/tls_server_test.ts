// Deno 2.9.6 TLS facts the trust design relies on, each proved here on 127.0.0.1 with a random
// free port, plus certificate renewal without a restart (lib/http/tls_server.ts).
import assert from "node:assert/strict";
import { connect } from "node:tls";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { type ClusterCa, createClusterCa } from "../../lib/pki/ca.ts";
import { issueMemberCertificate, type MemberCertificate } from "../../lib/pki/member_cert.ts";
import { serveTls, type TlsServer } from "../../lib/http/tls_server.ts";

const HOST = "127.0.0.1";

async function member(ca: ClusterCa, opts: { lifetimeMs?: number; now?: number } = {}) {
  return await issueMemberCertificate(ca, { advertiseHost: "10.9.8.7", name: "m", ...opts });
}

/** Serial as node:tls reports it: lower-case hex without leading zeros. */
function serialOf(m: MemberCertificate): string {
  return BigInt(`0x${m.cert.serialNumber}`).toString(16);
}

/** The message of an error and of its causes (fetch puts the TLS reason in `cause`). */
function errorChain(e: unknown): string {
  const parts: string[] = [];
  for (let c = e; c instanceof Error && parts.length < 5; c = c.cause) parts.push(c.message);
  return parts.join(": ");
}

async function rejectsWith(p: () => Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.match(errorChain(e), re);
    return true;
  });
}

/**
 * Waits until a fresh connection completes a handshake. A connection that arrives in the
 * milliseconds while the old generation's listener closes can be reset during TCP connect
 * (measured: at most one or two, within ~10 ms); this bounds that window at one second.
 */
async function settle(port: number): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    try {
      await servedSerial(port);
      return;
    } catch (e) {
      assert.match(String(e), /ECONNRESET/);
      assert.ok(Date.now() - t0 < 1000, "the listener swap took longer than a second");
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

function hello(text: string): Deno.ServeHandler {
  return () => new Response(text);
}

async function withServer(
  m: MemberCertificate,
  handler: Deno.ServeHandler,
  body: (s: TlsServer) => Promise<void>,
): Promise<void> {
  const s = serveTls({ hostname: HOST, port: 0, handler, certPem: m.chainPem, keyPem: m.keyPem });
  try {
    await body(s);
  } finally {
    await s.shutdown();
  }
}

async function getText(port: number, caPem: string): Promise<string> {
  const client = Deno.createHttpClient({ caCerts: [caPem] });
  try {
    const r = await fetch(`https://${HOST}:${port}/`, { client });
    return await r.text();
  } finally {
    client.close();
  }
}

/** The serial number of the certificate a fresh connection is shown. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: HOST, port, rejectUnauthorized: false });
    sock.once("secureConnect", () => {
      const serial = sock.getPeerCertificate().serialNumber;
      sock.destroy();
      resolve(BigInt(`0x${serial}`).toString(16));
    });
    sock.once("error", reject);
  });
}

Deno.test("createHttpClient({caCerts}) accepts the member cert at 127.0.0.1 (an IP SAN)", async () => {
  const ca = await createClusterCa();
  await withServer(await member(ca), hello("ok"), async (s) => {
    assert.equal(await getText(s.port, ca.certPem), "ok");
  });
});

Deno.test("Deno.connectTls({caCerts}) verifies the member; another CA is refused", async () => {
  const ca = await createClusterCa();
  const other = await createClusterCa();
  await withServer(await member(ca), hello("ok"), async (s) => {
    const conn = await Deno.connectTls({ hostname: HOST, port: s.port, caCerts: [ca.certPem] });
    const hs = await conn.handshake();
    assert.equal(typeof hs, "object");
    conn.close();
    const bad = await Deno.connectTls({ hostname: HOST, port: s.port, caCerts: [other.certPem] });
    await rejectsWith(() => bad.handshake(), /certificate|UnknownIssuer/i);
    bad.close();
  });
});

Deno.test("a client trusting another CA, or none, is refused", async () => {
  const ca = await createClusterCa();
  const other = await createClusterCa();
  await withServer(await member(ca), hello("ok"), async (s) => {
    await rejectsWith(() => getText(s.port, other.certPem), /certificate|UnknownIssuer/i);
    await rejectsWith(
      () => fetch(`https://${HOST}:${s.port}/`).then((r) => r.text()),
      /certificate|UnknownIssuer/i,
    );
  });
});

Deno.test("an expired member certificate is refused by a verifying client", async () => {
  const ca = await createClusterCa();
  const past = Date.now() - 3600_000;
  const expired = await member(ca, { lifetimeMs: 60_000, now: past });
  await withServer(expired, hello("ok"), async (s) => {
    await rejectsWith(() => getText(s.port, ca.certPem), /expired|NotValidYet|Expired/i);
  });
});

Deno.test("Deno.serve with cert = leaf+CA sends both: node:tls sees the CA as issuer", async () => {
  const ca = await createClusterCa();
  const m = await member(ca);
  await withServer(m, hello("ok"), async (s) => {
    const chain = await new Promise<{ leaf: string; issuer: string | undefined }>((res, rej) => {
      const sock = connect({ host: HOST, port: s.port, rejectUnauthorized: false });
      sock.once("secureConnect", () => {
        const pc = sock.getPeerCertificate(true);
        sock.destroy();
        res({
          leaf: Buffer.from(pc.raw).toString("base64"),
          issuer: pc.issuerCertificate?.raw &&
            Buffer.from(pc.issuerCertificate.raw).toString("base64"),
        });
      });
      sock.once("error", rej);
    });
    assert.equal(chain.leaf, Buffer.from(m.cert.rawData).toString("base64"));
    assert.equal(chain.issuer, Buffer.from(ca.cert.rawData).toString("base64"));
  });
});

Deno.test("openssl s_client -CAfile ca.crt -verify_return_error succeeds; another CA fails", async () => {
  const ca = await createClusterCa();
  const other = await createClusterCa();
  const dir = await Deno.makeTempDir({ prefix: "twill-pki-openssl-" });
  try {
    await Deno.writeTextFile(join(dir, "ca.crt"), ca.certPem);
    await Deno.writeTextFile(join(dir, "other.crt"), other.certPem);
    await withServer(await member(ca), hello("ok"), async (s) => {
      const run = async (caFile: string) => {
        const out = await new Deno.Command("openssl", {
          args: [
            "s_client",
            "-CAfile",
            join(dir, caFile),
            "-verify_return_error",
            "-connect",
            `${HOST}:${s.port}`,
          ],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        return { code: out.code, text: new TextDecoder().decode(out.stdout) };
      };
      const good = await run("ca.crt");
      assert.equal(good.code, 0);
      assert.match(good.text, /Verify return code: 0 \(ok\)/);
      const bad = await run("other.crt");
      assert.notEqual(bad.code, 0);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a plain-HTTP request to the TLS port gets no HTTP answer", async () => {
  const ca = await createClusterCa();
  await withServer(await member(ca), hello("ok"), async (s) => {
    const conn = await Deno.connect({ hostname: HOST, port: s.port });
    try {
      await conn.write(new TextEncoder().encode(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`));
      const buf = new Uint8Array(4096);
      const got: number[] = [];
      const deadline = setTimeout(() => conn.close(), 2000);
      try {
        for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
          got.push(...buf.subarray(0, n));
        }
      } catch (e) {
        if (!(e instanceof Deno.errors.BadResource || e instanceof Deno.errors.ConnectionReset)) {
          throw e;
        }
      } finally {
        clearTimeout(deadline);
      }
      const text = new TextDecoder().decode(new Uint8Array(got));
      assert.ok(!text.includes("HTTP/"), `unexpected HTTP answer: ${JSON.stringify(text)}`);
      assert.ok(!text.includes("ok"));
    } finally {
      try {
        conn.close();
      } catch { /* already closed by the deadline */ }
    }
  });
});

Deno.test("replaceCertificate: new connections get the new cert; a stream in flight finishes", async () => {
  const ca = await createClusterCa();
  const first = await member(ca);
  const second = await member(ca);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const handler: Deno.ServeHandler = (req) => {
    if (new URL(req.url).pathname !== "/stream") return new Response("plain");
    const body = new ReadableStream<Uint8Array>({
      async start(c) {
        c.enqueue(new TextEncoder().encode("before;"));
        await gate;
        c.enqueue(new TextEncoder().encode("after"));
        c.close();
      },
    });
    return new Response(body);
  };
  await withServer(first, handler, async (s) => {
    assert.equal(await servedSerial(s.port), serialOf(first));
    const client = Deno.createHttpClient({ caCerts: [ca.certPem] });
    try {
      const res = await fetch(`https://${HOST}:${s.port}/stream`, { client });
      const reader = res.body!.getReader();
      assert.equal(new TextDecoder().decode((await reader.read()).value), "before;");
      await s.replaceCertificate(second.chainPem, second.keyPem);
      await settle(s.port);
      for (let i = 0; i < 5; i++) {
        assert.equal(await servedSerial(s.port), serialOf(second));
        assert.equal(await getText(s.port, ca.certPem), "plain");
      }
      release();
      let rest = "";
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        rest += new TextDecoder().decode(r.value);
      }
      assert.equal(rest, "after", "the stream on the old generation finished intact");
    } finally {
      release();
      client.close();
    }
  });
});

Deno.test("replaceCertificate under load: no request fails once sent, across ten renewals", async () => {
  const ca = await createClusterCa();
  const certs = await Promise.all(Array.from({ length: 11 }, () => member(ca)));
  await withServer(certs[0], hello("ok"), async (s) => {
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const worker = async () => {
      while (!stop) {
        // A new client each time forces a new connection, so the swaps meet handshakes.
        try {
          assert.equal(await getText(s.port, ca.certPem), "ok");
          ok++;
        } catch (e) {
          failures.push(errorChain(e));
        }
      }
    };
    const workers = Array.from({ length: 4 }, worker);
    for (const c of certs.slice(1)) {
      await new Promise((r) => setTimeout(r, 40));
      await s.replaceCertificate(c.chainPem, c.keyPem);
    }
    await new Promise((r) => setTimeout(r, 40));
    stop = true;
    await Promise.all(workers);
    // The only failures allowed are connections reset at the swap instant, before any request
    // byte was sent (hyper's "client error (Connect)"), which a client may safely retry.
    for (const f of failures) assert.match(f, /client error \(Connect\).*reset/i);
    assert.ok(failures.length <= 10, `${failures.length} connect resets in ten renewals`);
    assert.ok(ok > 20, `only ${ok} requests completed`);
    await settle(s.port);
    assert.equal(await servedSerial(s.port), serialOf(certs[10]));
  });
});

Deno.test("replaceCertificate with a bad key fails and the old certificate keeps serving", async () => {
  const ca = await createClusterCa();
  const m = await member(ca);
  await withServer(m, hello("ok"), async (s) => {
    await assert.rejects(() => s.replaceCertificate(m.chainPem, "not a key"));
    assert.equal(await getText(s.port, ca.certPem), "ok");
    assert.equal(await servedSerial(s.port), serialOf(m));
  });
});

Deno.test("serveTls refuses a port another listener holds, even though it binds with reusePort", async () => {
  const ca = await createClusterCa();
  const m = await member(ca);
  await withServer(m, hello("ok"), async (s) => {
    assert.throws(
      () =>
        serveTls({
          hostname: HOST,
          port: s.port,
          handler: hello("intruder"),
          certPem: m.chainPem,
          keyPem: m.keyPem,
        }),
      Deno.errors.AddrInUse,
    );
    for (let i = 0; i < 5; i++) assert.equal(await getText(s.port, ca.certPem), "ok");
  });
});

Deno.test("shutdown: finished resolves and the port refuses connections", async () => {
  const ca = await createClusterCa();
  const m = await member(ca);
  const s = serveTls({
    hostname: HOST,
    port: 0,
    handler: hello("ok"),
    certPem: m.chainPem,
    keyPem: m.keyPem,
  });
  await s.replaceCertificate(m.chainPem, m.keyPem);
  await s.shutdown();
  await s.finished;
  await assert.rejects(
    () => Deno.connect({ hostname: HOST, port: s.port }),
    Deno.errors.ConnectionRefused,
  );
  await assert.rejects(() => s.replaceCertificate(m.chainPem, m.keyPem), /shut down/);
});
