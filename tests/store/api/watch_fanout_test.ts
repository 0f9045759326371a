// Watch fan-out: a live event is encoded once per revision and shape, and every watcher of that
// shape (in any session) is handed the very same line; watchers that differ in watch id,
// prev_kv or the events they select get their own, correct line.
import assert from "node:assert/strict";
import { MvccStateMachine } from "../../../lib/store/state_machine.ts";
import {
  encodeResultLine,
  type WatchOutput,
  WatchSession,
} from "../../../lib/store/api/watch_session.ts";
import type { JsonObject } from "../../../lib/store/api/json_codec.ts";

const te = new TextEncoder();
const td = new TextDecoder();
const b64 = (s: string) => btoa(s);
const header = () => ({ clusterId: "1", memberId: "2", raftTerm: "3" });

function session(sm: MvccStateMachine) {
  const out: WatchOutput[] = [];
  const s = new WatchSession(sm, header, (r) => out.push(r));
  return { s, out };
}

const lineOf = (o: WatchOutput) =>
  JSON.parse(td.decode(o instanceof Uint8Array ? o : encodeResultLine(o))).result as JsonObject;

Deno.test("watchers of one shape share one encoded line; other shapes get their own", () => {
  const sm = new MvccStateMachine();
  const a = session(sm);
  const b = session(sm);
  const c = session(sm);
  for (const x of [a, b]) {
    x.s.handle({ create_request: { key: b64("/p/"), range_end: b64("/p0") } });
  }
  c.s.handle({ create_request: { key: b64("/p/"), range_end: b64("/p0"), prev_kv: true } });
  c.s.handle({ create_request: { key: b64("/p/b"), watch_id: "7" } });
  for (const x of [a, b, c]) x.out.length = 0; // the "created" answers
  sm.apply(1, {
    op: "txn",
    requestId: "t1",
    compare: [],
    success: [
      { put: { key: te.encode("/p/a"), value: te.encode("1"), lease: "0", prevKv: false } },
      { put: { key: te.encode("/p/b"), value: te.encode("2"), lease: "0", prevKv: false } },
    ],
    failure: [],
  });
  assert.equal(a.out.length, 1);
  assert.ok(a.out[0] instanceof Uint8Array);
  assert.equal(a.out[0], b.out[0], "the same buffer, not an equal copy");
  const shared = lineOf(a.out[0]);
  assert.equal((shared.header as JsonObject).revision, "2");
  assert.equal(shared.watch_id, undefined);
  assert.deepEqual(
    (shared.events as { kv: { key: string } }[]).map((e) => atob(e.kv.key)),
    ["/p/a", "/p/b"],
  );
  // Session c: its prev_kv watcher (id 0) and its watcher 7 of one key, each its own line.
  assert.equal(c.out.length, 2);
  assert.notEqual(c.out[0], a.out[0]);
  const only = c.out.map(lineOf).find((r) => r.watch_id === "7")!;
  assert.deepEqual((only.events as { kv: { key: string } }[]).map((e) => atob(e.kv.key)), [
    "/p/b",
  ]);
  // A put that replaces a value: prev_kv appears only for the watcher that asked for it.
  for (const x of [a, b, c]) x.out.length = 0;
  sm.apply(2, {
    op: "put",
    requestId: "p2",
    key: te.encode("/p/a"),
    value: te.encode("3"),
    lease: "0",
    prevKv: false,
  });
  assert.equal(a.out[0], b.out[0]);
  const plain = lineOf(a.out[0]).events as { prev_kv?: unknown }[];
  const withPrev = lineOf(c.out[0]).events as { prev_kv?: { value: string } }[];
  assert.equal(plain[0].prev_kv, undefined);
  assert.equal(atob(withPrev[0].prev_kv!.value), "1");
  for (const x of [a, b, c]) x.s.close();
});
