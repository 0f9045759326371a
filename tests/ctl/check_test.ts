// ctl check's pure comparison: a healthy node has no findings; each broken item, one at a time,
// gives exactly its line. The expected state comes from the vxlan module through the registry.
import assert from "node:assert/strict";
import { expectedState } from "../../lib/backend/registry.ts";
import { parseVxlanConfig } from "../../lib/backend/vxlan.ts";
import { type CheckInput, checkNode, findingLine, forwardChains } from "../../lib/ctl/check.ts";
import { parseCIDR } from "../../lib/net/cidr.ts";
import type { Lease } from "../../lib/subnet/lease.ts";

const MAC1 = "0a:00:00:00:00:01";
const MAC2 = "0a:00:00:00:00:02";

function lease(subnet: string, ip: string, mac: string): Lease {
  return {
    subnet: parseCIDR(subnet),
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

/** Node 1 (10.99.0.1, 10.50.1.0/24) with one peer (10.99.0.2, 10.50.2.0/24), all in order. */
function healthy(): CheckInput {
  const own = lease("10.50.1.0/24", "10.99.0.1", MAC1);
  const peers = [lease("10.50.2.0/24", "10.99.0.2", MAC2)];
  const underlay = { name: "eth0", mtu: 1500, addrs: ["10.99.0.1/24"] };
  const expected = expectedState(parseVxlanConfig(() => undefined), {
    iface: { name: "eth0", mtu: 1500, address: "10.99.0.1", prefixLen: 24 },
    publicIP: "10.99.0.1",
    own,
    peers,
    ipv6: false,
  });
  return {
    subnetFile: "/run/flannel/subnet.env",
    env: { subnet: parseCIDR("10.50.1.1/24", true), mtu: 1450, ipMasq: true },
    network: parseCIDR("10.50.0.0/16"),
    own,
    peers,
    underlay,
    expected,
    kernel: {
      links: [
        { name: "lo", mtu: 65536, addrs: ["127.0.0.1/8"] },
        underlay,
        { name: "flannel.1", mtu: 1450, addrs: ["10.50.1.0/32", "fe80::1/64"] },
        { name: "cni0", mtu: 1450, addrs: ["10.50.1.1/24", "fe80::2/64"] },
      ],
      routes: [{ dst: "10.50.2.0/24", via: "10.50.2.0", dev: "flannel.1", onlink: true }],
      neighs: [{ ip: "10.50.2.0", mac: MAC2, dev: "flannel.1" }],
      fdbs: [{ mac: MAC2, dst: "10.99.0.2", dev: "flannel.1" }],
      masqRules: { ip: 6, ip6: -1 },
      forwardChains: [],
    },
    probes: [{
      target: "10.50.2.0",
      peer: "10.50.2.0/24",
      publicIP: "10.99.0.2",
      path: "UDP 8472",
      ok: true,
    }],
  };
}

function lines(i: CheckInput): string[] {
  return checkNode(i).map(findingLine);
}

Deno.test("check: a healthy node has no findings", () => {
  assert.deepEqual(lines(healthy()), []);
});

Deno.test("check: the vxlan module contributes device, MTU, entries and one probe per peer", () => {
  const e = healthy().expected!;
  assert.deepEqual(e.device, {
    name: "flannel.1",
    address: "10.50.1.0/32",
    mtu: 1450,
    mtuWhy: "eth0 MTU 1500 − 50",
  });
  assert.deepEqual(e.probes.map((p) => [p.target, p.path]), [["10.50.2.0", "UDP 8472"]]);
});

Deno.test("check: device missing, or without its address", () => {
  const i = healthy();
  i.kernel.links = i.kernel.links.filter((l) => l.name !== "flannel.1");
  assert.deepEqual(lines(i), [
    "device: flannel.1 is missing; fix: restart the twill agent on this node (it creates the device)",
  ]);
  const j = healthy();
  j.kernel.links[2].addrs = ["10.50.9.0/32"];
  assert.deepEqual(lines(j), [
    "device: flannel.1 lacks its address 10.50.1.0/32 (it has 10.50.9.0/32); fix: ip addr " +
    "replace 10.50.1.0/32 dev flannel.1; ip addr del 10.50.9.0/32 dev flannel.1",
  ]);
});

Deno.test("check: a missing route (and no probe line for that peer)", () => {
  const i = healthy();
  i.kernel.routes = [];
  i.probes[0].ok = false;
  assert.deepEqual(lines(i), [
    "route: no route 10.50.2.0/24 via 10.50.2.0 dev flannel.1 onlink; " +
    "fix: ip route replace 10.50.2.0/24 via 10.50.2.0 dev flannel.1 onlink",
  ]);
  i.kernel.routes = [{ dst: "10.50.2.0/24", via: "10.99.0.254", dev: "eth0", onlink: false }];
  assert.deepEqual(lines(i), [
    "route: 10.50.2.0/24 goes 10.50.2.0/24 via 10.99.0.254 dev eth0, not 10.50.2.0/24 via " +
    "10.50.2.0 dev flannel.1 onlink; fix: ip route replace 10.50.2.0/24 via 10.50.2.0 dev " +
    "flannel.1 onlink",
  ]);
});

Deno.test("check: a missing neighbour", () => {
  const i = healthy();
  i.kernel.neighs = [];
  assert.deepEqual(lines(i), [
    `neighbour: no permanent neighbour 10.50.2.0 lladdr ${MAC2} on flannel.1; ` +
    `fix: ip neigh replace 10.50.2.0 lladdr ${MAC2} dev flannel.1 nud permanent`,
  ]);
});

Deno.test("check: a missing FDB entry", () => {
  const i = healthy();
  i.kernel.fdbs = [{ mac: MAC2, dst: "10.99.0.9", dev: "flannel.1" }];
  assert.deepEqual(lines(i), [
    `fdb: no FDB entry ${MAC2} dst 10.99.0.2 on flannel.1; ` +
    `fix: bridge fdb replace ${MAC2} dev flannel.1 dst 10.99.0.2`,
  ]);
});

Deno.test("check: MTU of the device, of subnet.env and of cni0", () => {
  const i = healthy();
  i.kernel.links[2].mtu = 1400;
  i.env.mtu = 1400;
  i.kernel.links[3].mtu = 1500;
  assert.deepEqual(lines(i), [
    "mtu: flannel.1 has MTU 1400, want 1450 (eth0 MTU 1500 − 50); fix: ip link set flannel.1 " +
    "mtu 1450",
    "mtu: /run/flannel/subnet.env has FLANNEL_MTU=1400, want 1450 (eth0 MTU 1500 − 50); fix: " +
    "restart the twill agent (it rewrites the file); pods created since keep the old MTU until " +
    "they are recreated",
    "mtu: cni0 has MTU 1500, FLANNEL_MTU is 1400; fix: ip link set cni0 mtu 1400",
  ]);
});

Deno.test("check: a cni0 address outside the node's lease", () => {
  const i = healthy();
  i.kernel.links[3].addrs.push("10.50.7.1/24");
  assert.deepEqual(lines(i), [
    "cni0: cni0 has 10.50.7.1/24, outside this node's lease 10.50.1.0/24; " +
    "fix: ip addr del 10.50.7.1/24 dev cni0 once no pod uses it",
  ]);
});

Deno.test("check: masquerade rules missing while --ip-masq is on, and not looked at when off", () => {
  const i = healthy();
  i.kernel.masqRules.ip = 0;
  assert.deepEqual(lines(i), [
    "masquerade: table ip twill has 0 of 6 rules while /run/flannel/subnet.env says " +
    "FLANNEL_IPMASQ=true; fix: the agent restores it within its reconcile interval (5 s); if it " +
    "stays, restart the twill agent and read its log",
  ]);
  i.kernel.masqRules.ip = -1;
  assert.match(lines(i)[0], /^masquerade: table ip twill is missing while/);
  i.env.ipMasq = false;
  assert.deepEqual(lines(i), []);
});

Deno.test("check: a forward chain of policy drop in another table", () => {
  const i = healthy();
  i.kernel.forwardChains = [
    { family: "inet", table: "blocker", chain: "fwd", policy: "drop", acceptsNetwork: false },
    { family: "ip", table: "filter", chain: "FORWARD", policy: "drop", acceptsNetwork: false },
    { family: "ip", table: "docker", chain: "FORWARD", policy: "drop", acceptsNetwork: true },
    { family: "ip", table: "other", chain: "fw", policy: "accept", acceptsNetwork: false },
  ];
  assert.deepEqual(lines(i), [
    "forward: chain inet blocker fwd drops forwarded traffic (policy drop) and accepts nothing " +
    "of 10.50.0.0/16, so pod traffic between nodes is dropped; fix: nft insert rule inet " +
    "blocker fwd ip saddr 10.50.0.0/16 accept; nft insert rule inet blocker fwd ip daddr " +
    "10.50.0.0/16 accept",
    "forward: chain ip filter FORWARD drops forwarded traffic (policy drop) and accepts nothing " +
    "of 10.50.0.0/16, so pod traffic between nodes is dropped; fix: iptables -I FORWARD -s " +
    "10.50.0.0/16 -j ACCEPT; iptables -I FORWARD -d 10.50.0.0/16 -j ACCEPT",
  ]);
});

Deno.test("check: forwardChains reads nft -j output, and sees accept rules for the network", () => {
  const ruleset = {
    nftables: [
      { metainfo: { json_schema_version: 1 } },
      { table: { family: "inet", name: "blocker" } },
      {
        chain: {
          family: "inet",
          table: "blocker",
          name: "fwd",
          type: "filter",
          hook: "forward",
          prio: 0,
          policy: "drop",
        },
      },
      {
        chain: { family: "ip", table: "twill", name: "forward", hook: "forward", policy: "accept" },
      },
      {
        chain: { family: "ip", table: "filter", name: "FORWARD", hook: "forward", policy: "drop" },
      },
      {
        rule: {
          family: "ip",
          table: "filter",
          chain: "FORWARD",
          expr: [
            {
              match: {
                op: "==",
                left: { payload: { protocol: "ip", field: "saddr" } },
                right: { prefix: { addr: "10.50.0.0", len: 16 } },
              },
            },
            { accept: null },
          ],
        },
      },
    ],
  };
  assert.deepEqual(forwardChains(ruleset, parseCIDR("10.50.0.0/16")), [
    { family: "inet", table: "blocker", chain: "fwd", policy: "drop", acceptsNetwork: false },
    { family: "ip", table: "filter", chain: "FORWARD", policy: "drop", acceptsNetwork: true },
  ]);
  assert.deepEqual(forwardChains({ nope: 1 }, parseCIDR("10.50.0.0/16")), []);
});

Deno.test("check: a peer that does not answer through the overlay", () => {
  const i = healthy();
  i.probes[0].ok = false;
  assert.deepEqual(lines(i), [
    "reachability: no answer from peer 10.50.2.0/24 (10.99.0.2) through the overlay (ping " +
    "10.50.2.0): UDP 8472 is blocked between 10.99.0.1 and 10.99.0.2, or the peer lacks its " +
    "entries for this node; fix: open UDP 8472 between 10.99.0.1 and 10.99.0.2 (host firewall, " +
    "security group); run twill ctl check on the peer",
  ]);
});

Deno.test("check: a public IP on no interface here", () => {
  const i = healthy();
  i.underlay = null;
  i.expected = null;
  assert.deepEqual(lines(i), [
    "lease: this node's lease 10.50.1.0/24 names public IP 10.99.0.1, which no interface here " +
    "has; fix: start the agent with --iface or --public-ip naming this node's underlay address",
  ]);
});
