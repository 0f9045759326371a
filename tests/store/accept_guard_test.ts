// The connection deadlines in front of the store's HTTP server, with the limits shrunk: clients
// that send nothing or half a request header are closed on time while the API keeps answering,
// a connection on which nothing moves is closed, and ordinary requests and streams go through.
import assert from "node:assert/strict";
import { serve } from "../../lib/http/serve.ts";
import { silentLogger } from "../../lib/log.ts";

const LIMITS = {
  firstByteMs: 300,
  headMs: 600,
  idleMs: 1500,
  maxHeadBytes: 4096,
  maxPendingHeads: 10_000,
};

async function closedWithin(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(64);
  const timeout = new Promise<"open">((r) => setTimeout(() => r("open"), ms));
  try {
    for (;;) {
      const n = await Promise.race([conn.read(buf), timeout]);
      if (n === "open") return false;
      if (n === null) return true;
    }
  } catch {
    return true;
  }
}

Deno.test("silent and half-header connections are closed on time; the API keeps answering", async () => {
  const server = await serve({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => new Response("ok"),
    logger: silentLogger,
    limits: LIMITS,
  });
  const url = `http://127.0.0.1:${server.port}/`;
  const conns: Deno.Conn[] = [];
  try {
    const t0 = performance.now();
    for (let i = 0; i < 300; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
      if (i % 3 !== 0) await c.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n"));
      conns.push(c);
    }
    // Meanwhile, ordinary requests are served.
    for (let i = 0; i < 5; i++) assert.equal(await (await fetch(url)).text(), "ok");
    const closed = await Promise.all(conns.map((c) => closedWithin(c, 3000)));
    const took = performance.now() - t0;
    assert.ok(closed.every((x) => x), `${closed.filter((x) => !x).length} still open`);
    assert.ok(took < 3000, `closing took ${took} ms`);
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await server.shutdown();
  }
});

Deno.test("a completed request is answered, and a connection idle past the limit is closed", async () => {
  const server = await serve({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => new Response("ok"),
    logger: silentLogger,
    limits: LIMITS,
  });
  const c = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    // The header arrives in two pieces, the second just before the head deadline.
    await c.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHo"));
    await new Promise((r) => setTimeout(r, 400));
    await c.write(new TextEncoder().encode("st: x\r\n\r\n"));
    const buf = new Uint8Array(512);
    const n = await c.read(buf);
    assert.match(new TextDecoder().decode(buf.subarray(0, n ?? 0)), /^HTTP\/1.1 200/);
    // Keep-alive: the connection stays until nothing has moved for idleMs.
    assert.equal(await closedWithin(c, 800), false);
    assert.equal(await closedWithin(c, 2500), true);
  } finally {
    try {
      c.close();
    } catch { /* closed */ }
    await server.shutdown();
  }
});

Deno.test("a flood of connections stuck before their head closes the oldest, not new clients", async () => {
  const server = await serve({
    hostname: "127.0.0.1",
    port: 0,
    handler: () => new Response("ok"),
    logger: silentLogger,
    limits: { ...LIMITS, firstByteMs: 10_000, headMs: 20_000, maxPendingHeads: 50 },
  });
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
    }
    const closed = await Promise.all(conns.map((c) => closedWithin(c, 1000)));
    assert.equal(closed.slice(0, 150).filter((x) => x).length, 150, "the oldest were closed");
    assert.equal(closed.slice(150).filter((x) => x).length, 0, "the newest 50 wait their turn");
    assert.equal(await (await fetch(`http://127.0.0.1:${server.port}/`)).text(), "ok");
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await server.shutdown();
  }
});
