import assert from "node:assert/strict";
import {
  decodeLeaseAttrs,
  encodeLeaseAttrs,
  parseSubnetKey,
  subnetKey,
} from "../../lib/subnet/lease.ts";
import { vxlanData } from "../../lib/backend/vxlan.ts";
import { formatCIDR, parseCIDR } from "../../lib/net/cidr.ts";
import { parseSubnetEnvSubnets, renderSubnetEnv } from "../../lib/subnet/subnet_env.ts";
import { parseNetConfig } from "../../lib/subnet/config.ts";
import { backendConfigParser } from "../../lib/backend/registry.ts";

Deno.test("lease keys are Flannel's, single and dual stack", () => {
  const sn = parseCIDR("10.1.2.0/24");
  const sn6 = parseCIDR("fd00::/64");
  assert.equal(
    subnetKey("/coreos.com/network", sn, null),
    "/coreos.com/network/subnets/10.1.2.0-24",
  );
  assert.equal(
    subnetKey("/coreos.com/network/", sn, sn6),
    "/coreos.com/network/subnets/10.1.2.0-24&fd00::-64",
  );
  const p = parseSubnetKey("/coreos.com/network/subnets/10.1.2.0-24&fd00::-64")!;
  assert.equal(formatCIDR(p.subnet), "10.1.2.0/24");
  assert.equal(formatCIDR(p.ipv6Subnet!), "fd00::/64");
  assert.equal(parseSubnetKey("/coreos.com/network/config"), null);
});

Deno.test("lease value is Flannel's JSON, field order included", () => {
  const text = encodeLeaseAttrs({
    publicIP: "192.168.1.10",
    publicIPv6: null,
    backendType: "vxlan",
    backendData: { VNI: 1, VtepMAC: "aa:bb:cc:dd:ee:01" },
  });
  assert.equal(
    text,
    '{"PublicIP":"192.168.1.10","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:01"}}',
  );
  const back = decodeLeaseAttrs(text);
  assert.equal(back.publicIP, "192.168.1.10");
  assert.deepEqual(vxlanData(back), { vni: 1, vtepMAC: "aa:bb:cc:dd:ee:01" });
  assert.equal(
    encodeLeaseAttrs({ publicIP: "10.0.0.1", publicIPv6: null, backendType: "host-gw" }),
    '{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"host-gw"}',
  );
});

Deno.test("subnet.env bytes: Flannel's lines and order", () => {
  const cfg = parseNetConfig('{"Network":"10.244.0.0/16"}', backendConfigParser);
  assert.equal(
    renderSubnetEnv(cfg, parseCIDR("10.244.7.0/24"), null, 1450, true),
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
  );
  const ds = parseNetConfig(
    '{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:1::/48"}',
    backendConfigParser,
  );
  assert.equal(
    renderSubnetEnv(ds, parseCIDR("10.244.7.0/24"), parseCIDR("fd00:1:0:3::/64"), 1430, false),
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\n" +
      "FLANNEL_IPV6_NETWORK=fd00:1::/48\nFLANNEL_IPV6_SUBNET=fd00:1:0:3::1/64\n" +
      "FLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n",
  );
  const prev = parseSubnetEnvSubnets(
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\n",
  );
  assert.equal(formatCIDR(prev.subnet!), "10.244.7.0/24");
  assert.equal(prev.ipv6Subnet, null);
});
