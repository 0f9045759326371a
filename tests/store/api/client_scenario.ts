// What the EtcdClient must do against any etcd-v3-JSON server (twill or a real etcd 3.4): run
// by client_test.ts against twill and by differential_test.ts against etcd.

import assert from "node:assert/strict";
import {
  type EtcdClient,
  EtcdClientError,
  text,
  type WatchResponse,
} from "../../../lib/etcd/client.ts";

export async function exerciseClient(client: EtcdClient): Promise<void> {
  // put / range / prefix / revision
  const p1 = await client.put("/c/a", "1");
  const rev1 = BigInt(p1.header.revision);
  const p2 = await client.put("/c/a", "2", { prevKv: true });
  assert.equal(text(p2.prevKv!.value), "1");
  await client.put("/c/b", new Uint8Array([0, 255]));
  const all = await client.range("/c/", { prefix: true });
  assert.deepEqual(all.kvs.map((kv) => text(kv.key)), ["/c/a", "/c/b"]);
  assert.deepEqual([...all.kvs[1].value], [0, 255]);
  assert.equal(all.count, "2");
  const limited = await client.range("/c/", { prefix: true, limit: 1 });
  assert.equal(limited.more, true);
  const old = await client.range("/c/a", { revision: String(rev1) });
  assert.equal(text(old.kvs[0].value), "1");
  assert.equal(old.kvs[0].version, "1");
  const missing = await client.range("/c/none");
  assert.deepEqual([missing.kvs.length, missing.count], [0, "0"]);

  // errors carry etcd's code and message
  await assert.rejects(
    client.range("/c/a", { revision: "99999999" }),
    (e: unknown) =>
      e instanceof EtcdClientError && e.grpcCode === 11 && e.httpStatus === 400 &&
      /future revision/.test(e.message),
  );

  // txn: compare-and-swap as Flannel does it (create only if absent, then CAS on mod_revision)
  const create = await client.txn({
    compare: [{ key: "/c/lock", target: "CREATE", result: "EQUAL", createRevision: "0" }],
    success: [{ put: { key: "/c/lock", value: "me" } }],
    failure: [{ range: { key: "/c/lock" } }],
  });
  assert.equal(create.succeeded, true);
  const again = await client.txn({
    compare: [{ key: "/c/lock", target: "CREATE", result: "EQUAL", createRevision: "0" }],
    success: [{ put: { key: "/c/lock", value: "other" } }],
    failure: [{ range: { key: "/c/lock" } }],
  });
  assert.equal(again.succeeded, false);
  const held = (again.responses[0] as { range: { kvs: { value: Uint8Array }[] } }).range;
  assert.equal(text(held.kvs[0].value), "me");
  const readOnly = await client.txn({
    compare: [{ key: "/c/lock", target: "VALUE", result: "EQUAL", value: "me" }],
    success: [{ range: { key: "/c/", prefix: true, countOnly: true } }],
  });
  assert.equal(readOnly.succeeded, true);

  // leases
  const lease = await client.leaseGrant(30);
  assert.ok(BigInt(lease.id) > 0n);
  assert.equal(lease.ttl, "30");
  await client.put("/c/leased", "x", { lease: lease.id });
  const ka = await client.leaseKeepAlive(lease.id);
  assert.deepEqual([ka.id, ka.ttl], [lease.id, "30"]);
  const ttl = await client.leaseTimeToLive(lease.id, { keys: true });
  assert.equal(ttl.grantedTtl, "30");
  assert.deepEqual(ttl.keys.map(text), ["/c/leased"]);
  assert.ok(Number(ttl.ttl) > 25);
  assert.ok((await client.leases()).ids.includes(lease.id));
  await client.leaseRevoke(lease.id);
  assert.equal((await client.range("/c/leased")).count, "0");
  assert.equal((await client.leaseTimeToLive(lease.id)).ttl, "-1");
  assert.equal((await client.leaseKeepAlive(lease.id)).ttl, "0");
  await assert.rejects(
    client.leaseRevoke(lease.id),
    (e: unknown) => e instanceof EtcdClientError && e.grpcCode === 5 && e.httpStatus === 404,
  );

  // delete with prev_kv
  const del = await client.deleteRange("/c/", { prefix: true, prevKv: true });
  assert.equal(del.deleted, "3");
  assert.deepEqual(del.prevKvs.map((kv) => text(kv.key)), ["/c/a", "/c/b", "/c/lock"]);

  // watch: history from a past revision, then live events, then cancel by abort
  const ctrl = new AbortController();
  const seen: WatchResponse[] = [];
  const events: string[] = [];
  const watching = (async () => {
    for await (
      const w of client.watch("/c/", {
        prefix: true,
        startRevision: String(rev1),
        prevKv: true,
        signal: ctrl.signal,
      })
    ) {
      seen.push(w);
      for (const e of w.events) {
        events.push(`${e.type} ${text(e.kv.key)} ${e.kv.modRevision}`);
        if (text(e.kv.key) === "/c/live") ctrl.abort();
      }
    }
  })();
  const live = await client.put("/c/live", "1");
  await watching;
  assert.equal(seen[0].created, true);
  assert.equal(events[0], `PUT /c/a ${rev1}`);
  assert.equal(events.at(-1), `PUT /c/live ${live.header.revision}`);
  assert.equal(new Set(events).size, events.length, "no event twice");
  const revs = events.map((e) => BigInt(e.split(" ")[2]));
  assert.deepEqual(revs, [...revs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));

  // compaction is reported to a watcher that starts too early
  await client.compact(live.header.revision);
  const canceled: WatchResponse[] = [];
  for await (const w of client.watch("/c/", { prefix: true, startRevision: String(rev1) })) {
    canceled.push(w);
  }
  assert.equal(canceled.at(-1)!.canceled, true);
  assert.equal(canceled.at(-1)!.compactRevision, live.header.revision);

  const status = await client.status();
  assert.ok(Number(status.header.revision) >= Number(live.header.revision));
  assert.ok(status.version.startsWith("3."));
}
