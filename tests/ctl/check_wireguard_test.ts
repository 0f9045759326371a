// ctl check's wireguard part, pure: the backend's expected state, and each peer finding on a
// fixture device state (one broken item at a time gives exactly its line).
import assert from "node:assert/strict";
import { expectedState } from "../../lib/backend/registry.ts";
import { parseWireguardConfig } from "../../lib/backend/wireguard.ts";
import { type CheckInput, checkNode, findingLine } from "../../lib/ctl/check.ts";
import { checkWireguardPeers, type WgCheckInput } from "../../lib/ctl/check_wireguard.ts";
import { parseCIDR, parseIP } from "../../lib/net/cidr.ts";
import { keyToBase64 } from "../../lib/net/wireguard/keys.ts";
import type { PeerState } from "../../lib/net/wireguard/uapi.ts";
import type { Lease } from "../../lib/subnet/lease.ts";

const key = (b: number) => new Uint8Array(32).fill(b);
const NOW = 1_800_000_000;

function lease(subnet: string, ip: string, k: number): Lease {
  return {
    subnet: parseCIDR(subnet),
    ipv6Subnet: null,
    attrs: {
      publicIP: ip,
      publicIPv6: null,
      backendType: "wireguard",
      backendData: { PublicKey: keyToBase64(key(k)), Port: 51820 },
    },
    modRevision: 1n,
    storeLease: 0n,
    expiresAt: null,
  };
}

function want(subnet: string, ip: string, k: number) {
  return {
    publicKey: key(k),
    endpoint: { ip: parseIP(ip), port: 51820 },
    allowedIPs: [parseCIDR(subnet)],
    subnet,
    publicIP: ip,
  };
}

function have(subnet: string, ip: string, k: number, hs = NOW - 30): PeerState {
  return {
    publicKey: key(k),
    endpoint: { ip: parseIP(ip), port: 51820 },
    allowedIPs: [parseCIDR(subnet)],
    persistentKeepalive: 0,
    lastHandshakeSec: hs,
    rxBytes: 0n,
    txBytes: 0n,
  };
}

/** Two peers wanted, both on the device with a fresh handshake. */
function healthy(): WgCheckInput {
  return {
    device: "flannel-wg",
    port: 51820,
    want: [want("10.50.2.0/24", "10.99.0.2", 2), want("10.50.3.0/24", "10.99.0.3", 3)],
    have: [have("10.50.2.0/24", "10.99.0.2", 2), have("10.50.3.0/24", "10.99.0.3", 3)],
    note: "read",
    nowSec: NOW,
  };
}

const lines = (i: WgCheckInput) => checkWireguardPeers(i).map(findingLine);
const K3 = keyToBase64(key(3));

Deno.test("wireguard check: a healthy device has no findings", () => {
  assert.deepEqual(lines(healthy()), []);
});

Deno.test("wireguard check: a missing peer is one line with its wg set fix", () => {
  const i = healthy();
  i.have = i.have!.slice(0, 1);
  assert.deepEqual(lines(i), [
    `wireguard: flannel-wg lacks peer 10.50.3.0/24 (10.99.0.3, key ${K3}); fix: wg set ` +
    `flannel-wg peer ${K3} endpoint 10.99.0.3:51820 allowed-ips 10.50.3.0/24 (the agent adds ` +
    "it within its reconcile interval; if it stays, read its log)",
  ]);
});

Deno.test("wireguard check: a wrong endpoint is named with the one wanted", () => {
  const i = healthy();
  i.have![1] = { ...i.have![1], endpoint: { ip: parseIP("10.99.0.9"), port: 51820 } };
  assert.deepEqual(lines(i), [
    `wireguard: flannel-wg has peer 10.50.3.0/24 (10.99.0.3, key ${K3}) with endpoint ` +
    "10.99.0.9:51820, want 10.99.0.3:51820; fix: wg set flannel-wg peer " +
    `${K3} endpoint 10.99.0.3:51820 allowed-ips 10.50.3.0/24`,
  ]);
});

Deno.test("wireguard check: wrong allowed IPs are named with the ones wanted", () => {
  const i = healthy();
  i.have![1] = { ...i.have![1], allowedIPs: [parseCIDR("10.50.4.0/24")] };
  assert.deepEqual(lines(i), [
    `wireguard: flannel-wg has peer 10.50.3.0/24 (10.99.0.3, key ${K3}) with allowed IPs ` +
    "10.50.4.0/24, want 10.50.3.0/24; fix: wg set flannel-wg peer " +
    `${K3} endpoint 10.99.0.3:51820 allowed-ips 10.50.3.0/24`,
  ]);
});

Deno.test("wireguard check: a peer whose lease is gone is stale", () => {
  const i = healthy();
  i.want = i.want.slice(0, 1);
  assert.deepEqual(lines(i), [
    `wireguard: flannel-wg has stale peer ${K3} (endpoint 10.99.0.3:51820, allowed IPs ` +
    `10.50.3.0/24) for which no lease exists; fix: wg set flannel-wg peer ${K3} remove`,
  ]);
});

Deno.test("wireguard check: no handshake for over 3 minutes points at UDP both ways", () => {
  const i = healthy();
  i.have![1] = { ...i.have![1], lastHandshakeSec: NOW - 181 };
  assert.deepEqual(lines(i), [
    `wireguard: flannel-wg has had no handshake with peer 10.50.3.0/24 (10.99.0.3, key ${K3}) ` +
    "for 181 s; fix: check UDP 51820 reachability both ways: to 10.99.0.3:51820 from this " +
    "node and to this node's port 51820 from 10.99.0.3 (host firewall, security group, NAT)",
  ]);
  i.have![1] = { ...i.have![1], lastHandshakeSec: 0 };
  assert.match(lines(i)[0], /no handshake with peer 10\.50\.3\.0\/24 .* since it started/);
  i.have![1] = { ...i.have![1], lastHandshakeSec: NOW - 180 };
  assert.deepEqual(lines(i), []);
});

Deno.test("wireguard check: a device not read (kernel) gives no findings, only its note", () => {
  const i = { ...healthy(), have: null, note: "not read: kernel WireGuard device" };
  assert.deepEqual(lines(i), []);
});

Deno.test("wireguard expected: flannel-wg, the Network through it, a probe per peer", () => {
  const own = lease("10.50.1.0/24", "10.99.0.1", 1);
  const peers = [lease("10.50.2.0/24", "10.99.0.2", 2)];
  const e = expectedState(parseWireguardConfig(() => undefined), {
    iface: { name: "eth0", mtu: 1500, address: "10.99.0.1", prefixLen: 24 },
    publicIP: "10.99.0.1",
    own,
    peers: [own, ...peers],
    ipv6: false,
    network: parseCIDR("10.50.0.0/16"),
  })!;
  assert.deepEqual(e.device, {
    name: "flannel-wg",
    address: "10.50.1.0/32",
    mtu: 1420,
    mtuWhy: "eth0 MTU 1500 − 80",
  });
  assert.equal(e.mtu, 1420);
  assert.deepEqual(e.dataPlane, {
    routes: [{ dst: "10.50.0.0/16", via: "", dev: "flannel-wg", onlink: false }],
    neighs: [],
    fdbs: [],
  });
  assert.deepEqual(
    e.probes.map((p) => [p.target, p.path]),
    [["10.50.2.0", "UDP 51820 to 10.99.0.2"]],
  );
  const cfgMtu = parseWireguardConfig((f) => (f === "MTU" ? 1400 : undefined));
  const e2 = expectedState(cfgMtu, {
    iface: { name: "eth0", mtu: 1500, address: "10.99.0.1", prefixLen: 24 },
    publicIP: "10.99.0.1",
    own,
    peers,
    ipv6: false,
  })!;
  assert.equal(e2.mtu, 1320);
});

Deno.test("wireguard check through checkNode: the route, then the missing peer", () => {
  const own = lease("10.50.1.0/24", "10.99.0.1", 1);
  const peers = [lease("10.50.2.0/24", "10.99.0.2", 2)];
  const underlay = { name: "eth0", mtu: 1500, addrs: ["10.99.0.1/24"] };
  const expected = expectedState(parseWireguardConfig(() => undefined), {
    iface: { name: "eth0", mtu: 1500, address: "10.99.0.1", prefixLen: 24 },
    publicIP: "10.99.0.1",
    own,
    peers,
    ipv6: false,
    network: parseCIDR("10.50.0.0/16"),
  });
  const wg = healthy();
  wg.want = wg.want.slice(0, 1);
  wg.have = [];
  const input: CheckInput = {
    subnetFile: "/run/flannel/subnet.env",
    env: { subnet: parseCIDR("10.50.1.1/24", true), mtu: 1420, ipMasq: false },
    network: parseCIDR("10.50.0.0/16"),
    own,
    peers,
    underlay,
    expected,
    kernel: {
      links: [underlay, { name: "flannel-wg", mtu: 1420, addrs: ["10.50.1.0/32"] }],
      routes: [{ dst: "10.50.0.0/16", via: "", dev: "flannel-wg", onlink: false }],
      neighs: [],
      fdbs: [],
      masqRules: { ip: -1, ip6: -1 },
      forwardChains: [],
    },
    probes: [{
      target: "10.50.2.0",
      peer: "10.50.2.0/24",
      publicIP: "10.99.0.2",
      path: "UDP 51820 to 10.99.0.2",
      ok: false,
    }],
    wireguard: wg,
  };
  const got = checkNode(input).map(findingLine);
  assert.equal(got.length, 1, got.join("\n"));
  assert.match(got[0], /^wireguard: flannel-wg lacks peer 10\.50\.2\.0\/24/);
  input.kernel.routes = [];
  input.wireguard = undefined;
  input.probes[0].ok = true;
  assert.deepEqual(checkNode(input).map(findingLine), [
    "route: no route 10.50.0.0/16 dev flannel-wg; fix: ip route replace 10.50.0.0/16 dev " +
    "flannel-wg",
  ]);
});
