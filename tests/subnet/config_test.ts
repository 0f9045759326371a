import assert from "node:assert/strict";
import { parseNetConfig } from "../../lib/subnet/config.ts";
import { backendConfigParser } from "../../lib/backend/registry.ts";
import { formatCIDR, formatIP } from "../../lib/net/cidr.ts";

function err(text: string): string {
  try {
    parseNetConfig(text, backendConfigParser);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("expected an error");
}

Deno.test("net-conf: defaults for a /16 — SubnetLen 24, SubnetMin the second subnet, SubnetMax the last", () => {
  const c = parseNetConfig(
    '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}',
    backendConfigParser,
  );
  assert.equal(formatCIDR(c.network!), "10.244.0.0/16");
  assert.equal(c.subnetLen, 24);
  assert.equal(formatIP(c.subnetMin!), "10.244.1.0");
  assert.equal(formatIP(c.subnetMax!), "10.244.255.0");
  assert.equal(c.enableIPv4, true);
  assert.equal(c.enableIPv6, false);
  assert.deepEqual(c.backend, { type: "vxlan", vni: 1, port: 8472, mtu: 0, directRouting: false });
  assert.equal(c.backendDefaulted, false);
});

Deno.test("net-conf: a network smaller than /22 gets prefix+2 subnets", () => {
  const c = parseNetConfig('{"Network":"10.0.0.0/24"}', backendConfigParser);
  assert.equal(c.subnetLen, 26);
  assert.equal(formatIP(c.subnetMin!), "10.0.0.64");
  assert.equal(formatIP(c.subnetMax!), "10.0.0.192");
  const d = parseNetConfig('{"Network":"10.0.0.0/22"}', backendConfigParser);
  assert.equal(d.subnetLen, 24);
});

Deno.test("net-conf: keys and backend type are case-insensitive; missing Backend means vxlan", () => {
  const c = parseNetConfig(
    '{"network":"10.5.0.0/16","subnetlen":26,"backend":{"type":"VXLAN","vni":4,"port":4789,"directrouting":true}}',
    backendConfigParser,
  );
  assert.equal(c.subnetLen, 26);
  assert.deepEqual(c.backend, { type: "vxlan", vni: 4, port: 4789, mtu: 0, directRouting: true });
  const d = parseNetConfig('{"Network":"10.5.0.0/16"}', backendConfigParser);
  assert.equal(d.backend.type, "vxlan");
  assert.equal(d.backendDefaulted, true);
  const h = parseNetConfig(
    '{"Network":"10.5.0.0/16","Backend":{"Type":"Host-GW"}}',
    backendConfigParser,
  );
  assert.equal(h.backend.type, "host-gw");
});

Deno.test("net-conf: explicit SubnetMin/SubnetMax are kept", () => {
  const c = parseNetConfig(
    '{"Network":"10.5.0.0/16","SubnetMin":"10.5.10.0","SubnetMax":"10.5.20.0"}',
    backendConfigParser,
  );
  assert.equal(formatIP(c.subnetMin!), "10.5.10.0");
  assert.equal(formatIP(c.subnetMax!), "10.5.20.0");
});

Deno.test("net-conf: dual stack defaults", () => {
  const c = parseNetConfig(
    '{"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:10::/56"}',
    backendConfigParser,
  );
  assert.equal(c.ipv6SubnetLen, 64);
  assert.equal(formatIP(c.ipv6SubnetMin!), "fd00:10:0:1::");
  assert.equal(formatIP(c.ipv6SubnetMax!), "fd00:10:0:ff::");
});

Deno.test("net-conf: Flannel's error texts", () => {
  assert.equal(err("{}"), "please define a correct Network parameter in the flannel config");
  assert.equal(err('{"Network":"10.0.0.0/16","SubnetLen":31}'), "SubnetLen must be less than /31");
  assert.equal(
    err('{"Network":"10.0.0.0/16","SubnetLen":17}'),
    "network must be able to accommodate at least four subnets",
  );
  assert.equal(
    err('{"Network":"10.0.0.0/29"}'),
    "network is too small. Minimum useful network prefix is /28",
  );
  assert.equal(
    err('{"Network":"10.0.0.0/16","SubnetMin":"10.1.0.0"}'),
    "SubnetMin is not in the range of the Network",
  );
  assert.equal(
    err('{"Network":"10.0.0.0/16","SubnetMax":"10.1.0.0"}'),
    "SubnetMax is not in the range of the Network",
  );
  assert.equal(
    err('{"Network":"10.0.0.0/16","SubnetMin":"10.0.1.5"}'),
    "SubnetMin is not on a SubnetLen boundary: 10.0.1.5",
  );
  assert.equal(
    err('{"Network":"10.0.0.0/16","SubnetMax":"10.0.9.128"}'),
    "SubnetMax is not on a SubnetLen boundary: 10.0.9.128",
  );
  assert.equal(
    err('{"Network":"10.0.0.0/16","Backend":{"Type":"udp"}}'),
    "unknown backend type: udp",
  );
  assert.equal(
    err('{"Network":"10.0.0.0/16","EnableIPv6":true}'),
    "please define a correct IPv6Network parameter in the flannel config",
  );
  assert.equal(
    err('{"EnableIPv6":true,"IPv6Network":"fd00::/16","IPv6SubnetLen":127}'),
    "please define a correct Network parameter in the flannel config",
  );
  assert.equal(
    err('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/16","IPv6SubnetLen":127}'),
    "SubnetLen must be less than /127",
  );
  assert.equal(
    err('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/125"}'),
    "IPv6Network is too small. Minimum useful network prefix is /124",
  );
  assert.match(err("{not json"), /^net-conf is not valid JSON/);
  assert.match(
    err('{"Network":"10.0.0.300/16"}'),
    /Network is not a valid CIDR: 10\.0\.0\.300\/16/,
  );
});
