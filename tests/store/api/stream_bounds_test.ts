// Bounded memory per client stream, with the limits shrunk: a stream whose client does not read
// is cut off (over its byte budget at once, or after sitting at its high-water mark), a watch
// stream holds a bounded number of watchers, and a watcher from an old revision catches up in
// pieces only while the client has room.
import assert from "node:assert/strict";
import { SlowConsumerGuard } from "../../../lib/store/api/json_stream.ts";
import { MvccStateMachine } from "../../../lib/store/state_machine.ts";
import { type WatchOutput, WatchSession } from "../../../lib/store/api/watch_session.ts";

const te = new TextEncoder();
const header = () => ({ clusterId: "1", memberId: "2", raftTerm: "3" });

function guarded(limits: { maxBufferedBytes: number; stallMs: number }, highWater = 100) {
  let cut = "";
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let guard!: SlowConsumerGuard;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      guard = new SlowConsumerGuard(c, highWater, (why) => {
        cut = why;
        guard.stop();
        c.error(new Error(why));
      }, limits);
    },
    pull() {
      guard.drained();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: highWater }));
  const send = (n: number) => {
    controller.enqueue(new Uint8Array(n));
    guard.sent();
  };
  return { stream, send, cut: () => cut, guard };
}

Deno.test("a stream over its byte budget is cut off at once", () => {
  const g = guarded({ maxBufferedBytes: 1000, stallMs: 60_000 });
  for (let i = 0; i < 10; i++) g.send(90);
  assert.equal(g.cut(), "");
  g.send(200);
  assert.match(g.cut(), /more than 1000 bytes unread/);
  g.guard.stop();
});

Deno.test("a stream that sits at its high-water mark unread is cut off; a reader is not", async () => {
  const idle = guarded({ maxBufferedBytes: 10_000, stallMs: 50 });
  idle.send(150);
  await new Promise((r) => setTimeout(r, 120));
  assert.match(idle.cut(), /nothing read for 50 ms/);

  const reading = guarded({ maxBufferedBytes: 10_000, stallMs: 80 });
  const reader = reading.stream.getReader();
  for (let i = 0; i < 6; i++) {
    reading.send(150);
    await new Promise((r) => setTimeout(r, 30));
    await reader.read();
  }
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(reading.cut(), "");
  reading.guard.stop();
});

function put(sm: MvccStateMachine, index: number, key: string, bytes: number) {
  sm.apply(index, {
    op: "txn",
    requestId: `r${index}`,
    compare: [],
    success: [{
      put: { key: te.encode(key), value: new Uint8Array(bytes), lease: "0", prevKv: false },
    }],
    failure: [],
  });
}

const sizeOf = (o: WatchOutput) => o instanceof Uint8Array ? o.length : JSON.stringify(o).length;

Deno.test("a watcher from revision 1 catches up in pieces, only while the client has room", () => {
  const sm = new MvccStateMachine();
  for (let i = 1; i <= 400; i++) put(sm, i, `/h/${i % 50}`, 4096); // ~2.2 MB of events
  const out: WatchOutput[] = [];
  let room = 1; // the client has room for one piece, then reads nothing
  const s = new WatchSession(sm, header, (r) => out.push(r), () => room-- > 0);
  s.handle({ create_request: { key: btoa("/h/"), range_end: btoa("/h0"), start_revision: "1" } });
  const sent = out.reduce((n, o) => n + sizeOf(o), 0);
  assert.ok(out.length === 2, "the created answer and one piece of history");
  assert.ok(sent < 600_000, `a non-reading client was handed ${sent} bytes`);
  room = Infinity; // it reads: the rest follows, every revision exactly once
  s.resume();
  const revs = out.flatMap((o) =>
    o instanceof Uint8Array ? [] : ((o.events ?? []) as { kv: { mod_revision: string } }[])
  ).map((e) => Number(e.kv.mod_revision));
  assert.deepEqual(revs, Array.from({ length: 400 }, (_, i) => i + 2));
  s.close();
});

Deno.test("a watch stream holds at most maxWatchers watchers", () => {
  const sm = new MvccStateMachine();
  const out: WatchOutput[] = [];
  const saved = WatchSession.maxWatchers;
  WatchSession.maxWatchers = 3;
  try {
    const s = new WatchSession(sm, header, (r) => out.push(r));
    for (let i = 0; i < 5; i++) s.handle({ create_request: { key: btoa(`/k${i}`) } });
    assert.equal(s.size, 3);
    const refused = out.filter((o) => !(o instanceof Uint8Array) && o.canceled === true);
    assert.equal(refused.length, 2);
    assert.match(String((refused[0] as { cancel_reason: string }).cancel_reason), /too many/);
    s.close();
  } finally {
    WatchSession.maxWatchers = saved;
  }
});
