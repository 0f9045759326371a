// The API server's own promises (beyond matching etcd): the token guards everything, bad input
// never crashes it, "unavailable" is reported honestly, and watches are ordered, unique,
// resumable, cleaned up, and survive a snapshot restore underneath them.

import assert from "node:assert/strict";
import { createApiApp } from "../../../lib/store/api/app.ts";
import { type Command, type Kv, StoreError } from "../../../lib/store/kv.ts";
import { LocalKv } from "../../../lib/store/local_kv.ts";
import { MvccStateMachine } from "../../../lib/store/state_machine.ts";

const TOKEN = "api-test-token";
const auth = { authorization: `Bearer ${TOKEN}` };
const te = new TextEncoder();
const b64 = (s: string) => btoa(s);

type Json = Record<string, unknown>;

function setup(
  kv: Kv = new LocalKv({ expiryCheckMs: 0 }),
  progressMs = 600_000,
) {
  const app = createApiApp(kv, { token: TOKEN, progressNotifyMs: progressMs });
  const post = async (
    path: string,
    body: unknown,
    headers: Record<string, string> = auth,
  ): Promise<Response> =>
    await app.request(path, {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  return { app, kv, post };
}

/** Reads newline-delimited results from a streaming response until `enough` or 3 s. */
async function readStream(res: Response, enough: (msgs: Json[]) => boolean): Promise<Json[]> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  const msgs: Json[] = [];
  let buf = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), 3000));
  try {
    while (!enough(msgs)) {
      const next = await Promise.race([reader.read(), timeout]);
      if (next === "timeout" || next.done) break;
      buf += dec.decode(next.value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) msgs.push(JSON.parse(line) as Json);
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return msgs;
}

const results = (msgs: Json[]) => msgs.map((m) => m.result as Json);
const eventsOf = (msgs: Json[]) =>
  results(msgs).flatMap((r) => (r.events as Json[] | undefined) ?? []);
const modRevs = (events: Json[]) => events.map((e) => Number((e.kv as Json).mod_revision));

Deno.test("without the right token nothing is changed or revealed", async () => {
  const { post, kv } = setup();
  await post("/v3/kv/put", { key: b64("secret"), value: b64("v") });
  const before = kv.sm.revision;
  for (
    const headers of [
      {} as Record<string, string>,
      { authorization: "Bearer wrong" },
      { authorization: TOKEN },
      { authorization: `Basic ${TOKEN}` },
    ]
  ) {
    const put = await post("/v3/kv/put", { key: b64("x"), value: b64("y") }, headers);
    assert.equal(put.status, 401);
    const range = await post("/v3/kv/range", { key: b64("secret") }, headers);
    assert.equal(range.status, 401);
    const text = await range.text();
    assert.ok(!text.includes(b64("v")) && !text.includes("revision"), text);
    assert.equal((JSON.parse(text) as Json).code, 16);
    assert.equal(
      (await post("/v3/watch", { create_request: { key: b64("x") } }, headers)).status,
      401,
    );
    assert.equal((await post("/v3/kv/compaction", { revision: 1 }, headers)).status, 401);
    assert.equal((await post("/v3/nonexistent", {}, headers)).status, 401);
  }
  assert.equal(kv.sm.revision, before);
});

Deno.test("oversized, malformed and mistyped requests get etcd-style errors, never a crash", async () => {
  const { post, kv } = setup();
  // As etcd: the limit is on the decoded request (1.5 MiB), not on the base64 JSON body.
  const value = (n: number) => btoa("A".repeat(n));
  const fits = await post("/v3/kv/put", { key: b64("k"), value: value(1.4 * 1024 * 1024) });
  assert.equal(fits.status, 200);
  await fits.body?.cancel();
  for (const size of [1.6 * 1024 * 1024, 3 * 1024 * 1024]) {
    const tooBig = await post("/v3/kv/put", { key: b64("k"), value: value(size) });
    assert.equal(tooBig.status, 400);
    assert.deepEqual(await tooBig.json(), {
      error: "etcdserver: request is too large",
      message: "etcdserver: request is too large",
      code: 3,
    });
  }
  const cases: [string, string][] = [
    ["/v3/kv/put", "{"],
    ["/v3/kv/put", '{"key":"a b"}'],
    ["/v3/kv/range", '{"key":"YQ==","limit":"ten"}'],
    ["/v3/kv/range", '{"key":"YQ==","revision":1e400}'],
    ["/v3/kv/txn", '{"success":[{"request_put":7}]}'],
    ["/v3/kv/txn", '{"success":[{}]}'], // etcd: "key not found"
    ["/v3/kv/txn", '{"compare":"all"}'],
    ["/v3/lease/grant", '{"TTL":true}'],
    ["/v3/lease/revoke", '{"ID":"12x"}'],
    ["/v3/kv/compaction", '{"revision":-5}'],
    ["/v3/kv/range", "null"],
    ["/v3/kv/range", '"string"'],
  ];
  for (const [path, body] of cases) {
    const res = await post(path, body);
    const json = await res.json() as Json;
    assert.ok(res.status >= 400 && res.status < 500, `${path} ${body}: ${res.status}`);
    assert.equal(typeof json.code, "number", `${path} ${body}`);
    assert.equal(json.error, json.message);
  }
  assert.equal(kv.sm.revision, 2, "nothing but the 1.4 MiB value was written");
  // still serving
  assert.equal((await post("/v3/kv/put", { key: b64("k"), value: b64("v") })).status, 200);
});

/** A kv whose replication is down: writes and linearizable reads cannot complete. */
class UnavailableKv extends LocalKv {
  override write(_cmd: Command): Promise<unknown> {
    return Promise.reject(new StoreError("unavailable", "etcdserver: request timed out"));
  }
  override readBarrier(): Promise<void> {
    return Promise.reject(new StoreError("unavailable", "etcdserver: no leader"));
  }
}

Deno.test("an unknown outcome is reported as 503 / gRPC 14, serializable reads still work", async () => {
  const { post } = setup(new UnavailableKv({ expiryCheckMs: 0 }));
  const put = await post("/v3/kv/put", { key: b64("k"), value: b64("v") });
  assert.equal(put.status, 503);
  assert.deepEqual(await put.json(), {
    error: "etcdserver: request timed out",
    message: "etcdserver: request timed out",
    code: 14,
  });
  const lin = await post("/v3/kv/range", { key: b64("k") });
  assert.equal(lin.status, 503);
  assert.equal(((await lin.json()) as Json).error, "etcdserver: no leader");
  const ser = await post("/v3/kv/range", { key: b64("k"), serializable: true });
  assert.equal(ser.status, 200);
});

Deno.test("watch events are ordered and never duplicated under concurrent writes, and resumable", async () => {
  const { post, kv } = setup();
  const watch = await post("/v3/watch", {
    create_request: { key: b64("w/"), range_end: b64("w0"), start_revision: 1 },
  });
  const writes = Array.from(
    { length: 100 },
    (_, i) =>
      post("/v3/kv/put", { key: b64(`w/${i % 7}`), value: b64(String(i)) }).then((r) =>
        r.body?.cancel()
      ),
  );
  const reading = readStream(watch, (m) => eventsOf(m).length >= 100);
  await Promise.all(writes);
  const msgs = await reading;
  assert.equal(results(msgs)[0].created, true);
  const revs = modRevs(eventsOf(msgs));
  assert.equal(revs.length, 100);
  assert.deepEqual(revs, Array.from({ length: 100 }, (_, i) => i + 2));
  assert.equal(kv.sm.revision, 101);

  // Resume from the middle: exactly the tail, same content.
  const resumed = await readStream(
    await post("/v3/watch", {
      create_request: { key: b64("w/"), range_end: b64("w0"), start_revision: 60 },
    }),
    (m) => eventsOf(m).length >= 42,
  );
  assert.deepEqual(eventsOf(resumed), eventsOf(msgs).slice(58));
});

Deno.test("a client that goes away ends its watches on the server", async () => {
  const kv = new LocalKv({ expiryCheckMs: 0 });
  let active = 0;
  const subscribe = kv.sm.subscribe.bind(kv.sm);
  kv.sm.subscribe = (listener) => {
    active++;
    const off = subscribe(listener);
    return () => {
      active--;
      return off();
    };
  };
  const { post } = setup(kv);
  const res = await post("/v3/watch", { create_request: { key: b64("a") } });
  const msgs = await readStream(res, (m) => m.length >= 1); // cancels the body when done
  assert.equal(results(msgs)[0].created, true);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(active, 0);
});

Deno.test("one watch stream carries several watchers, cancels and progress requests", async () => {
  const { post } = setup();
  await post("/v3/kv/put", { key: b64("a"), value: b64("1") });
  const body = [
    { create_request: { key: b64("a") } },
    { create_request: { key: b64("b"), watch_id: 7 } },
    { create_request: { key: b64("b"), watch_id: 7 } },
    { progress_request: {} },
    { cancel_request: { watch_id: 0 } },
  ].map((m) => JSON.stringify(m)).join("\n");
  const msgs = results(await readStream(await post("/v3/watch", body), (m) => m.length >= 5));
  const strip = (r: Json) => ({ ...r, header: (r.header as Json).revision });
  assert.deepEqual(msgs.map(strip), [
    { header: "2", created: true },
    { header: "2", watch_id: "7", created: true },
    {
      header: "2",
      watch_id: "-1",
      created: true,
      canceled: true,
      cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream",
    },
    { header: "2", watch_id: "-1" },
    { header: "2", canceled: true },
  ]);
});

Deno.test("a watcher that asked for progress notifications gets them when idle", async () => {
  const { post } = setup(undefined, 50);
  const msgs = results(
    await readStream(
      await post("/v3/watch", { create_request: { key: b64("p"), progress_notify: true } }),
      (m) => m.length >= 2,
    ),
  );
  assert.equal(msgs[0].created, true);
  assert.deepEqual(Object.keys(msgs[1]), ["header"]);
  assert.equal((msgs[1].header as Json).revision, "1");
});

Deno.test("keep-alive answers each message of its stream", async () => {
  const { post } = setup();
  await post("/v3/lease/grant", { ID: 5, TTL: 10 });
  const res = await post("/v3/lease/keepalive", '{"ID":5}\n{"ID":"6"}\n{"ID":5}');
  const msgs = results(await readStream(res, (m) => m.length >= 3));
  assert.deepEqual(msgs.map((r) => [r.ID, r.TTL]), [["5", "10"], ["6", undefined], ["5", "10"]]);
});

Deno.test("watchers catch up when a snapshot replaces the state machine under them", async () => {
  const { post, kv } = setup();
  await post("/v3/kv/put", { key: b64("s/1"), value: b64("a") }); // rev 2
  const watch = await post("/v3/watch", {
    create_request: { key: b64("s/"), range_end: b64("s0") },
  });
  const reading = readStream(watch, (m) => eventsOf(m).length >= 2);
  // A "leader" that moved on: two more writes the local member only gets via snapshot.
  const ahead = MvccStateMachine.restore(kv.sm.snapshot());
  const put = (k: string, i: number): Command => ({
    op: "put",
    requestId: `snap-${i}`,
    key: te.encode(k),
    value: te.encode("b"),
    lease: "0",
    prevKv: false,
  });
  ahead.apply(ahead.appliedIndex + 1, put("s/2", 1));
  ahead.apply(ahead.appliedIndex + 1, put("s/3", 2));
  await new Promise((r) => setTimeout(r, 20));
  kv.sm.restore(ahead.snapshot());
  const msgs = await reading;
  assert.deepEqual(modRevs(eventsOf(msgs)), [3, 4]);
});

Deno.test("a slow watcher is not buffered without bound: it falls behind, then catches up in order", async () => {
  const { post } = setup();
  const watch = await post("/v3/watch", {
    create_request: { key: b64("big/"), range_end: b64("big0") },
  });
  await new Promise((r) => setTimeout(r, 10));
  const value = btoa("x".repeat(100 * 1024));
  for (let i = 0; i < 40; i++) { // 40 × ~135 KiB of JSON, far above the 1 MiB high-water mark
    const res = await post("/v3/kv/put", { key: b64(`big/${i % 3}`), value });
    await res.body?.cancel();
  }
  const msgs = await readStream(watch, (m) => eventsOf(m).length >= 40);
  assert.deepEqual(modRevs(eventsOf(msgs)), Array.from({ length: 40 }, (_, i) => i + 2));
  // It was not fed one response per revision: some revisions came together in a catch-up.
  assert.ok(results(msgs).length < 41, `${results(msgs).length} responses`);
});

Deno.test("a watcher that fell behind past a compaction is canceled with compact_revision", async () => {
  const { post } = setup();
  const watch = await post("/v3/watch", {
    create_request: { key: b64("c/"), range_end: b64("c0") },
  });
  await new Promise((r) => setTimeout(r, 10));
  const value = btoa("x".repeat(200 * 1024));
  for (let i = 0; i < 12; i++) {
    const res = await post("/v3/kv/put", { key: b64(`c/${i}`), value });
    await res.body?.cancel();
  }
  await (await post("/v3/kv/compaction", { revision: 13 })).body?.cancel();
  const msgs = results(await readStream(watch, (m) => m.some((x) => (x.result as Json).canceled)));
  const canceled = msgs.find((r) => r.canceled)!;
  assert.equal(canceled.compact_revision, "13");
  const revs = modRevs(msgs.flatMap((r) => (r.events as Json[] | undefined) ?? []));
  assert.deepEqual(revs, Array.from({ length: revs.length }, (_, i) => i + 2), "in order, no gaps");
});

Deno.test("watch filters drop puts or deletes, by name or number", async () => {
  const { post } = setup();
  const body = [
    { create_request: { key: b64("f"), filters: ["NOPUT"] } },
    { create_request: { key: b64("f"), filters: [1] } },
  ].map((m) => JSON.stringify(m)).join("\n");
  const watch = await post("/v3/watch", body);
  const reading = readStream(watch, (m) => eventsOf(m).length >= 2);
  await new Promise((r) => setTimeout(r, 10));
  await (await post("/v3/kv/put", { key: b64("f"), value: b64("1") })).body?.cancel();
  await (await post("/v3/kv/deleterange", { key: b64("f") })).body?.cancel();
  const got = results(await reading).filter((r) => r.events).map((r) => [
    r.watch_id ?? "0",
    (r.events as Json[]).map((e) => e.type ?? "PUT"),
  ]);
  assert.deepEqual(got, [["1", ["PUT"]], ["0", ["DELETE"]]]);
});

Deno.test("a streamed body splits into its JSON objects however the bytes arrive", async () => {
  const { jsonTexts } = await import("../../../lib/store/api/json_stream.ts");
  const objects = ['{"a":"}{\\"x"}', '{"b":[1,{"c":"]"}]}', "[]", '{"d":"\\\\"}'];
  const text = ` ${objects[0]}\n${objects[1]}  ${objects[2]}\r\n\t${objects[3]} `;
  const bytes = te.encode(text);
  for (const size of [1, 2, 3, 7, bytes.length]) {
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += size) c.enqueue(bytes.slice(i, i + size));
        c.close();
      },
    });
    const got: string[] = [];
    for await (const t of jsonTexts(stream, 1024)) got.push(t);
    assert.deepEqual(got, objects, `chunks of ${size}`);
  }
  const bad = new Response('{"a":1} x').body;
  await assert.rejects(async () => {
    for await (const _ of jsonTexts(bad, 1024)) { /* drain */ }
  }, /invalid character 'x'/);
  const cut = new Response('{"a":').body;
  await assert.rejects(async () => {
    for await (const _ of jsonTexts(cut, 1024)) { /* drain */ }
  }, /unexpected EOF/);
  const huge = new Response(`{"a":"${"x".repeat(5000)}"}`).body;
  await assert.rejects(async () => {
    for await (const _ of jsonTexts(huge, 1024)) { /* drain */ }
  }, /too large/);
});
