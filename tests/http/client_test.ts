// The one HTTP client and serve(): the scheme and credential every store call carries, the
// constant-time credential check the servers use, and TLS verified against the given CA only.
import assert from "node:assert/strict";
import { HttpClient } from "../../lib/http/client.ts";
import { bearerHeader, bearerMatches } from "../../lib/http/bearer.ts";
import { serve } from "../../lib/http/serve.ts";
import { createClusterCa } from "../../lib/pki/ca.ts";
import { issueMemberCertificate } from "../../lib/pki/member_cert.ts";

Deno.test("addresses get the store's scheme; a URL keeps its own", () => {
  const c = new HttpClient();
  assert.equal(c.url("10.0.0.1:8473", "/v3/kv/range"), "http://10.0.0.1:8473/v3/kv/range");
  assert.equal(c.url("[fd00::1]:8473", "/raft/join"), "http://[fd00::1]:8473/raft/join");
  assert.equal(c.baseUrl("https://etcd.example:2379/"), "https://etcd.example:2379");
  assert.equal(c.baseUrl("localhost:2379"), "http://localhost:2379");
});

Deno.test("the credential and fixed headers go on every request; none without a token", () => {
  assert.deepEqual(new HttpClient({ token: "t0k", headers: { "x-a": "1" } }).headers(), {
    "x-a": "1",
    authorization: "Bearer t0k",
  });
  assert.deepEqual(new HttpClient({ token: "" }).headers(), {});
});

Deno.test("bearerMatches accepts only the exact credential", () => {
  assert.equal(bearerMatches(bearerHeader("s3cret"), "s3cret"), true);
  assert.equal(bearerMatches("Bearer s3cre", "s3cret"), false);
  assert.equal(bearerMatches("Bearer s3cretX", "s3cret"), false);
  assert.equal(bearerMatches("bearer s3cret", "s3cret"), false);
  assert.equal(bearerMatches(undefined, "s3cret"), false);
  assert.equal(bearerMatches("Bearer ", ""), false, "an empty token matches nothing");
});

Deno.test("TLS: https to a server of the given CA, raw connections upgraded; another CA is refused", async () => {
  const ca = await createClusterCa();
  const other = await createClusterCa();
  const leaf = await issueMemberCertificate(ca, { advertiseHost: "127.0.0.1", name: "m1" });
  const ac = new AbortController();
  const server = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      cert: leaf.chainPem,
      key: leaf.keyPem,
      signal: ac.signal,
      onListen() {},
    },
    (req) => new Response(req.headers.get("authorization") ?? "none"),
  );
  const port = server.addr.port;
  const good = new HttpClient({ token: "t0k", tls: { caCerts: [ca.certPem] } });
  const bad = new HttpClient({ token: "t0k", tls: { caCerts: [other.certPem] } });
  try {
    assert.equal(good.url("127.0.0.1:1", "/x"), "https://127.0.0.1:1/x");
    const res = await good.request(`127.0.0.1:${port}`, "/v3/kv/range", { body: "{}" });
    assert.equal(await res.text(), "Bearer t0k");
    await assert.rejects(() => bad.request(`127.0.0.1:${port}`, "/v3/kv/range", { body: "{}" }));
    const conn = await good.dial("127.0.0.1", port);
    await conn.write(
      new TextEncoder().encode("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
    );
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1\.1 200/);
    conn.close();
    assert.throws(() => new HttpClient({ tls: { caCerts: [] } }), /CA certificate/);
  } finally {
    good.close();
    bad.close();
    ac.abort();
    await server.finished;
  }
});

Deno.test("serve() answers through the client with the credential; a handler error is a 500", async () => {
  const errors: string[] = [];
  const server = await serve({
    hostname: "127.0.0.1",
    port: 0,
    logger: (_level, event) => errors.push(event),
    handler: (req) => {
      if (new URL(req.url).pathname === "/boom") throw new Error("boom");
      return Response.json({ auth: req.headers.get("authorization"), body: null });
    },
  });
  try {
    const c = new HttpClient({ token: "t0k", timeoutMs: 2000 });
    const address = `127.0.0.1:${server.port}`;
    const ok = await c.postJson(address, "/x", { a: 1 });
    assert.equal(ok.status, 200);
    assert.equal(JSON.parse(ok.text).auth, "Bearer t0k");
    const boom = await c.postJson(address, "/boom", {});
    assert.equal(boom.status, 500);
    assert.deepEqual(errors, ["http_handler_failed"]);
    const conn = await c.dial("127.0.0.1", server.port);
    conn.close();
  } finally {
    await server.shutdown();
  }
});

Deno.test("serve() on a port in use rejects with one line naming the address", async () => {
  const first = await serve({
    hostname: "127.0.0.1",
    port: 0,
    logger: () => {},
    handler: () => new Response("ok"),
  });
  try {
    await assert.rejects(
      serve({
        hostname: "127.0.0.1",
        port: first.port,
        logger: () => {},
        handler: () => new Response("ok"),
      }),
      new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}`),
    );
  } finally {
    await first.shutdown();
  }
});
