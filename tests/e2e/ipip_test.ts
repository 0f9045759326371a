// The ipip backend end to end (namespaces twbi*). Where the kernel has no ipip (as on the machine
// this was written on), the agent must refuse at start with one line naming the missing kernel
// support; where it has ipip, the common scenario runs (pings across all pairs, DF at 1500 − 20).
// Run under flock /tmp/twill-kernel.lock.
import assert from "node:assert/strict";
import { BackendCluster, backendScenario } from "./backend_scenario.ts";
import { sh } from "./topology.ts";

/** Whether this kernel creates ipip devices, tried in a namespace made and removed here. */
async function kernelHasIpip(): Promise<boolean> {
  const ns = `twbi-probe-${crypto.getRandomValues(new Uint32Array(1))[0].toString(36)}`;
  await sh(["ip", "netns", "add", ns]);
  try {
    return (await sh(["ip", "-n", ns, "link", "add", "p0", "type", "ipip"], { allowFail: true }))
      .code === 0;
  } finally {
    await sh(["ip", "netns", "del", ns], { allowFail: true });
  }
}

const HAS_IPIP = await kernelHasIpip();
if (!HAS_IPIP) {
  console.log("ipip e2e skipped: this kernel has no ipip tunnel support (CONFIG_NET_IPIP)");
}

Deno.test({
  name: "e2e ipip: without kernel ipip the agent refuses at start with one line",
  ignore: HAS_IPIP,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const c = await BackendCluster.create({ prefix: "twbi", backend: { Type: "ipip" }, nodes: 1 });
    try {
      const r = await c.startExpectingExit(1);
      assert.notEqual(r.code, 0, r.log);
      const fatal = r.log.split("\n").filter((l) => /no ipip tunnel support/.test(l));
      assert.equal(fatal.length, 1, r.log);
      assert.match(fatal[0], /CONFIG_NET_IPIP/);
      const links = await sh(["ip", "-n", c.topo.node(1), "-o", "link", "show"]);
      assert.doesNotMatch(links.out, /flannel\.ipip|twill-ipprobe/, "nothing left behind");
    } finally {
      await c.close();
    }
  },
});

Deno.test({
  name: "e2e ipip: pods ping across all pairs, DF at the MTU",
  ignore: !HAS_IPIP,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: (t) =>
    backendScenario(t, {
      prefix: "twbi",
      backend: { Type: "ipip" },
      expectMtu: 1480,
      checkLease: (v) => {
        assert.equal(v.BackendType, "ipip");
        assert.equal(v.BackendData, undefined);
        return Promise.resolve();
      },
      // IP-in-IP hides nothing: inner pod addresses are visible, only check it is proto 4
      checkCapture: (lines) =>
        lines.find((l) => / IP 10\.50\./.test(l) && !/ipip|IP 10\.99/.test(l)) ?? null,
      captureFilter: ["ip", "proto", "4"],
    }),
});
