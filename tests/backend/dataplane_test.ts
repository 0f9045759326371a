import assert from "node:assert/strict";
import { planDataPlane } from "../../lib/backend/dataplane.ts";
import { vxlanDesired } from "../../lib/backend/vxlan.ts";
import { hostGwDesired } from "../../lib/backend/hostgw.ts";
import { planDevice, randomVtepMac, type VxlanDeviceSpec } from "../../lib/backend/vxlan_device.ts";
import { ownedRoutes } from "../../lib/backend/routes.ts";
import { MASQ_RULES, renderMasqRuleset } from "../../lib/net/nftables.ts";
import { chooseInterface } from "../../lib/net/iface.ts";
import { parseCIDR } from "../../lib/net/cidr.ts";
import type { Lease } from "../../lib/subnet/lease.ts";

function peer(sn: string, ip: string, mac: string): Lease {
  return {
    subnet: parseCIDR(sn),
    ipv6Subnet: null,
    attrs: {
      publicIP: ip,
      publicIPv6: null,
      backendType: "vxlan",
      backendData: { VNI: 1, VtepMAC: mac },
    },
    modRevision: 1n,
    storeLease: 0n,
    expiresAt: null,
  };
}

const A = peer("10.5.2.0/24", "192.0.2.2", "02:00:00:00:00:02");
const B = peer("10.5.3.0/24", "192.0.2.3", "02:00:00:00:00:03");

Deno.test("vxlan plan from nothing: neighbour and FDB before the route, one batch each", () => {
  const want = vxlanDesired([A, B], "flannel.1", "192.0.2.1", null);
  const p = planDataPlane(want, { routes: [], neighs: [], fdbs: [] });
  assert.deepEqual(p.ipFirst, [
    "neigh replace 10.5.2.0 lladdr 02:00:00:00:00:02 dev flannel.1 nud permanent",
    "neigh replace 10.5.3.0 lladdr 02:00:00:00:00:03 dev flannel.1 nud permanent",
  ]);
  assert.deepEqual(p.bridge, [
    "fdb replace 02:00:00:00:00:02 dev flannel.1 dst 192.0.2.2 self permanent",
    "fdb replace 02:00:00:00:00:03 dev flannel.1 dst 192.0.2.3 self permanent",
  ]);
  assert.deepEqual(p.ipLast, [
    "route replace 10.5.2.0/24 via 10.5.2.0 dev flannel.1 onlink",
    "route replace 10.5.3.0/24 via 10.5.3.0 dev flannel.1 onlink",
  ]);
  assert.equal(p.added, 6);
  // once applied, nothing to do
  const again = planDataPlane(want, want);
  assert.deepEqual([again.ipFirst, again.bridge, again.ipLast], [[], [], []]);
});

Deno.test("vxlan plan: a gone lease loses route, neighbour and FDB; a changed MAC drops the old FDB", () => {
  const have = vxlanDesired([A, B], "flannel.1", "192.0.2.1", null);
  const B2 = peer("10.5.3.0/24", "192.0.2.3", "02:00:00:00:00:33");
  const want = vxlanDesired([B2], "flannel.1", "192.0.2.1", null);
  const p = planDataPlane(want, have);
  assert.deepEqual(p.ipFirst, [
    "route del 10.5.2.0/24 via 10.5.2.0 dev flannel.1",
    "neigh del 10.5.2.0 dev flannel.1",
    "neigh replace 10.5.3.0 lladdr 02:00:00:00:00:33 dev flannel.1 nud permanent",
  ]);
  assert.deepEqual(p.bridge, [
    "fdb del 02:00:00:00:00:02 dev flannel.1 dst 192.0.2.2 self",
    "fdb del 02:00:00:00:00:03 dev flannel.1 dst 192.0.2.3 self",
    "fdb replace 02:00:00:00:00:33 dev flannel.1 dst 192.0.2.3 self permanent",
  ]);
  assert.deepEqual(p.ipLast, []);
});

Deno.test("vxlan plan: a deleted route is restored; DirectRouting uses the PublicIP on the same L2", () => {
  const want = vxlanDesired([A, B], "flannel.1", "192.0.2.1", null);
  const have = { ...want, routes: want.routes.slice(1) };
  assert.deepEqual(planDataPlane(want, have).ipLast, [
    "route replace 10.5.2.0/24 via 10.5.2.0 dev flannel.1 onlink",
  ]);
  const far = peer("10.5.4.0/24", "198.51.100.4", "02:00:00:00:00:04");
  const d = vxlanDesired([A, far], "flannel.1", "192.0.2.1", {
    iface: "eth0",
    underlay: parseCIDR("192.0.2.0/24"),
  });
  assert.deepEqual(d.routes, [
    { dst: "10.5.2.0/24", via: "192.0.2.2", dev: "eth0", onlink: false },
    { dst: "10.5.4.0/24", via: "10.5.4.0", dev: "flannel.1", onlink: true },
  ]);
});

Deno.test("host-gw: a route via the PublicIP per peer; only cluster routes with a gateway are ours", () => {
  const want = hostGwDesired([A, B], "eth0", "192.0.2.1");
  assert.deepEqual(want.routes.map((r) => `${r.dst} ${r.via} ${r.dev}`), [
    "10.5.2.0/24 192.0.2.2 eth0",
    "10.5.3.0/24 192.0.2.3 eth0",
  ]);
  const owned = ownedRoutes(
    [
      { dst: "default", gateway: "192.0.2.254" },
      { dst: "192.0.2.0/24" },
      { dst: "10.5.9.0/24", gateway: "192.0.2.9" },
      { dst: "10.5.1.0/24", gateway: "192.0.2.1" },
      { dst: "172.16.0.0/16", gateway: "192.0.2.254" },
    ],
    "eth0",
    parseCIDR("10.5.0.0/16"),
    parseCIDR("10.5.1.0/24"),
  );
  assert.deepEqual(owned, [{ dst: "10.5.9.0/24", via: "192.0.2.9", dev: "eth0", onlink: false }]);
  assert.deepEqual(planDataPlane(want, { routes: owned, neighs: [], fdbs: [] }).ipFirst, [
    "route del 10.5.9.0/24 via 192.0.2.9 dev eth0",
  ]);
});

const spec: VxlanDeviceSpec = {
  name: "flannel.1",
  vni: 1,
  local: "192.0.2.1",
  link: "eth0",
  port: 8472,
  mac: "02:aa:00:00:00:01",
  mtu: 1450,
  address: "10.5.1.0/32",
};

Deno.test("vxlan device: created with the kept MAC, reused when compatible, recreated when not", () => {
  assert.deepEqual(planDevice(spec, null).lines, [
    "link add flannel.1 address 02:aa:00:00:00:01 mtu 1450 type vxlan id 1 local 192.0.2.1 dev eth0 dstport 8472 nolearning",
    "link set flannel.1 up",
    "addr add 10.5.1.0/32 dev flannel.1",
  ]);
  const good = {
    ifname: "flannel.1",
    mtu: 1450,
    address: "02:aa:00:00:00:01",
    flags: ["UP"],
    linkinfo: {
      info_kind: "vxlan",
      info_data: { id: 1, local: "192.0.2.1", link: "eth0", port: 8472, learning: false },
    },
    addr_info: [{ family: "inet", local: "10.5.1.0", prefixlen: 32 }],
  };
  assert.deepEqual(planDevice(spec, good).lines, []);
  assert.deepEqual(
    planDevice(spec, {
      ...good,
      mtu: 1500,
      addr_info: [{ family: "inet", local: "10.5.7.0", prefixlen: 32 }],
    }).lines,
    [
      "link set flannel.1 mtu 1450",
      "addr del 10.5.7.0/32 dev flannel.1",
      "addr add 10.5.1.0/32 dev flannel.1",
    ],
  );
  const bad = planDevice(spec, {
    ...good,
    linkinfo: { info_kind: "vxlan", info_data: { ...good.linkinfo.info_data, id: 2 } },
  });
  assert.equal(bad.recreated, true);
  assert.equal(bad.lines[0], "link del flannel.1");
  const mac = randomVtepMac(new Uint8Array([0xff, 1, 2, 3, 4, 5]));
  assert.equal(mac, "fe:01:02:03:04:05");
});

Deno.test("masquerade ruleset: Flannel's semantics in table ip twill, replaced atomically", () => {
  const t = renderMasqRuleset("10.5.0.0/16", "10.5.3.0/24");
  assert.equal(
    t,
    `table ip twill {}
delete table ip twill
table ip twill {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.5.0.0/16 ip daddr 10.5.0.0/16 return
    ip saddr != 10.5.0.0/16 ip daddr 10.5.3.0/24 return
    ip saddr 10.5.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random
    ip saddr != 10.5.0.0/16 ip daddr 10.5.0.0/16 masquerade fully-random
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ip saddr 10.5.0.0/16 accept
    ip daddr 10.5.0.0/16 accept
  }
}
`,
  );
  // the agent's periodic check compares the live rule count with MASQ_RULES
  assert.equal(
    t.split("\n").filter((l) => / (accept|return|masquerade)\b/.test(l) && !l.includes("policy"))
      .length,
    MASQ_RULES,
  );
});

Deno.test("interface choice: --iface by name or address, else the default-route device", () => {
  const links = [
    {
      ifindex: 1,
      ifname: "lo",
      mtu: 65536,
      addr_info: [{ family: "inet" as const, local: "127.0.0.1", prefixlen: 8, scope: "host" }],
    },
    {
      ifindex: 2,
      ifname: "eth0",
      mtu: 1500,
      addr_info: [{ family: "inet" as const, local: "192.0.2.1", prefixlen: 24 }],
    },
    {
      ifindex: 3,
      ifname: "eth1",
      mtu: 9000,
      addr_info: [{ family: "inet" as const, local: "198.51.100.1", prefixlen: 24 }],
    },
  ];
  assert.equal(chooseInterface(links, ["eth1"], null).address, "198.51.100.1");
  assert.equal(chooseInterface(links, ["nope", "192.0.2.1"], null).name, "eth0");
  assert.equal(chooseInterface(links, [], "eth1").mtu, 9000);
  assert.throws(
    () => chooseInterface(links, ["eth9"], "eth0"),
    /no interface matches --iface eth9/,
  );
  assert.throws(() => chooseInterface(links, [], null), /no default route/);
});

Deno.test("watch fast path: adds in L2-then-route order, removals first, renewals cost nothing", async () => {
  const { eventLines } = await import("../../lib/backend/dataplane.ts");
  const { splitPeerEvents } = await import("../../lib/subnet/watcher.ts");
  const d = (ls: Lease[]) => vxlanDesired(ls, "flannel.1", "192.0.2.1", null);
  const A2 = peer("10.5.2.0/24", "192.0.2.2", "02:00:00:00:00:22"); // A with a new VTEP MAC
  const renewedB = { ...B, modRevision: 9n };
  const s = splitPeerEvents([
    { type: "added", lease: A2, previous: A },
    { type: "added", lease: renewedB, previous: B },
    { type: "removed", lease: peer("10.5.4.0/24", "192.0.2.4", "02:00:00:00:00:04") },
  ]);
  assert.equal(s.add.length, 1, "the renewal is dropped");
  const p = eventLines(d(s.add), d(s.remove), d(s.replaced));
  assert.deepEqual(p.ipFirst, [
    "route del 10.5.4.0/24 via 10.5.4.0 dev flannel.1",
    "neigh del 10.5.4.0 dev flannel.1",
  ]);
  assert.deepEqual(p.bridge, [
    "fdb del 02:00:00:00:00:04 dev flannel.1 dst 192.0.2.4 self",
    "fdb del 02:00:00:00:00:02 dev flannel.1 dst 192.0.2.2 self",
    "fdb replace 02:00:00:00:00:22 dev flannel.1 dst 192.0.2.2 self permanent",
  ]);
  assert.deepEqual(p.ipLast, [
    "neigh replace 10.5.2.0 lladdr 02:00:00:00:00:22 dev flannel.1 nud permanent",
    "route replace 10.5.2.0/24 via 10.5.2.0 dev flannel.1 onlink",
  ]);
});

Deno.test("dual stack: the IPv6 overlay uses IPv6Subnet, PublicIPv6 and BackendV6Data", async () => {
  const { vxlanDesiredFamily } = await import("../../lib/backend/vxlan.ts");
  const p = {
    ...peer("10.5.2.0/24", "192.0.2.2", "02:00:00:00:00:02"),
    ipv6Subnet: parseCIDR("fd70:0:0:2::/64"),
  };
  p.attrs = {
    ...p.attrs,
    publicIPv6: "fd99::2",
    backendV6Data: { VNI: 1, VtepMAC: "02:00:00:00:06:02" },
  };
  const d = vxlanDesiredFamily([p], "flannel-v6.1", "fd99::1", null, true);
  assert.deepEqual(d.neighs, [{
    ip: "fd70:0:0:2::",
    mac: "02:00:00:00:06:02",
    dev: "flannel-v6.1",
  }]);
  assert.deepEqual(d.fdbs, [{ mac: "02:00:00:00:06:02", dst: "fd99::2", dev: "flannel-v6.1" }]);
  assert.deepEqual(d.routes, [
    { dst: "fd70:0:0:2::/64", via: "fd70:0:0:2::", dev: "flannel-v6.1", onlink: true },
  ]);
  // an IPv6 device is compared on local6 and its IPv6 address
  const v6spec: VxlanDeviceSpec = {
    ...spec,
    name: "flannel-v6.1",
    local: "fd99::1",
    address: "fd70:0:0:1::/128",
  };
  const have = {
    ifname: "flannel-v6.1",
    mtu: 1450,
    address: "02:aa:00:00:00:01",
    flags: ["UP"],
    linkinfo: {
      info_kind: "vxlan",
      info_data: { id: 1, local6: "fd99::1", link: "eth0", port: 8472, learning: false },
    },
    addr_info: [
      { family: "inet6", local: "fd70:0:0:1::", prefixlen: 128 },
      { family: "inet6", local: "fe80::aa:ff:fe00:1", prefixlen: 64 },
    ],
  };
  assert.deepEqual(planDevice(v6spec, have).lines, []);
});
