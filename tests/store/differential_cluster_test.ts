// store-api's differential scenario against a 3-member twill cluster (through a follower, so
// writes are forwarded and reads go through ReadIndex) and against a real etcd 3.4: the
// normalised transcripts must be identical.
//
// A twill cluster is never empty: --init seeds /twill/... (join secret, CA, credentials) and each
// voter registers its admin credential. So the etcd side is first given the same history,
// revision by revision, read back from the settled cluster; both servers then start the scenario
// from the same keyspace at the same revision.
import assert from "node:assert/strict";
import { assertSameTranscript, runDifferentialScenario } from "./api/differential_scenario.ts";
import { withEtcd } from "./api/servers.ts";
import { b64, clusterTrust, post, type ProcessCluster, withCluster } from "./process_cluster.ts";
import { ndjson } from "../../lib/etcd/client.ts";

type Json = Record<string, unknown>;
interface Event {
  type?: string;
  kv: { key: string; value?: string; mod_revision: string; lease?: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until every voter's admin credential is registered and the revision stays put; returns
 *  that revision. */
async function settledRevision(c: ProcessCluster, address: string, voters: number) {
  let last = -1;
  let revision = 0;
  await c.waitFor(
    async () => {
      const res = await post(address, "/v3/kv/range", {
        key: b64("/twill/credentials/"),
        range_end: b64("/twill/credentials0"),
      });
      if (res.status !== 200) return false;
      const kvs = (res.body.kvs ?? []) as { value: string }[];
      const admins = kvs.filter((kv) => JSON.parse(atob(kv.value)).kind === "admin").length;
      revision = Number((res.body.header as Json).revision);
      const stable = revision === last;
      last = revision;
      if (admins === voters && stable) return true;
      await sleep(500);
      return false;
    },
    20_000,
    "every voter's admin credential and a stable revision",
  );
  return revision;
}

/** Every event of revisions 2..upTo on `endpoint`, grouped by revision. */
async function historyUpTo(endpoint: string, upTo: number): Promise<Event[][]> {
  const ctrl = new AbortController();
  const res = await fetch(endpoint + "/v3/watch", {
    client: Deno.createHttpClient({ caCerts: [clusterTrust().caPem] }),
    method: "POST",
    headers: { authorization: `Bearer ${clusterTrust().admin}` },
    body: JSON.stringify({
      create_request: { key: b64("\0"), range_end: b64("\0"), start_revision: "2" },
    }),
    signal: ctrl.signal,
  });
  const groups = new Map<number, Event[]>();
  const deadline = setTimeout(() => ctrl.abort(), 10_000);
  try {
    for await (const line of ndjson(res, ctrl.signal)) {
      for (const e of ((line.result as Json)?.events ?? []) as Event[]) {
        const rev = Number(e.kv.mod_revision);
        groups.set(rev, [...(groups.get(rev) ?? []), e]);
      }
      if (groups.has(upTo)) break;
    }
  } finally {
    clearTimeout(deadline);
    ctrl.abort();
  }
  const out: Event[][] = [];
  for (let rev = 2; rev <= upTo; rev++) {
    const g = groups.get(rev);
    assert.ok(g, `the cluster's history lacks revision ${rev}`);
    out.push(g);
  }
  return out;
}

/** Writes each revision's events to etcd as one txn, so etcd reaches the same keyspace at the
 *  same revision (same create revisions and versions). */
async function replay(endpoint: string, history: Event[][]): Promise<void> {
  for (const events of history) {
    const success = events.map((e) => {
      assert.ok(!e.kv.lease || e.kv.lease === "0", "a seeded key is not attached to a lease");
      return e.type === "DELETE"
        ? { request_delete_range: { key: e.kv.key } }
        : { request_put: { key: e.kv.key, value: e.kv.value ?? "" } };
    });
    const res = await fetch(endpoint + "/v3/kv/txn", {
      method: "POST",
      body: JSON.stringify({ success }),
    });
    const body = await res.json() as Json;
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(
      Number((body.header as Json).revision),
      Number(events[0].kv.mod_revision),
      "etcd's revision follows the cluster's",
    );
  }
}

Deno.test({
  name: "a 3-member cluster answers the differential scenario exactly as etcd 3.4 does",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 55, size: 3 }, async (c) => {
      await c.start(3);
      const leader = await c.waitLeader();
      const follower = c.members.find((m) => m !== leader)!;
      const revision = await settledRevision(c, follower.address, 3);
      const history = await historyUpTo(`https://${follower.address}`, revision);
      const [etcd, twill] = await Promise.all([
        withEtcd(async (ep) => {
          await replay(ep, history);
          return await runDifferentialScenario(ep);
        }, { client: 24779, peer: 24780 }),
        runDifferentialScenario(`https://${follower.address}`, {
          token: clusterTrust().admin,
          client: Deno.createHttpClient({ caCerts: [clusterTrust().caPem] }),
        }),
      ]);
      assert.ok(etcd.length > 80, `the scenario ran only ${etcd.length} steps`);
      assertSameTranscript(twill, etcd);
    }, 20);
  },
});
