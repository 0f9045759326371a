import assert from "node:assert/strict";
import {
  contains,
  containsCIDR,
  formatCIDR,
  formatIP,
  ipFromBytes,
  ipToBytes,
  lastIP,
  nextSubnet,
  nthIP,
  parseCIDR,
  parseIP,
  size,
  tryParseIP,
} from "../../lib/net/cidr.ts";

Deno.test("IPv4 parses and formats round trip", () => {
  for (const s of ["0.0.0.0", "10.5.52.0", "255.255.255.255", "192.168.1.17"]) {
    assert.equal(formatIP(parseIP(s)), s);
  }
  for (const bad of ["1.2.3", "1.2.3.256", "a.b.c.d", "1.2.3.4.5", ""]) {
    assert.equal(tryParseIP(bad), null, bad);
  }
});

Deno.test("IPv6 parses and formats in RFC 5952 form", () => {
  const cases: [string, string][] = [
    ["fd00::", "fd00::"],
    ["fd00:0:0:0:0:0:0:1", "fd00::1"],
    ["::", "::"],
    ["::1", "::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::ffff:10.0.0.1", "::ffff:a00:1"],
    ["FD00:AB::10", "fd00:ab::10"],
  ];
  for (const [input, want] of cases) assert.equal(formatIP(parseIP(input)), want, input);
  for (const bad of ["1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::"]) {
    assert.equal(tryParseIP(bad), null, bad);
  }
});

Deno.test("CIDR math: network, containment, size, nth, next subnet", () => {
  const net = parseCIDR("10.5.0.0/16");
  assert.equal(formatCIDR(parseCIDR("10.5.52.7/24")), "10.5.52.0/24");
  assert.equal(formatCIDR(parseCIDR("10.5.52.7/24", true)), "10.5.52.7/24");
  assert.ok(contains(net, parseIP("10.5.255.1")));
  assert.ok(!contains(net, parseIP("10.6.0.1")));
  assert.ok(containsCIDR(net, parseCIDR("10.5.52.0/24")));
  assert.ok(!containsCIDR(parseCIDR("10.5.52.0/24"), net));
  assert.equal(size(parseCIDR("10.5.52.0/24")), 256n);
  assert.equal(formatIP(nthIP(parseCIDR("10.5.52.0/24"), 1)), "10.5.52.1");
  assert.equal(formatIP(lastIP(parseCIDR("10.5.52.0/24"))), "10.5.52.255");
  assert.equal(formatCIDR(nextSubnet(parseCIDR("10.5.255.0/24"))), "10.6.0.0/24");
  assert.equal(formatCIDR(nextSubnet(parseCIDR("fd00::/64"))), "fd00:0:0:1::/64");
});

Deno.test("IP byte conversion round trips both families", () => {
  for (const s of ["10.1.2.3", "fd00::1:2"]) {
    const ip = parseIP(s);
    assert.equal(formatIP(ipFromBytes(ipToBytes(ip))), s);
  }
  assert.deepEqual([...ipToBytes(parseIP("10.1.2.3"))], [10, 1, 2, 3]);
});
