// The peer transport against the real peer routes on a loopback socket: messages go over one
// long-lived stream per peer, in order; a wrong token or cluster never delivers anything; a
// member that was removed is told so.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { createPeerApp, type PeerHandler } from "../../lib/store/member/peer_routes.ts";
import { FROM_HEADER, HttpTransport } from "../../lib/store/member/transport.ts";
import { bearerMatches } from "../../lib/http/bearer.ts";
import { encodeFrame, parseFrame } from "../../lib/store/member/peer_stream.ts";
import { newMessage } from "../../lib/raft/util.ts";
import type { Message, NodeId } from "../../lib/raft/types.ts";

const TOKEN = "transport-test-token";

interface Peer {
  address: string;
  received: Message[];
  streams: WebSocket[];
  removed: Set<NodeId>;
  stop(): Promise<void>;
}

function startPeer(): Promise<Peer> {
  const received: Message[] = [];
  const streams: WebSocket[] = [];
  const removed = new Set<NodeId>();
  const handler: PeerHandler = {
    clusterId: () => "c1",
    // The test's one credential speaks for whichever member the sender header names: these tests
    // are about the transport; the sender checks are tested in trust_test.ts.
    authenticate: (req) =>
      bearerMatches(req.headers.get("authorization") ?? undefined, TOKEN)
        ? {
          hash: "",
          kind: "member",
          nodeName: "peer",
          memberId: Number(req.headers.get(FROM_HEADER)),
        }
        : null,
    onRevoked: () => () => {},
    receive: (_from, msgs) => {
      received.push(...msgs);
      return undefined;
    },
    isRemoved: (from) => removed.has(from),
    streamOpened: (s) => streams.push(s),
    join: () => Promise.reject(new Error("not in this test")),
    status: () => {
      throw new Error("not in this test");
    },
    members: () => Promise.reject(new Error("not in this test")),
    keepAlive: () => Promise.reject(new Error("not in this test")),
    timeToLive: () => Promise.reject(new Error("not in this test")),
    sign: () => Promise.reject(new Error("not in this test")),
    registerAdmin: () => Promise.reject(new Error("not in this test")),
    removeNode: () => Promise.reject(new Error("not in this test")),
  };
  const app = new Hono();
  app.route("/raft", createPeerApp(handler));
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) =>
        resolve({
          address: `127.0.0.1:${port}`,
          received,
          streams,
          removed,
          async stop() {
            for (const s of streams) s.close();
            await server.shutdown();
          },
        }),
    }, app.fetch);
  });
}

function transport(
  selfId: NodeId,
  opts: { token?: string; clusterId?: string; stallMs?: number; maxBufferedBytes?: number } = {},
) {
  const events = { unreachable: 0, removedBy: [] as NodeId[] };
  const t = new HttpTransport({
    selfId,
    clusterId: opts.clusterId ?? "c1",
    token: opts.token ?? TOKEN,
    onUnreachable: () => events.unreachable++,
    onSnapshotStatus: () => {},
    onRemoved: (by) => events.removedBy.push(by),
    retryMs: 10,
    stallMs: opts.stallMs,
    maxBufferedBytes: opts.maxBufferedBytes,
  });
  return { t, events };
}

const heartbeat = (from: NodeId, to: NodeId, commit: number) =>
  newMessage({ type: "MsgHeartbeat", from, to, term: 1, commit });

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("messages to a peer travel in order over one long-lived stream", async () => {
  const peer = await startPeer();
  const { t, events } = transport(2);
  try {
    t.setPeer(1, peer.address);
    for (let i = 1; i <= 200; i++) {
      t.send([heartbeat(2, 1, i)]);
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await until(() => peer.received.length === 200, "200 messages");
    assert.deepEqual(
      peer.received.map((m) => m.commit),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    assert.equal(peer.streams.length, 1, "one stream for every batch");
    assert.equal(events.unreachable, 0);
  } finally {
    t.close();
    await peer.stop();
  }
});

Deno.test("a wrong token or cluster delivers nothing and reports the peer unreachable", async () => {
  const peer = await startPeer();
  const wrongToken = transport(2, { token: "not-the-token" });
  const wrongCluster = transport(3, { clusterId: "c2" });
  try {
    for (const { t } of [wrongToken, wrongCluster]) {
      t.setPeer(1, peer.address);
      t.send([heartbeat(2, 1, 1)]);
    }
    await until(
      () => wrongToken.events.unreachable > 0 && wrongCluster.events.unreachable > 0,
      "both to fail",
    );
    assert.equal(peer.received.length, 0);
    assert.equal(peer.streams.length, 0);
  } finally {
    wrongToken.t.close();
    wrongCluster.t.close();
    await peer.stop();
  }
});

Deno.test("a removed member is told so, on an open stream and when it opens a new one", async () => {
  const peer = await startPeer();
  const { t, events } = transport(4);
  try {
    t.setPeer(1, peer.address);
    t.send([heartbeat(4, 1, 1)]);
    await until(() => peer.received.length === 1, "the first message");
    peer.removed.add(4);
    t.send([heartbeat(4, 1, 2)]);
    await until(() => events.removedBy.length > 0, "the removal notice on the open stream");
    assert.equal(peer.received.length, 1, "a removed member's message was delivered");
    // The stream is closed; the next attempt is refused at the handshake (410).
    const before = events.removedBy.length;
    await new Promise((r) => setTimeout(r, 20));
    t.send([heartbeat(4, 1, 3)]);
    await until(() => events.removedBy.length > before, "the refusal of a new stream");
    assert.deepEqual([...new Set(events.removedBy)], [1]);
    assert.equal(peer.received.length, 1);
  } finally {
    t.close();
    await peer.stop();
  }
});

Deno.test("stream frames round-trip at every length encoding, and a partial frame waits for more", () => {
  for (const n of [0, 1, 125, 126, 127, 65535, 65536, 200_000]) {
    const payload = new Uint8Array(n).map((_, i) => (i * 7) & 0xff);
    const frame = encodeFrame(0x1, payload);
    assert.equal(frame[0], 0x81, "FIN and text opcode");
    assert.ok((frame[1] & 0x80) !== 0, "client frames are masked");
    const got = parseFrame(frame);
    assert.ok(got, `length ${n}`);
    assert.equal(got.size, frame.length);
    assert.equal(got.opcode, 0x1);
    assert.deepEqual(got.payload, payload);
    assert.equal(parseFrame(frame.subarray(0, frame.length - 1)), null);
  }
  // Two frames back to back come out one at a time.
  const two = new Uint8Array([
    ...encodeFrame(0x1, new Uint8Array([1])),
    ...encodeFrame(0x9, new Uint8Array([2])),
  ]);
  const first = parseFrame(two)!;
  assert.deepEqual([first.opcode, [...first.payload]], [0x1, [1]]);
  const second = parseFrame(two.subarray(first.size))!;
  assert.deepEqual([second.opcode, [...second.payload]], [0x9, [2]]);
});

Deno.test("a stream whose peer stops reading is replaced instead of waiting for TCP to give up", async () => {
  // A peer that completes the handshake and then never reads again (as behind a partition).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      const buf = new Uint8Array(4096);
      const n = await conn.read(buf);
      const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
      const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? "";
      const digest = await crypto.subtle.digest(
        "SHA-1",
        new TextEncoder().encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
      );
      const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
      await conn.write(new TextEncoder().encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      ));
    }
  })().catch(() => {});
  const { t, events } = transport(2, { stallMs: 300, maxBufferedBytes: 1 << 30 });
  try {
    t.setPeer(1, `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`);
    const big = newMessage({
      type: "MsgApp",
      from: 2,
      to: 1,
      term: 1,
      entries: [{ term: 1, index: 1, type: "normal", data: new Uint8Array(256 * 1024) }],
    });
    const end = Date.now() + 8000;
    while (conns.length < 2 && Date.now() < end) {
      t.send([big]);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(conns.length >= 2, "the stalled stream was never replaced");
    assert.ok(events.unreachable > 0, "Raft was not told the peer is unreachable");
  } finally {
    t.close();
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await accepting;
  }
});
