// The EtcdClient against twill's API, plus its transport promises: reads fail over, writes are
// never sent twice, errors say what happened.

import assert from "node:assert/strict";
import net from "node:net";
import { EtcdClient, EtcdClientError, prefixEnd, text } from "../../../lib/etcd/client.ts";
import { exerciseClient } from "./client_scenario.ts";
import { withTwill } from "./servers.ts";

Deno.test("the client does everything the agent needs against twill", async () => {
  await withTwill("client-token", async (endpoint) => {
    await exerciseClient(new EtcdClient({ endpoints: [endpoint], token: "client-token" }));
  });
});

Deno.test("a wrong token is refused with 401 and the client says so", async () => {
  await withTwill("right", async (endpoint) => {
    const client = new EtcdClient({ endpoints: [endpoint], token: "wrong" });
    await assert.rejects(
      client.put("k", "v"),
      (e: unknown) => e instanceof EtcdClientError && e.httpStatus === 401 && e.grpcCode === 16,
    );
  });
});

Deno.test("reads fail over past a dead endpoint; a refused write moves on too", async () => {
  await withTwill("t", async (endpoint) => {
    // Nothing listens on 127.0.4.2 (our loopback range): the connection is refused.
    const client = new EtcdClient({ endpoints: ["127.0.4.2:8473", endpoint], token: "t" });
    const put = await client.put("k", "v");
    assert.equal(put.header.revision, "2");
    const got = await client.range("k");
    assert.equal(text(got.kvs[0].value), "v");
  });
});

Deno.test(
  "a write whose connection breaks after sending is not re-sent and reports an unknown outcome",
  async () => {
    // The server answers reads, and drops the connection as soon as a put arrives. The read
    // first leaves a pooled keep-alive connection: that is when Deno's fetch re-sends a request
    // with a plain body after a reset (denoland/deno#35610); the client's writes must not be.
    let puts = 0;
    const server = net.createServer((socket) => {
      socket.on("data", (chunk: Uint8Array) => {
        const req = new TextDecoder().decode(chunk);
        if (req.includes("POST /v3/kv/range")) {
          const body = '{"header":{"revision":"1"}}';
          socket.write(
            `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
          );
          return;
        }
        puts += (req.match(/POST \/v3\/kv\/put/g) ?? []).length;
        socket.destroy();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.4.3", resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const client = new EtcdClient({ endpoints: [`127.0.4.3:${port}`], requestTimeoutMs: 5000 });
      assert.equal((await client.range("k")).header.revision, "1");
      await assert.rejects(
        client.put("k", "v"),
        (e: unknown) =>
          e instanceof EtcdClientError && e.unknownOutcome && /may or may not/.test(e.message),
      );
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(puts, 1, "the write reached the server exactly once");
    } finally {
      await new Promise((r) => server.close(r));
    }
  },
);

Deno.test("no reachable endpoint gives one clear unavailable error", async () => {
  const client = new EtcdClient({ endpoints: ["127.0.4.2:8473", "127.0.4.2:8474"] });
  await assert.rejects(
    client.range("k"),
    (e: unknown) =>
      e instanceof EtcdClientError && e.grpcCode === 14 && /no endpoint reachable/.test(e.message),
  );
});

Deno.test("prefixEnd is etcd's GetPrefixRangeEnd", () => {
  assert.deepEqual([...prefixEnd("a")], [98]);
  assert.deepEqual([...prefixEnd(new Uint8Array([1, 255]))], [2]);
  assert.deepEqual([...prefixEnd(new Uint8Array([255, 255]))], [0]);
});
