// The same API calls against a real etcd 3.4 (started here on 127.0.0.1:24379/24380, fresh data
// dir) and against twill's API server on a LocalKv (127.0.4.1): the normalised transcripts
// must be identical. Another server (e.g. a 3-member twill cluster) is checked the same way:
// runDifferentialScenario(itsEndpoint, { token }) and assertSameTranscript(itsSteps, etcdSteps).

import assert from "node:assert/strict";
import { EtcdClient } from "../../../lib/etcd/client.ts";
import { exerciseClient } from "./client_scenario.ts";
import { assertSameTranscript, runDifferentialScenario } from "./differential_scenario.ts";
import { runRandomScenario } from "./random_scenario.ts";
import { withEtcd, withTwill } from "./servers.ts";

Deno.test("twill's API answers the differential scenario exactly as etcd 3.4 does", async () => {
  const [etcd, twill] = await Promise.all([
    withEtcd((ep) => runDifferentialScenario(ep)),
    withTwill("diff-token", (ep) => runDifferentialScenario(ep, { token: "diff-token" })),
  ]);
  assert.ok(etcd.length > 80, `the scenario ran only ${etcd.length} steps`);
  assertSameTranscript(twill, etcd);
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

Deno.test("random walks over the API give the same transcript on twill and etcd 3.4", async () => {
  const walk = async (endpoint: string, token?: string) => {
    const all = [];
    for (const seed of [1, 2, 3]) all.push(...await runRandomScenario(endpoint, seed, 150, token));
    return all;
  };
  const [etcd, twill] = await Promise.all([
    withEtcd((ep) => walk(ep)),
    withTwill("walk-token", (ep) => walk(ep, "walk-token")),
  ]);
  const ok = etcd.filter((s) => s.status === 200).length;
  assert.ok(ok > 300, `only ${ok} of ${etcd.length} random steps succeeded on etcd`);
  assertSameTranscript(twill, etcd);
});
