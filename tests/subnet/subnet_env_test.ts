// The CNI plugin parses exactly what the agent writes: one module renders and parses subnet.env.
import assert from "node:assert/strict";
import { backendConfigParser } from "../../lib/backend/registry.ts";
import { formatCIDR, parseCIDR } from "../../lib/net/cidr.ts";
import { parseNetConfig } from "../../lib/subnet/config.ts";
import {
  parseSubnetEnv,
  parseSubnetEnvSubnets,
  readSubnetEnv,
  renderSubnetEnv,
  writeSubnetEnv,
} from "../../lib/subnet/subnet_env.ts";

const V4 = '{"Network":"10.244.0.0/16"}';
const DUAL = '{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:1::/48"}';

for (const ipMasq of [true, false]) {
  Deno.test(`subnet.env, IPv4, ipmasq ${ipMasq}: the CNI face parses what the agent writes`, () => {
    const cfg = parseNetConfig(V4, backendConfigParser);
    const text = renderSubnetEnv(cfg, parseCIDR("10.244.7.0/24"), null, 1450, ipMasq);
    const env = parseSubnetEnv(text);
    assert.equal(formatCIDR(env.network!), "10.244.0.0/16");
    assert.equal(formatCIDR(env.subnet!), "10.244.7.1/24"); // the gateway, host bits kept
    assert.equal(env.ipv6Network, undefined);
    assert.equal(env.ipv6Subnet, undefined);
    assert.equal(env.mtu, 1450);
    assert.equal(env.ipMasq, ipMasq);
    // and the agent's own reading of it at restart asks for the same subnet
    assert.equal(formatCIDR(parseSubnetEnvSubnets(text).subnet!), "10.244.7.0/24");
  });

  Deno.test(`subnet.env, dual stack, ipmasq ${ipMasq}: the CNI face parses it`, () => {
    const cfg = parseNetConfig(DUAL, backendConfigParser);
    const sn6 = parseCIDR("fd00:1:0:5::/64");
    const text = renderSubnetEnv(cfg, parseCIDR("10.244.7.0/24"), sn6, 1430, ipMasq);
    const env = parseSubnetEnv(text);
    assert.equal(formatCIDR(env.network!), "10.244.0.0/16");
    assert.equal(formatCIDR(env.subnet!), "10.244.7.1/24");
    assert.equal(formatCIDR(env.ipv6Network!), "fd00:1::/48");
    assert.equal(formatCIDR(env.ipv6Subnet!), "fd00:1:0:5::1/64");
    assert.equal(env.mtu, 1430);
    assert.equal(env.ipMasq, ipMasq);
    const back = parseSubnetEnvSubnets(text);
    assert.equal(formatCIDR(back.subnet!), "10.244.7.0/24");
    assert.equal(formatCIDR(back.ipv6Subnet!), "fd00:1:0:5::/64");
  });
}

Deno.test("subnet.env: written crash-safely with mode 0644, read back by the CNI face", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twill-subnet-env-" });
  try {
    const path = `${dir}/run/flannel/subnet.env`;
    const cfg = parseNetConfig(V4, backendConfigParser);
    await writeSubnetEnv(path, renderSubnetEnv(cfg, parseCIDR("10.244.9.0/24"), null, 1500, true));
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o644);
    const env = readSubnetEnv(path)!;
    assert.equal(formatCIDR(env.subnet!), "10.244.9.1/24");
    assert.equal(env.ipMasq, true);
    // no temporary file is left beside it
    const names = [...Deno.readDirSync(`${dir}/run/flannel`)].map((e) => e.name);
    assert.deepEqual(names, ["subnet.env"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
