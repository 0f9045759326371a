// The plugin against a real kernel: a "node" namespace standing in for the host, pod namespaces
// made by the test, twill run inside the node namespace exactly as a runtime runs a plugin. What
// the kernel holds afterwards is read back with ip(8), independently of twill's own netlink code.
import assert from "node:assert/strict";
import { hostVethName } from "../../lib/cni/plan.ts";
import {
  flannelConf,
  ipj,
  listDir,
  must,
  netnsAdd,
  netnsDel,
  ns,
  podEnv,
  runTwill,
  sh,
  subnetEnvText,
} from "./support.ts";
import { inNetns } from "../../scripts/lib/run.ts";

// deno-lint-ignore no-explicit-any
type J = any;

async function setup(dir: string, env = subnetEnvText()): Promise<void> {
  await Deno.writeTextFile(`${dir}/subnet.env`, env);
}

function routesOf(rs: J[]): string[] {
  return rs.map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""}`).sort();
}

/**
 * Creates the namespaces and a temp dir (prefix twc-<tag>), runs the body, and removes both even
 * when the body fails.
 */
async function inSandbox(
  tag: string,
  namespaces: string[],
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `twc-${tag}` });
  try {
    for (const n of namespaces) await netnsAdd(n);
    await body(dir);
  } finally {
    await netnsDel(...namespaces);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ADD, CHECK and DEL wire three pods to cni0 as Flannel with bridge and host-local would", async () => {
  const node = ns("k1n"), pods = [ns("k1a"), ns("k1b"), ns("k1c")];
  await inSandbox("k1", [node, ...pods], async (dir) => {
    await setup(dir);
    const results: J[] = [];
    for (const [i, p] of pods.entries()) {
      // The third pod asks for a 1.x result; the others for Flannel's 0.3.1.
      const conf = flannelConf(dir, i === 2 ? { cniVersion: "1.0.0" } : {});
      const r = await runTwill(node, "ADD", conf, podEnv(`ctr${i}`, p));
      assert.equal(r.code, 0, r.stdout + r.stderr);
      results.push(r.json);
    }
    // Result shapes
    const [r0, , r2] = results;
    assert.equal(r0.cniVersion, "0.3.1");
    assert.deepEqual(r0.ips, [{
      version: "4",
      interface: 2,
      address: "10.244.1.2/24",
      gateway: "10.244.1.1",
    }]);
    assert.deepEqual(r0.routes, [{ dst: "10.244.0.0/16" }, { dst: "0.0.0.0/0", gw: "10.244.1.1" }]);
    assert.deepEqual(r0.dns, {});
    assert.equal(r0.interfaces.length, 3);
    assert.equal(r0.interfaces[0].name, "cni0");
    assert.match(r0.interfaces[1].name, /^veth[0-9a-f]{8}$/);
    assert.deepEqual(
      { name: r0.interfaces[2].name, sandbox: r0.interfaces[2].sandbox },
      { name: "eth0", sandbox: `/var/run/netns/${pods[0]}` },
    );
    assert.equal(r2.cniVersion, "1.0.0");
    assert.deepEqual(r2.ips, [{ interface: 2, address: "10.244.1.4/24", gateway: "10.244.1.1" }]);

    // The node: cni0 up with the gateway, MTU, a MAC that no port changes; three hairpin ports.
    const [br] = await ipj(node, "addr", "show", "cni0");
    assert.equal(br.mtu, 1450);
    assert.ok(br.addr_info.some((a: J) => a.local === "10.244.1.1" && a.prefixlen === 24));
    assert.equal(br.address, r0.interfaces[0].mac);
    const links = await ipj(node, "link", "show");
    const ports = links.filter((l: J) => l.master === "cni0");
    assert.equal(ports.length, 3);
    for (const [i, r] of results.entries()) {
      const port = ports.find((l: J) => l.ifname === r.interfaces[1].name);
      assert.ok(port, `host end ${r.interfaces[1].name} of pod ${i} is a port of cni0`);
      assert.equal(port.mtu, 1450);
      assert.equal(port.linkinfo.info_slave_data.hairpin, true);
      assert.equal(port.address, r.interfaces[1].mac);
    }
    // The pods: eth0 with the next free address, MTU, MAC as reported, routes via the gateway.
    for (const [i, p] of pods.entries()) {
      const [eth0] = await ipj(p, "addr", "show", "eth0");
      assert.equal(eth0.mtu, 1450);
      assert.equal(eth0.operstate, "UP");
      assert.equal(eth0.address, results[i].interfaces[2].mac);
      const v4 = eth0.addr_info.filter((a: J) => a.family === "inet");
      assert.deepEqual(v4.map((a: J) => `${a.local}/${a.prefixlen}`), [`10.244.1.${i + 2}/24`]);
      const routes = await ipj(p, "route", "show");
      assert.deepEqual(routesOf(routes), [
        "10.244.0.0/16 via 10.244.1.1",
        "10.244.1.0/24",
        "default via 10.244.1.1",
      ]);
    }
    // Pods reach each other and the gateway through the bridge.
    await must(inNetns(pods[0], ["ping", "-c1", "-W2", "10.244.1.3"]));
    await must(inNetns(pods[2], ["ping", "-c1", "-W2", "10.244.1.1"]));
    // host-local's state, byte for byte.
    assert.equal(await Deno.readTextFile(`${dir}/ipam/cbr0/10.244.1.2`), "ctr0\r\neth0");
    assert.equal(await Deno.readTextFile(`${dir}/ipam/cbr0/last_reserved_ip.0`), "10.244.1.4");

    // Flannel's scratch file: the delegate config upstream Flannel's DEL would read.
    const scratch = JSON.parse(await Deno.readTextFile(`${dir}/flannel/ctr0`));
    assert.deepEqual(
      {
        type: scratch.type,
        name: scratch.name,
        mtu: scratch.mtu,
        ipMasq: scratch.ipMasq,
        isGateway: scratch.isGateway,
        isDefaultGateway: scratch.isDefaultGateway,
        hairpinMode: scratch.hairpinMode,
        ipam: scratch.ipam,
      },
      {
        type: "bridge",
        name: "cbr0",
        mtu: 1450,
        ipMasq: false,
        isGateway: true,
        isDefaultGateway: true,
        hairpinMode: true,
        ipam: {
          type: "host-local",
          dataDir: `${dir}/ipam`,
          ranges: [[{ subnet: "10.244.1.0/24" }]],
          routes: [{ dst: "10.244.0.0/16" }],
        },
      },
    );

    // CHECK passes against each previous result...
    for (const [i, p] of pods.entries()) {
      const conf = flannelConf(dir, {
        cniVersion: results[i].cniVersion === "1.0.0" ? "1.0.0" : "0.4.0",
      });
      const c = await runTwill(
        node,
        "CHECK",
        { ...conf, prevResult: results[i] },
        podEnv(`ctr${i}`, p),
      );
      assert.equal(c.code, 0, c.stdout + c.stderr);
    }
    // ...and fails, naming what is wrong, once the pod's routes or MTU drift.
    await must(["ip", "-n", pods[1], "route", "del", "10.244.0.0/16"]);
    await must(["ip", "-n", pods[1], "link", "set", "eth0", "mtu", "1400"]);
    const host1 = results[1].interfaces[1].name;
    await must(["ip", "-n", node, "link", "set", host1, "type", "bridge_slave", "hairpin", "off"]);
    const bad = await runTwill(
      node,
      "CHECK",
      { ...flannelConf(dir, { cniVersion: "0.4.0" }), prevResult: results[1] },
      podEnv("ctr1", pods[1]),
    );
    assert.equal(bad.code, 1);
    assert.equal(bad.json.code, 100);
    assert.match(bad.json.msg, /route to 10\.244\.0\.0\/16 is missing/);
    assert.match(bad.json.msg, /MTU 1400, not 1450/);
    assert.match(bad.json.msg, /hairpin off, config says on/);

    // A repeated ADD of the same container keeps its address.
    const again = await runTwill(node, "ADD", flannelConf(dir), podEnv("ctr0", pods[0]));
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(again.json.ips[0].address, "10.244.1.2/24");

    // DEL removes everything, and is idempotent.
    for (const [i, p] of pods.entries()) {
      for (let n = 0; n < 2; n++) {
        const d = await runTwill(node, "DEL", flannelConf(dir), podEnv(`ctr${i}`, p));
        assert.equal(d.code, 0, d.stdout + d.stderr);
        assert.equal(d.stdout.trim(), "");
      }
      assert.deepEqual(await ipj(p, "link", "show", "type", "veth"), []);
    }
    assert.deepEqual(await listDir(`${dir}/ipam/cbr0`), ["last_reserved_ip.0", "lock"]);
    assert.deepEqual(await listDir(`${dir}/flannel`), []);
    assert.equal((await ipj(node, "link", "show")).filter((l: J) => l.master === "cni0").length, 0);
  });
});

Deno.test("dual stack: subnet.env with IPv6 gives the pod an address and routes of each family", async () => {
  const node = ns("k2n"), pod = ns("k2a");
  await inSandbox("k2", [node, pod], async (dir) => {
    await setup(
      dir,
      subnetEnvText({ ipv6Network: "fd00:10::/56", ipv6Subnet: "fd00:10:0:1::1/64" }),
    );
    const r = await runTwill(
      node,
      "ADD",
      flannelConf(dir, { cniVersion: "1.1.0" }),
      podEnv("v6", pod),
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json.ips, [
      { interface: 2, address: "10.244.1.2/24", gateway: "10.244.1.1" },
      { interface: 2, address: "fd00:10:0:1::2/64", gateway: "fd00:10:0:1::1" },
    ]);
    assert.deepEqual(r.json.routes, [
      { dst: "10.244.0.0/16" },
      { dst: "fd00:10::/56" },
      { dst: "0.0.0.0/0", gw: "10.244.1.1" },
      { dst: "::/0", gw: "fd00:10:0:1::1" },
    ]);
    const [eth0] = await ipj(pod, "addr", "show", "eth0");
    assert.ok(eth0.addr_info.some((a: J) => a.local === "fd00:10:0:1::2" && a.prefixlen === 64));
    const r6 = routesOf(await ipj(pod, "-6", "route", "show"));
    assert.ok(r6.includes("default via fd00:10:0:1::1"), r6.join(","));
    assert.ok(r6.includes("fd00:10::/56 via fd00:10:0:1::1"), r6.join(","));
    const [br] = await ipj(node, "addr", "show", "cni0");
    assert.ok(br.addr_info.some((a: J) => a.local === "fd00:10:0:1::1"));
    await must(inNetns(pod, ["ping", "-6", "-c1", "-W2", "fd00:10:0:1::1"]));
    const check = await runTwill(
      node,
      "CHECK",
      { ...flannelConf(dir, { cniVersion: "1.1.0" }), prevResult: r.json },
      podEnv("v6", pod),
    );
    assert.equal(check.code, 0, check.stdout);
    assert.equal(await Deno.readTextFile(`${dir}/ipam/cbr0/last_reserved_ip.1`), "fd00:10:0:1::2");
    const d = await runTwill(
      node,
      "DEL",
      flannelConf(dir, { cniVersion: "1.1.0" }),
      podEnv("v6", pod),
    );
    assert.equal(d.code, 0, d.stdout);
    assert.deepEqual(await listDir(`${dir}/ipam/cbr0`), [
      "last_reserved_ip.0",
      "last_reserved_ip.1",
      "lock",
    ]);
  });
});

Deno.test("bad input gets the spec's error code and leaves no veth, reservation or bridge behind", async () => {
  const node = ns("k3n"), pod = ns("k3a"), pod2 = ns("k3b");
  await inSandbox("k3", [node, pod, pod2], async (dir) => {
    // A /30: the gateway takes .1, so exactly one pod address (.2) exists.
    await setup(dir, subnetEnvText({ subnet: "10.244.9.1/30" }));
    const conf = flannelConf(dir);
    const cases: [
      string,
      string | Record<string, unknown>,
      Record<string, string>,
      number,
      RegExp,
    ][] = [
      ["malformed JSON", "{not json", podEnv("x1", pod), 6, /not valid JSON/],
      ["no CNI_NETNS", conf, { CNI_CONTAINERID: "x2", CNI_IFNAME: "eth0" }, 4, /CNI_NETNS/],
      [
        "no CNI_CONTAINERID",
        conf,
        { CNI_NETNS: `/var/run/netns/${pod}`, CNI_IFNAME: "eth0" },
        4,
        /CNI_CONTAINERID/,
      ],
      ["a netns that does not exist", conf, podEnv("x3", ns("k3-gone")), 3, /does not exist/],
      [
        "an unsupported cniVersion",
        { ...conf, cniVersion: "0.2.0" },
        podEnv("x4", pod),
        1,
        /not supported/,
      ],
      [
        "a delegate naming itself",
        { ...conf, delegate: { name: "x" } },
        podEnv("x5", pod),
        7,
        /name/,
      ],
    ];
    for (const [what, c, env, code, msg] of cases) {
      const r = await runTwill(node, "ADD", c, env);
      assert.equal(r.code, 1, what);
      assert.equal(r.json?.code, code, `${what}: ${r.stdout}`);
      assert.match(r.json.msg, msg, what);
      assert.equal(typeof r.json.cniVersion, "string");
      assert.equal(r.json.details, "");
    }
    assert.deepEqual(await listDir(`${dir}/ipam/cbr0`), []);
    assert.deepEqual(await ipj(node, "link", "show", "type", "bridge"), []);

    // The pod already has an eth0: the kernel refuses the veth; the reservation and the bridge
    // this ADD created are undone.
    await must([
      "ip",
      "-n",
      pod,
      "link",
      "add",
      "eth0",
      "type",
      "veth",
      "peer",
      "name",
      "eth0peer",
    ]);
    const clash = await runTwill(node, "ADD", conf, podEnv("x6", pod));
    assert.equal(clash.code, 1);
    assert.equal(clash.json.code, 102);
    assert.match(clash.json.msg, /already exists/);
    assert.deepEqual((await listDir(`${dir}/ipam/cbr0`)).filter((f) => f.startsWith("10.")), []);
    assert.deepEqual(await ipj(node, "link", "show", "type", "bridge"), []);
    assert.deepEqual(await ipj(node, "link", "show", "type", "veth"), []);

    // The one address goes to the first pod; the next ADD finds the subnet exhausted.
    const ok = await runTwill(node, "ADD", conf, podEnv("x7", pod2));
    assert.equal(ok.code, 0, ok.stdout);
    await must(["ip", "-n", pod, "link", "del", "eth0"]);
    const full = await runTwill(node, "ADD", conf, podEnv("x8", pod));
    assert.equal(full.code, 1);
    assert.equal(full.json.code, 101);
    assert.match(full.json.msg, /no free address left in 10\.244\.9\.0\/30/);
    assert.deepEqual((await listDir(`${dir}/ipam/cbr0`)).filter((f) => f.startsWith("10.")), [
      "10.244.9.2",
    ]);
    assert.equal((await ipj(node, "link", "show", "type", "veth")).length, 1);
    assert.deepEqual(await ipj(pod, "link", "show", "type", "veth"), []);

    // DEL succeeds for an unknown container, a vanished namespace, and without subnet.env.
    await Deno.remove(`${dir}/subnet.env`);
    for (const env of [podEnv("never-added", pod), podEnv("x7", ns("k3-gone"))]) {
      const d = await runTwill(node, "DEL", conf, env);
      assert.equal(d.code, 0, d.stdout);
    }
    assert.deepEqual((await listDir(`${dir}/ipam/cbr0`)).filter((f) => f.startsWith("10.")), []);
    assert.deepEqual(await ipj(node, "link", "show", "type", "veth"), []);
  });
});

Deno.test("ADD waits for subnet.env a bounded time, then fails with 11 pointing at the agent", async () => {
  const node = ns("k4n"), pod = ns("k4a");
  await inSandbox("k4", [node, pod], async (dir) => {
    const t0 = performance.now();
    const late = await runTwill(
      node,
      "ADD",
      flannelConf(dir, { subnetFileWaitSeconds: 0.4 }),
      podEnv("w1", pod),
    );
    const took = performance.now() - t0;
    assert.equal(late.code, 1);
    assert.equal(late.json.code, 11);
    assert.match(late.json.msg, /check that the twill agent runs on this node/);
    assert.ok(took >= 400, `waited ${took} ms`);
    // STATUS says not ready (50) without the file...
    const st = await runTwill(node, "STATUS", flannelConf(dir, { cniVersion: "1.1.0" }));
    assert.equal(st.json.code, 50);
    // ...and an ADD that starts before the agent writes the file succeeds once it appears.
    const pending = runTwill(
      node,
      "ADD",
      flannelConf(dir, { subnetFileWaitSeconds: 10 }),
      podEnv("w2", pod),
    );
    await new Promise((r) => setTimeout(r, 300));
    await setup(dir);
    const r = await pending;
    assert.equal(r.code, 0, r.stdout);
    assert.equal(r.json.ips[0].address, "10.244.1.2/24");
    const st2 = await runTwill(node, "STATUS", flannelConf(dir, { cniVersion: "1.1.0" }));
    assert.equal(st2.code, 0, st2.stdout);
    assert.equal(st2.stdout, "");
  });
});

Deno.test("GC releases the addresses and host ends of attachments not listed as valid", async () => {
  const node = ns("k5n"), pods = [ns("k5a"), ns("k5b")];
  await inSandbox("k5", [node, ...pods], async (dir) => {
    await setup(dir);
    for (const [i, p] of pods.entries()) {
      const r = await runTwill(node, "ADD", flannelConf(dir), podEnv(`g${i}`, p));
      assert.equal(r.code, 0, r.stdout);
    }
    const gc = await runTwill(node, "GC", {
      ...flannelConf(dir, { cniVersion: "1.1.0" }),
      "cni.dev/valid-attachments": [{ containerID: "g0", ifname: "eth0" }],
    });
    assert.equal(gc.code, 0, gc.stdout + gc.stderr);
    assert.deepEqual((await listDir(`${dir}/ipam/cbr0`)).filter((f) => f.startsWith("10.")), [
      "10.244.1.2",
    ]);
    assert.equal((await ipj(node, "link", "show", "type", "veth")).length, 1);
    assert.deepEqual(await listDir(`${dir}/flannel`), ["g0"]);
    // GC before 1.1.0 is refused as the spec says.
    const old = await runTwill(node, "GC", {
      ...flannelConf(dir),
      "cni.dev/valid-attachments": [],
    });
    assert.equal(old.json.code, 1);
  });
});

/** Gives node namespace `node` a link to an "outside" namespace that has no route to the pods. */
async function addOutside(node: string, outside: string): Promise<void> {
  await netnsAdd(outside);
  await must([
    "ip",
    "-n",
    node,
    "link",
    "add",
    "out0",
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    outside,
  ]);
  await must(["ip", "-n", node, "addr", "add", "192.0.2.1/24", "dev", "out0"]);
  await must(["ip", "-n", node, "link", "set", "out0", "up"]);
  await must(["ip", "-n", outside, "addr", "add", "192.0.2.2/24", "dev", "eth0"]);
  await must(["ip", "-n", outside, "link", "set", "eth0", "up"]);
}

Deno.test("FLANNEL_IPMASQ=false: the bridge masquerades pod traffic, through nf_tables netlink", async () => {
  const node = ns("k6n"), pod = ns("k6a"), outside = ns("k6o");
  const node2 = ns("k6m"), pod2 = ns("k6b"), outside2 = ns("k6p");
  const dir = await Deno.makeTempDir({ prefix: "twc-k6" });
  try {
    for (const n of [node, pod, node2, pod2]) await netnsAdd(n);
    await addOutside(node, outside);
    await addOutside(node2, outside2);
    await setup(dir, subnetEnvText({ ipMasq: false }));
    const r = await runTwill(node, "ADD", flannelConf(dir), podEnv("m1", pod));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const table = await sh([
      "ip",
      "netns",
      "exec",
      node,
      "nft",
      "list",
      "table",
      "inet",
      "twill-cni-masq",
    ]);
    assert.equal(table.code, 0, table.stderr);
    for (
      const rule of [
        "type nat hook postrouting priority srcnat; policy accept;",
        "ip saddr 10.244.1.0/24 ip daddr 10.244.1.0/24 return",
        "ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return",
        "ip saddr 10.244.1.0/24 ip daddr 224.0.0.0/4 return",
        "ip saddr 10.244.1.0/24 masquerade",
      ]
    ) assert.ok(table.stdout.includes(rule), `${rule}\n${table.stdout}`);
    // The outside has no route back to the pod subnet: only a masqueraded ping gets an answer.
    await must(inNetns(pod, ["ping", "-c1", "-W2", "192.0.2.2"]));
    // A second ADD replaces the table rather than adding a second copy of the rules.
    await must(["ip", "-n", pod, "link", "set", "eth0", "name", "old0"]);
    const again = await runTwill(node, "ADD", flannelConf(dir), podEnv("m1", pod));
    assert.equal(again.code, 0, again.stdout);
    const table2 = await sh([
      "ip",
      "netns",
      "exec",
      node,
      "nft",
      "list",
      "table",
      "inet",
      "twill-cni-masq",
    ]);
    assert.equal(table2.stdout.split("masquerade").length, 2, table2.stdout);

    // With FLANNEL_IPMASQ=true (the agent masquerades) the plugin adds nothing, and the same
    // ping finds no way back.
    await setup(dir, subnetEnvText({ ipMasq: true }));
    const conf2 = flannelConf(dir, { dataDir: `${dir}/f2`, ipam: { dataDir: `${dir}/i2` } });
    const r2 = await runTwill(node2, "ADD", conf2, podEnv("m2", pod2));
    assert.equal(r2.code, 0, r2.stdout);
    const none = await sh(inNetns(node2, ["nft", "list", "tables"]));
    assert.doesNotMatch(none.stdout, /twill-cni-masq/);
    const lost = await sh(inNetns(pod2, ["ping", "-c1", "-W1", "192.0.2.2"]));
    assert.notEqual(lost.code, 0);
  } finally {
    await netnsDel(node, pod, outside, node2, pod2, outside2);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cni0 still holding an old subnet's gateway: ADD adds the new gateway beside it", async () => {
  const node = ns("k7n"), pod = ns("k7a");
  await inSandbox("k7", [node, pod], async (dir) => {
    await must(["ip", "-n", node, "link", "add", "cni0", "type", "bridge"]);
    await must(["ip", "-n", node, "addr", "add", "10.244.9.1/24", "dev", "cni0"]);
    await setup(dir, subnetEnvText({ subnet: "10.244.3.1/24" }));
    const r = await runTwill(node, "ADD", flannelConf(dir), podEnv("o1", pod));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json.ips[0].address, "10.244.3.2/24");
    const [br] = await ipj(node, "addr", "show", "cni0");
    const v4 = br.addr_info.filter((a: J) => a.family === "inet").map((a: J) =>
      `${a.local}/${a.prefixlen}`
    );
    assert.deepEqual(v4.sort(), ["10.244.3.1/24", "10.244.9.1/24"]);
    await must(inNetns(pod, ["ping", "-c1", "-W2", "10.244.3.1"]));
  });
});

Deno.test("a link already holding the attachment's host-end name is never touched", async () => {
  const node = ns("k8n"), pod = ns("k8a");
  await inSandbox("k8", [node, pod], async (dir) => {
    await setup(dir);
    // Someone else's interface happens to have the name twill would pick first.
    const taken = hostVethName("coll", "eth0");
    await must(["ip", "-n", node, "link", "add", taken, "type", "veth", "peer", "name", "other0"]);
    const r = await runTwill(node, "ADD", flannelConf(dir), podEnv("coll", pod));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.notEqual(r.json.interfaces[1].name, taken);
    assert.match(r.json.interfaces[1].name, /^veth[0-9a-f]{8}$/);
    const check = await runTwill(
      node,
      "CHECK",
      { ...flannelConf(dir, { cniVersion: "0.4.0" }), prevResult: r.json },
      podEnv("coll", pod),
    );
    assert.equal(check.code, 0, check.stdout);
    const d = await runTwill(node, "DEL", flannelConf(dir), podEnv("coll", pod));
    assert.equal(d.code, 0, d.stdout);
    const names = (await ipj(node, "link", "show")).map((l: J) => l.ifname);
    assert.ok(names.includes(taken), "the other interface survives ADD and DEL");
    assert.ok(!names.includes(r.json.interfaces[1].name), "twill's own host end is gone");
  });
});
