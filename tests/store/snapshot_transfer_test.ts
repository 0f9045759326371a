// One snapshot transfer per follower at a time: a 50 MB snapshot to a peer that reads slowly
// takes longer than Raft waits for its report (two election timeouts), and Raft asks for it again
// every time it gives up. The transport keeps exactly one transfer running; the peer gets the
// whole snapshot and the outcome is reported once.
import assert from "node:assert/strict";
import { HttpTransport } from "../../lib/store/member/transport.ts";
import { decodeMessage, type WireMessage } from "../../lib/store/member/message_codec.ts";
import { newMessage } from "../../lib/raft/util.ts";

const SNAPSHOT_BYTES = 50 << 20;
/** Bytes per second the slow peer reads. */
const READ_RATE = 12 << 20;

interface SlowPeer {
  address: string;
  started: number;
  maxInFlight: number;
  installed: number[];
  stop(): Promise<void>;
}

function startSlowPeer(): Promise<SlowPeer> {
  let inFlight = 0;
  const sockets: WebSocket[] = [];
  const peer = { started: 0, maxInFlight: 0, installed: [] as number[] };
  const slowRead = async (req: Request): Promise<string> => {
    const dec = new TextDecoder();
    const parts: string[] = [];
    for await (const c of req.body!) {
      parts.push(dec.decode(c, { stream: true }));
      await new Promise((r) => setTimeout(r, (c.length / READ_RATE) * 1000));
    }
    return parts.join("") + dec.decode();
  };
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) =>
        resolve({
          address: `127.0.0.1:${port}`,
          get started() {
            return peer.started;
          },
          get maxInFlight() {
            return peer.maxInFlight;
          },
          installed: peer.installed,
          async stop() {
            for (const s of sockets) s.close();
            await server.shutdown();
          },
        }),
    }, async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/raft/stream") {
        const { socket, response } = Deno.upgradeWebSocket(req);
        sockets.push(socket);
        return response;
      }
      peer.started++;
      peer.maxInFlight = Math.max(peer.maxInFlight, ++inFlight);
      try {
        const body = JSON.parse(await slowRead(req)) as { msgs: WireMessage[] };
        const m = decodeMessage(body.msgs[0]);
        assert.equal(m.snapshot?.data.length, SNAPSHOT_BYTES);
        peer.installed.push(m.snapshot!.metadata.index);
        return new Response(null, { status: 204 });
      } finally {
        inFlight--;
      }
    });
  });
}

Deno.test("a 50 MB snapshot to a slow reader is sent once, not again every time Raft asks", async () => {
  const peer = await startSlowPeer();
  const reports: boolean[] = [];
  const transport = new HttpTransport({
    selfId: 1,
    clusterId: "c1",
    token: "t",
    onUnreachable: () => {},
    onSnapshotStatus: (_id, ok) => reports.push(ok),
    snapshotTimeoutMs: 60_000,
  });
  const data = new Uint8Array(SNAPSHOT_BYTES);
  for (let i = 0; i < data.length; i += 4096) data[i] = i & 0xff;
  const snap = newMessage({
    type: "MsgSnap",
    from: 1,
    to: 2,
    term: 3,
    snapshot: {
      data,
      metadata: { index: 500, term: 3, confState: { voters: [1, 2], learners: [] } },
    },
  });
  try {
    transport.setPeer(2, peer.address);
    const t0 = Date.now();
    // What the leader's Raft does while no outcome is reported: ask again after 2 × 7 ticks.
    while (reports.length === 0 && Date.now() - t0 < 50_000) {
      transport.send([snap]);
      await new Promise((r) => setTimeout(r, 1400));
    }
    console.log(`transfer took ${Date.now() - t0} ms, ${peer.started} started`);
    assert.ok(Date.now() - t0 > 2800, "the reader was slow enough for Raft to ask again");
    assert.deepEqual(reports, [true]);
    assert.equal(peer.maxInFlight, 1);
    assert.equal(peer.started, 1);
    assert.deepEqual(peer.installed, [500]);
  } finally {
    transport.close();
    await peer.stop();
  }
});
