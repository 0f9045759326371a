// The same API calls against a real etcd 3.4 (started here on 127.0.0.1:24379/24380, fresh data
// dir) and against twill's API server on a LocalBackend (127.0.4.1): the normalised transcripts
// must be identical. store-raft can run the same scenario against a 3-member cluster by calling
// runDifferentialScenario with that cluster's endpoint and comparing with etcdTranscript().

import assert from "node:assert/strict";
import { EtcdClient } from "../../lib/store/client.ts";
import { exerciseClient } from "./client_scenario.ts";
import { runDifferentialScenario, type Step } from "./differential_scenario.ts";
import { withEtcd, withTwill } from "./servers.ts";

function firstDifference(a: Step[], b: Step[]): string {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = JSON.stringify(a[i]);
    const y = JSON.stringify(b[i]);
    if (x !== y) return `step ${i} (${a[i]?.name ?? b[i]?.name}):\n twill: ${x}\n etcd:  ${y}`;
  }
  return "none";
}

Deno.test("twill's API answers the differential scenario exactly as etcd 3.4 does", async () => {
  const [etcd, twill] = await Promise.all([
    withEtcd((ep) => runDifferentialScenario(ep)),
    withTwill("diff-token", (ep) => runDifferentialScenario(ep, { token: "diff-token" })),
  ]);
  assert.ok(etcd.length > 80, `the scenario ran only ${etcd.length} steps`);
  assert.equal(twill.length, etcd.length);
  assert.deepEqual(twill, etcd, `first difference: ${firstDifference(twill, etcd)}`);
});

Deno.test("the client does everything the agent needs against etcd 3.4 too", async () => {
  await withEtcd(async (endpoint) => {
    // No token: etcd 3.4 does NOT ignore a bearer token when auth is off, it answers
    // "etcdserver: invalid auth token" (see the assertion below).
    await exerciseClient(new EtcdClient({ endpoints: [endpoint] }));
    await assert.rejects(
      new EtcdClient({ endpoints: [endpoint], token: "x" }).range("k"),
      /invalid auth token/,
    );
  });
});
