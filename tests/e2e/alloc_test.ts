// The alloc backend end to end (namespaces twba*): 3 nodes take distinct leases with
// BackendType alloc and no BackendData, FLANNEL_MTU is the interface's, and nothing is programmed:
// no device, no route to another node's subnet, so pods do not reach each other. Run under
// flock /tmp/twill-kernel.lock.
import assert from "node:assert/strict";
import { backendScenario } from "./backend_scenario.ts";
import { sh } from "./topology.ts";

Deno.test({
  name: "e2e alloc: leases only, no device, no routes, no pod traffic",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: (t) =>
    backendScenario(t, {
      prefix: "twba",
      backend: { Type: "alloc" },
      expectMtu: 1500,
      pings: false,
      checkLease: (v) => {
        assert.deepEqual(Object.keys(v), ["PublicIP", "PublicIPv6", "BackendType"]);
        assert.equal(v.BackendType, "alloc");
        return Promise.resolve();
      },
    }, async (c) => {
      await t.step("no node has a flannel device or a route into the pod network", async () => {
        for (let n = 1; n <= c.n; n++) {
          const links = await sh(["ip", "-n", c.topo.node(n), "-o", "link", "show"]);
          assert.doesNotMatch(links.out, /flannel/);
          const routes = await sh(["ip", "-n", c.topo.node(n), "-4", "route", "show"]);
          const foreign = routes.out.split("\n").filter((l) =>
            l.startsWith("10.50.") && !l.startsWith(c.subnet(n))
          );
          assert.deepEqual(foreign, [], `node ${n} routes`);
        }
      });
    }),
});
