// Config parsing, subnet.env, the Flannel-to-bridge plan and result shapes per CNI version: pure.
import assert from "node:assert/strict";
import { parseCIDR, parseIP } from "../../lib/net/cidr.ts";
import { cmdStatus } from "../../lib/cni/commands.ts";
import { parseEnv, parseNetConf } from "../../lib/cni/config.ts";
import { CniError } from "../../lib/cni/errors.ts";
import { hostVethName, makePlan } from "../../lib/cni/plan.ts";
import { parseResult, type Result, resultJSON } from "../../lib/cni/result.ts";
import { parseSubnetEnv, waitSubnetEnv } from "../../lib/subnet/subnet_env.ts";
import { allows, compareVersions } from "../../lib/cni/versions.ts";

const KUBE_FLANNEL = JSON.stringify({
  name: "cbr0",
  cniVersion: "0.3.1",
  type: "flannel",
  delegate: { hairpinMode: true, isDefaultGateway: true },
});

function code(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CniError, String(e));
    return e.code;
  }
  assert.fail("expected a CniError");
}

Deno.test("kube-flannel's config gets Flannel's defaults", () => {
  const c = parseNetConf(KUBE_FLANNEL, "ADD");
  assert.equal(c.subnetFile, "/run/flannel/subnet.env");
  assert.equal(c.dataDir, "/var/lib/cni/flannel");
  assert.equal(c.ipamDataDir, "/var/lib/cni/networks");
  assert.equal(c.bridge, "cni0");
  assert.equal(c.subnetFileWaitMs, 10_000);
  assert.equal(c.hairpinMode, true);
  assert.equal(c.isDefaultGateway, true);
  assert.equal(c.isGateway, true);
  assert.equal(c.mtu, undefined);
  assert.equal(c.ipMasq, undefined);
});

Deno.test("config errors carry the spec's codes", () => {
  assert.equal(code(() => parseNetConf("{", "ADD")), 6);
  assert.equal(code(() => parseNetConf(`{"name":"x"}`, "ADD")), 7);
  assert.equal(code(() => parseNetConf(`{"cniVersion":"0.2.0","name":"x"}`, "ADD")), 1);
  assert.equal(code(() => parseNetConf(`{"cniVersion":"2.0.0","name":"x"}`, "ADD")), 1);
  assert.equal(code(() => parseNetConf(`{"cniVersion":"0.3.1","name":"x"}`, "CHECK")), 1);
  assert.equal(code(() => parseNetConf(`{"cniVersion":"1.0.0","name":"x"}`, "STATUS")), 1);
  assert.equal(code(() => parseNetConf(`{"cniVersion":"1.1.0","name":"x"}`, "GC")), 7);
  assert.equal(
    code(() => parseNetConf(`{"cniVersion":"1.0.0","name":"x","delegate":{"ipam":{}}}`, "ADD")),
    7,
  );
  assert.equal(
    code(() =>
      parseNetConf(`{"cniVersion":"1.0.0","name":"x","delegate":{"type":"ipvlan"}}`, "ADD")
    ),
    2,
  );
  assert.equal(
    code(() => parseNetConf(`{"cniVersion":"1.0.0","name":"x","delegate":{"mtu":20}}`, "ADD")),
    7,
  );
  assert.equal(
    code(() =>
      parseNetConf(`{"cniVersion":"1.0.0","name":"x","subnetFileWaitSeconds":"5"}`, "ADD")
    ),
    7,
  );
});

Deno.test("environment: missing or malformed CNI_* variables are code 4", () => {
  const ok = { CNI_COMMAND: "ADD", CNI_CONTAINERID: "abc", CNI_NETNS: "/x", CNI_IFNAME: "eth0" };
  assert.equal(parseEnv(ok).ifname, "eth0");
  assert.equal(code(() => parseEnv({ ...ok, CNI_NETNS: undefined })), 4);
  assert.equal(code(() => parseEnv({ ...ok, CNI_CONTAINERID: "" })), 4);
  assert.equal(code(() => parseEnv({ ...ok, CNI_IFNAME: "a-name-too-long-x" })), 4);
  assert.equal(code(() => parseEnv({ ...ok, CNI_CONTAINERID: "../etc" })), 4);
  assert.equal(code(() => parseEnv({ ...ok, CNI_COMMAND: "FROB" })), 4);
  // DEL does not need the namespace (it may be gone already).
  assert.equal(parseEnv({ ...ok, CNI_COMMAND: "DEL", CNI_NETNS: undefined }).netns, "");
});

Deno.test("subnet.env: Flannel's file parses; a missing key is named", () => {
  const env = parseSubnetEnv(
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
  );
  assert.equal(env.mtu, 1450);
  assert.equal(env.ipMasq, true);
  assert.equal(env.subnet?.prefix, 24);
  assert.throws(
    () => parseSubnetEnv("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_MTU=1450\n"),
    /FLANNEL_SUBNET.*FLANNEL_IPMASQ/,
  );
  assert.throws(
    () =>
      parseSubnetEnv(
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=banana\nFLANNEL_MTU=1\nFLANNEL_IPMASQ=1",
      ),
    /FLANNEL_SUBNET=banana is not a CIDR/,
  );
  const v6only = parseSubnetEnv(
    "FLANNEL_IPV6_NETWORK=fd00::/56\nFLANNEL_IPV6_SUBNET=fd00:0:0:1::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
  );
  assert.equal(v6only.subnet, undefined);
  assert.equal(v6only.ipv6Subnet?.prefix, 64);
});

Deno.test("waiting for subnet.env gives up after the bound with the last problem", async () => {
  let slept = 0;
  const got = await waitSubnetEnv("/nonexistent/twc/subnet.env", 0, () => {
    slept++;
    return Promise.resolve();
  });
  assert.deepEqual(got, { problem: "/nonexistent/twc/subnet.env does not exist" });
  assert.equal(slept, 0);
});

Deno.test("the plan is what Flannel hands to bridge + host-local", () => {
  const env = parseSubnetEnv(
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_IPV6_NETWORK=fd00::/56\n" +
      "FLANNEL_IPV6_SUBNET=fd00:0:0:1::1/64\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=true\n",
  );
  const conf = parseNetConf(
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "n",
      ipam: { routes: [{ dst: "192.168.0.0/16", gw: "10.244.1.254" }] },
      delegate: { isDefaultGateway: false },
    }),
    "ADD",
  );
  const p = makePlan(conf, env);
  assert.equal(p.mtu, 1400);
  assert.equal(p.ipMasq, false, "the agent masquerades, so the bridge does not");
  assert.deepEqual(p.ranges.map((r) => [r.index, r.gateway, r.start, r.end]), [
    [0, parseIP("10.244.1.1"), parseIP("10.244.1.1"), parseIP("10.244.1.254")],
    [
      1,
      parseIP("fd00:0:0:1::1"),
      parseIP("fd00:0:0:1::1"),
      parseIP("fd00:0:0:1:ffff:ffff:ffff:ffff"),
    ],
  ]);
  // User routes first, then the cluster networks; no default route without isDefaultGateway.
  assert.deepEqual(p.routes, [
    { dst: parseCIDR("192.168.0.0/16"), gw: parseIP("10.244.1.254") },
    { dst: parseCIDR("10.244.0.0/16") },
    { dst: parseCIDR("fd00::/56") },
  ]);
  assert.equal(makePlan({ ...conf, ipMasq: true }, env).ipMasq, true);
});

Deno.test("host veth names are stable per attachment and fit IFNAMSIZ", () => {
  assert.equal(hostVethName("abc", "eth0"), hostVethName("abc", "eth0"));
  assert.notEqual(hostVethName("abc", "eth0"), hostVethName("abc", "eth1"));
  assert.match(hostVethName("x".repeat(64), "eth0"), /^veth[0-9a-f]{8}$/);
});

const RESULT: Result = {
  interfaces: [
    { name: "cni0", mac: "aa:aa:aa:aa:aa:aa" },
    { name: "veth0", mac: "bb:bb:bb:bb:bb:bb" },
    { name: "eth0", mac: "cc:cc:cc:cc:cc:cc", sandbox: "/var/run/netns/p" },
  ],
  ips: [
    { address: parseCIDR("10.244.1.2/24", true), gateway: parseIP("10.244.1.1"), interface: 2 },
    { address: parseCIDR("fd00::2/64", true), gateway: parseIP("fd00::1"), interface: 2 },
  ],
  routes: [{ dst: parseCIDR("10.244.0.0/16") }, {
    dst: parseCIDR("0.0.0.0/0"),
    gw: parseIP("10.244.1.1"),
  }],
  dns: {},
};

Deno.test("results: 0.3.x and 0.4.0 put a version on each IP, 1.x does not", () => {
  for (const v of ["0.3.0", "0.3.1", "0.4.0"]) {
    const j = resultJSON(RESULT, v);
    assert.equal(j.cniVersion, v);
    assert.deepEqual(j.ips, [
      { version: "4", interface: 2, address: "10.244.1.2/24", gateway: "10.244.1.1" },
      { version: "6", interface: 2, address: "fd00::2/64", gateway: "fd00::1" },
    ]);
  }
  for (const v of ["1.0.0", "1.1.0"]) {
    const j = resultJSON(RESULT, v);
    assert.deepEqual(j.ips, [
      { interface: 2, address: "10.244.1.2/24", gateway: "10.244.1.1" },
      { interface: 2, address: "fd00::2/64", gateway: "fd00::1" },
    ]);
    assert.deepEqual(j.routes, [{ dst: "10.244.0.0/16" }, { dst: "0.0.0.0/0", gw: "10.244.1.1" }]);
    assert.deepEqual(j.dns, {});
    assert.deepEqual(j.interfaces, RESULT.interfaces);
  }
  // A prevResult of either shape reads back to the same thing.
  assert.deepEqual(parseResult(resultJSON(RESULT, "0.3.1")), RESULT);
  assert.deepEqual(parseResult(resultJSON(RESULT, "1.1.0")), RESULT);
});

Deno.test("versions: CHECK from 0.4.0, STATUS and GC from 1.1.0", () => {
  assert.ok(compareVersions("0.10.0", "0.4.0") > 0);
  assert.equal(allows("0.3.1", "CHECK"), false);
  assert.equal(allows("0.4.0", "CHECK"), true);
  assert.equal(allows("1.0.0", "GC"), false);
  assert.equal(allows("1.1.0", "STATUS"), true);
});

Deno.test("STATUS: ready with a valid subnet.env, code 50 naming the problem otherwise", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twc-status" });
  try {
    const conf = parseNetConf(
      JSON.stringify({ cniVersion: "1.1.0", name: "n", subnetFile: `${dir}/subnet.env` }),
      "STATUS",
    );
    const status = () => {
      try {
        cmdStatus(conf);
        return "ready";
      } catch (e) {
        assert.ok(e instanceof CniError);
        return `${e.code}: ${e.message}`;
      }
    };
    assert.match(
      status(),
      /^50: not ready: .*subnet\.env does not exist yet; check that the twill agent/,
    );
    await Deno.writeTextFile(`${dir}/subnet.env`, "FLANNEL_NETWORK=10.244.0.0/16\n");
    assert.match(status(), /^50: not ready: .*is missing FLANNEL_SUBNET/);
    await Deno.writeTextFile(
      `${dir}/subnet.env`,
      "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    );
    assert.equal(status(), "ready");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
