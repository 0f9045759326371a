// The ipip backend's pure parts: its one field, the device request it would send for a node's
// interface (checked byte for byte, layout as in tests/net/ipip_test.ts), and the routes per lease,
// with and without DirectRouting.
import assert from "node:assert/strict";
import { ipipDesired, ipipDeviceSpec, parseIpipConfig } from "../../lib/backend/ipip.ts";
import { backendConfigParser } from "../../lib/backend/registry.ts";
import { parseCIDR } from "../../lib/net/cidr.ts";
import type { ChosenIface } from "../../lib/net/iface.ts";
import { encodeCreateIpip } from "../../lib/net/netlink/ipip.ts";
import { NetConfigError, parseNetConfig } from "../../lib/subnet/config.ts";
import type { Lease } from "../../lib/subnet/lease.ts";

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
const iface: ChosenIface = {
  name: "eth0",
  index: 2,
  mtu: 1500,
  address: "192.168.1.10",
  prefixLen: 24,
  address6: null,
  prefixLen6: 0,
};

function lease(sub: string, pub: string, type = "ipip"): Lease {
  return {
    subnet: parseCIDR(sub),
    ipv6Subnet: null,
    attrs: { publicIP: pub, publicIPv6: null, backendType: type },
    modRevision: 0n,
    storeLease: 0n,
    expiresAt: null,
  };
}

Deno.test("ipip config: DirectRouting, default false; bad type refused", () => {
  const c = parseNetConfig(
    '{"Network":"10.50.0.0/16","Backend":{"Type":"ipip"}}',
    backendConfigParser,
  );
  assert.deepEqual(c.backend, { type: "ipip", directRouting: false });
  assert.deepEqual(
    parseIpipConfig((k) => ({ DirectRouting: true } as Record<string, unknown>)[k]),
    {
      type: "ipip",
      directRouting: true,
    },
  );
  assert.throws(
    () => parseIpipConfig((k) => (k === "DirectRouting" ? "yes" : undefined)),
    (e) => e instanceof NetConfigError && /DirectRouting must be true or false/.test(e.message),
  );
});

Deno.test("ipip device: flannel.ipip, local = the interface address, MTU − 20, byte for byte", () => {
  const spec = ipipDeviceSpec(iface);
  const got = encodeCreateIpip(5, spec);
  // deno-fmt-ignore
  const want = [
    96, 0, 0, 0, 16, 0, 0x05, 0x06, 5, 0, 0, 0, 0, 0, 0, 0,  // RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,          // ifinfomsg
    17, 0, 3, 0, ...ascii("flannel.ipip"), 0, 0, 0, 0,       // IFLA_IFNAME
    8, 0, 4, 0, 0xc8, 0x05, 0, 0,                            // IFLA_MTU 1480
    36, 0, 18, 0x80,                                         // IFLA_LINKINFO
    9, 0, 1, 0, ...ascii("ipip"), 0, 0, 0, 0,                //   IFLA_INFO_KIND
    20, 0, 2, 0x80,                                          //   IFLA_INFO_DATA
    8, 0, 2, 0, 192, 168, 1, 10,                             //     IFLA_IPTUN_LOCAL
    5, 0, 10, 0, 1, 0, 0, 0,                                 //     IFLA_IPTUN_PMTUDISC 1
  ];
  assert.deepEqual([...got], want);
  assert.throws(() => ipipDeviceSpec({ ...iface, mtu: 20 }), /too small for ipip/);
});

Deno.test("ipip routes: via PublicIP onlink on flannel.ipip; own and other types skipped", () => {
  const peers = [
    lease("10.50.2.0/24", "192.168.1.11"),
    lease("10.50.3.0/24", "172.16.0.3"),
    lease("10.50.1.0/24", "192.168.1.10"),
    lease("10.50.4.0/24", "192.168.1.14", "vxlan"),
  ];
  assert.deepEqual(ipipDesired(peers, "192.168.1.10", null).routes, [
    { dst: "10.50.2.0/24", via: "192.168.1.11", dev: "flannel.ipip", onlink: true },
    { dst: "10.50.3.0/24", via: "172.16.0.3", dev: "flannel.ipip", onlink: true },
  ]);
  const direct = { iface: "eth0", underlay: parseCIDR("192.168.1.10/24") };
  assert.deepEqual(ipipDesired(peers, "192.168.1.10", direct).routes, [
    { dst: "10.50.2.0/24", via: "192.168.1.11", dev: "eth0", onlink: false },
    { dst: "10.50.3.0/24", via: "172.16.0.3", dev: "flannel.ipip", onlink: true },
  ]);
});
