// The demo's pure parts: the plan (names, addresses, paths), the CNI config it feeds the plugin,
// reading results, and the status table and ping matrix it prints.
import assert from "node:assert/strict";
import {
  cniConfig,
  type DemoReport,
  displayRole,
  keepHints,
  launcherScript,
  matrixAllGreen,
  netConf,
  parseEnvFile,
  planDemo,
  podAddress,
  PREFIX,
  renderMatrix,
  renderNodes,
  rolesFromStatus,
  subnetOf,
  validPrefix,
} from "../../scripts/demo.ts";

Deno.test("demo plan: every namespace is twdemo-, every path is under the state dir", () => {
  const plan = planDemo("/tmp/x", 3, 2);
  assert.equal(plan.nodes.length, 3);
  assert.equal(plan.pods.length, 6);
  const names = [plan.underlayNs, ...plan.nodes.map((n) => n.ns), ...plan.pods.map((p) => p.ns)];
  for (const ns of names) assert.ok(ns.startsWith(PREFIX), ns);
  assert.equal(new Set(names).size, names.length, "names are distinct");
  for (const n of plan.nodes) {
    for (const p of [n.dataDir, n.subnetFile, n.cniDataDir, n.ipamDir, n.log]) {
      assert.ok(p.startsWith("/tmp/x/"), p);
    }
    assert.ok(n.underlayLink.length <= 15, "interface names fit IFNAMSIZ");
  }
  assert.deepEqual(plan.nodes.map((n) => n.address), ["172.30.99.1", "172.30.99.2", "172.30.99.3"]);
  assert.equal(new Set(plan.pods.map((p) => p.containerId)).size, 6);
  const test = planDemo("/tmp/y", 1, 1, "twdemo-t42-");
  assert.deepEqual([test.underlayNs, test.nodes[0].ns, test.pods[0].ns], [
    "twdemo-t42-ul",
    "twdemo-t42-n1",
    "twdemo-t42-n1-p1",
  ]);
  for (const bad of ["twdemo", "other-", "twdemo-../", "twdemo-x"]) {
    assert.equal(validPrefix(bad), false, bad);
    assert.throws(() => planDemo("/tmp/y", 1, 1, bad));
  }
});

Deno.test("demo: Flannel's net-conf and the flannel plugin config with paths moved", () => {
  assert.deepEqual(JSON.parse(netConf()), { Network: "10.244.0.0/16", Backend: { Type: "vxlan" } });
  const node = planDemo("/s", 1, 1).nodes[0];
  const c = cniConfig(node);
  assert.equal(c.type, "flannel");
  assert.equal(c.name, "cbr0");
  assert.equal(c.subnetFile, "/s/n1/subnet.env");
  assert.equal(c.dataDir, "/s/n1/cni/flannel");
  assert.deepEqual(c.ipam, { dataDir: "/s/n1/cni/networks" });
  assert.deepEqual(c.delegate, { hairpinMode: true, isDefaultGateway: true });
});

Deno.test("demo: reads subnet.env, CNI results of every version, and ctl status roles", () => {
  const env = parseEnvFile(
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
  );
  assert.equal(env.FLANNEL_SUBNET, "10.244.7.1/24");
  assert.equal(env.FLANNEL_MTU, "1450");
  assert.equal(subnetOf(env.FLANNEL_SUBNET), "10.244.7.0/24");
  assert.equal(subnetOf(undefined), "?");
  assert.equal(podAddress({ ips: [{ version: "4", address: "10.244.7.2/24" }] }), "10.244.7.2");
  assert.equal(
    podAddress({ ips: [{ address: "fd00::2/64" }, { address: "10.244.7.3/24" }] }),
    "10.244.7.3",
  );
  assert.equal(podAddress({ ip4: { ip: "10.1.0.5/24" } }), "10.1.0.5");
  assert.equal(podAddress({}), undefined);
  const roles = rolesFromStatus({
    members: [
      { id: 1, name: "n1", address: "172.30.99.1:8473", role: "leader" },
      { id: 2, name: "n2", address: "172.30.99.2:8473", role: "follower" },
      { id: 3, name: "n3", address: "172.30.99.3:8473", role: "learner" },
    ],
  });
  assert.equal(roles.get("172.30.99.1"), "leader");
  assert.equal(roles.get("n3"), "learner");
  assert.deepEqual(
    ["leader", "follower", "learner", "client", undefined].map(displayRole),
    ["leader", "voter", "learner", "client", "?"],
  );
});

function report(matrix: DemoReport["matrix"]): DemoReport {
  return {
    ok: true,
    nodes: [
      {
        name: "n1",
        ns: "twdemo-n1",
        address: "172.30.99.1",
        subnet: "10.244.7.0/24",
        vtepMac: "aa:bb:cc:dd:ee:01",
        role: "leader",
      },
      {
        name: "n2",
        ns: "twdemo-n2",
        address: "172.30.99.2",
        subnet: "10.244.9.0/24",
        vtepMac: "aa:bb:cc:dd:ee:02",
        role: "voter",
      },
    ],
    pods: [
      { name: "n1-p1", node: "n1", ns: "twdemo-n1-p1", ip: "10.244.7.2" },
      { name: "n2-p1", node: "n2", ns: "twdemo-n2-p1", ip: "10.244.9.2" },
    ],
    matrix,
    steps: [],
  };
}

Deno.test("demo: the status table names subnets, VTEP MACs, roles and pods", () => {
  const text = renderNodes(report({}));
  const lines = text.split("\n");
  assert.match(lines[0], /^node\s+namespace\s+address\s+subnet\s+vtep mac\s+store\s+pods$/);
  assert.match(
    lines[2],
    /^n1\s+twdemo-n1\s+172\.30\.99\.1\s+10\.244\.7\.0\/24\s+aa:bb:cc:dd:ee:01\s+leader\s+n1-p1=10\.244\.7\.2$/,
  );
  assert.match(lines[3], /voter\s+n2-p1=10\.244\.9\.2$/);
});

Deno.test("demo: the ping matrix is green only when every pair answered", () => {
  const green = report({ "n1-p1": { "n2-p1": true }, "n2-p1": { "n1-p1": true } });
  assert.equal(matrixAllGreen(green), true);
  assert.deepEqual(renderMatrix(green).split("\n").map((l) => l.split(/\s+/)), [
    ["from", "\\", "to", "n1-p1", "n2-p1"],
    ["---------", "-----", "-----"],
    ["n1-p1", "-", "ok"],
    ["n2-p1", "ok", "-"],
  ]);
  const red = report({ "n1-p1": { "n2-p1": true }, "n2-p1": { "n1-p1": false } });
  assert.equal(matrixAllGreen(red), false);
  assert.match(renderMatrix(red), /n2-p1\s+FAIL\s+-/);
  assert.equal(matrixAllGreen(report({})), false);
});

Deno.test("demo --keep: hints use the state dir's twill launcher and the real addresses", () => {
  const plan = planDemo("/run/twill-demo", 2, 1);
  const hints = keepHints(plan, report({}));
  assert.match(
    hints,
    /ip netns exec twdemo-n1 \/run\/twill-demo\/twill ctl --data-dir \S+\/n1\S* status/,
  );
  assert.match(hints, /ip netns exec twdemo-n2 \S+ ctl --data-dir \S+ leases/);
  assert.ok(!hints.includes("--token"), "no secret on a printed command line");
  assert.match(hints, /ip netns exec twdemo-n1-p1 ping -c 3 10\.244\.9\.2/);
  assert.match(hints, /remove it all with: npx -y deno@2\.9\.6 task demo -- --down$/);
  assert.equal(
    launcherScript("/usr/bin/deno", "/src"),
    '#!/bin/sh\nexec "/usr/bin/deno" run -A --cached-only "/src/main.ts" "$@"\n',
  );
});
