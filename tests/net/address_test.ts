// HOST:PORT parsing and the address a store member advertises to its peers.
import assert from "node:assert/strict";
import {
  chooseAdvertise,
  type HostInterfaces,
  joinHostPort,
  resolveAdvertise,
  splitHostPort,
} from "../../lib/net/address.ts";

Deno.test("HOST:PORT splits and joins, IPv6 in brackets, and bad input is one line", () => {
  assert.deepEqual(splitHostPort("10.0.0.1:8473"), ["10.0.0.1", 8473]);
  assert.deepEqual(splitHostPort("[fd00::1]:8473"), ["fd00::1", 8473]);
  assert.equal(joinHostPort("fd00::1", 1), "[fd00::1]:1");
  assert.equal(joinHostPort("node-a", 2), "node-a:2");
  for (const bad of ["nowhere", "a:0", "a:65536", "fd00::1:80", ""]) {
    assert.throws(() => splitHostPort(bad), /is not HOST:PORT/, bad);
  }
});

const HOST: HostInterfaces = {
  v4: [
    { name: "lo", address: "127.0.0.1" },
    { name: "flannel.1", address: "10.244.0.0" },
    { name: "eth0", address: "192.168.1.5" },
    { name: "eth1", address: "192.168.2.5" },
  ],
  defaultRoute: "eth1",
};
const base = { listen: "0.0.0.0:8473", iface: [] };
const host = () => HOST;

Deno.test("the advertised address: --advertise, a specific --listen, --public-ip, then --iface", () => {
  assert.equal(chooseAdvertise({ ...base, advertise: "10.1.1.1:9000" }, host), "10.1.1.1:9000");
  assert.equal(chooseAdvertise({ ...base, listen: "10.2.2.2:8473" }, host), "10.2.2.2:8473");
  assert.equal(chooseAdvertise({ ...base, publicIp: "10.3.3.3" }, host), "10.3.3.3:8473");
  assert.equal(chooseAdvertise({ ...base, iface: ["10.4.4.4"] }, host), "10.4.4.4:8473");
  assert.equal(chooseAdvertise({ ...base, iface: ["eth0"] }, host), "192.168.1.5:8473");
  assert.equal(chooseAdvertise({ ...base, listen: "[fd00::1]:8473" }, host), "[fd00::1]:8473");
});

Deno.test("the advertised address falls back to the default route, then an ordinary interface", () => {
  assert.equal(chooseAdvertise(base, host), "192.168.2.5:8473");
  const noRoute = () => ({ v4: HOST.v4 });
  assert.equal(chooseAdvertise(base, noRoute), "192.168.1.5:8473", "never lo or flannel.1");
  const podOnly = () => ({ v4: HOST.v4.slice(0, 2) });
  assert.throws(() => chooseAdvertise(base, podOnly), /give --advertise HOST:PORT/);
});

Deno.test("flags that settle the address never read the host's interfaces", () => {
  const unread = (): HostInterfaces => {
    throw new Error("read the interfaces");
  };
  assert.equal(chooseAdvertise({ ...base, advertise: "10.1.1.1:9000" }, unread), "10.1.1.1:9000");
  assert.equal(chooseAdvertise({ ...base, publicIp: "10.3.3.3" }, unread), "10.3.3.3:8473");
});

Deno.test("resolveAdvertise reads this host: --iface lo is its loopback address", () => {
  assert.equal(resolveAdvertise({ ...base, iface: ["lo"] }), "127.0.0.1:8473");
});
