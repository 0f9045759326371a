// store-api's differential scenario against a 3-member twill cluster (through a follower, so
// writes are forwarded and reads go through ReadIndex) and against a real etcd 3.4: the
// normalised transcripts must be identical.
import assert from "node:assert/strict";
import { assertSameTranscript, runDifferentialScenario } from "./api/differential_scenario.ts";
import { withEtcd } from "./api/servers.ts";
import { clusterTrust, withCluster } from "./process_cluster.ts";

Deno.test({
  name: "a 3-member cluster answers the differential scenario exactly as etcd 3.4 does",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster({ base: 55, size: 3 }, async (c) => {
      await c.start(3);
      const leader = await c.waitLeader();
      const follower = c.members.find((m) => m !== leader)!;
      const [etcd, twill] = await Promise.all([
        withEtcd((ep) => runDifferentialScenario(ep), { client: 24779, peer: 24780 }),
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
