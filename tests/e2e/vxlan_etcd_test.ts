// `twill agent --etcd-endpoints` on 3 nodes against etcd 3.4 (namespaces twa-v*).
import { vxlanScenario } from "./vxlan_scenario.ts";

Deno.test({
  name:
    "e2e vxlan with external etcd: leases, subnet.env, pods, masquerade, restart, repair, removal",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: (t) => vxlanScenario(t, { prefix: "twa-v", store: "etcd" }),
});
