// `twill agent --init` / `--join` on 3 nodes with the embedded store (namespaces twa-e*).
import { vxlanScenario } from "./vxlan_scenario.ts";

Deno.test({
  name:
    "e2e vxlan with the embedded store: leases, subnet.env, pods, masquerade, restart, repair, removal",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: (t) => vxlanScenario(t, { prefix: "twa-e", store: "embedded" }),
});
