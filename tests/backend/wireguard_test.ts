// The wireguard backend's pure parts: Flannel's Backend fields and defaults, bad input refused with
// one line, lease BackendData as Flannel writes it, the devices per Mode, the peer each lease asks
// for, and the plan that turns a device's peers into the wanted ones.
import assert from "node:assert/strict";
import { backendConfigParser } from "../../lib/backend/registry.ts";
import {
  encodeWgData,
  parseWireguardConfig,
  planPeers,
  wgData,
  wgPeerOf,
  wgSides,
  type WireguardConfig,
} from "../../lib/backend/wireguard.ts";
import { formatCIDR, parseCIDR, parseIP } from "../../lib/net/cidr.ts";
import { keyToBase64 } from "../../lib/net/wireguard/keys.ts";
import { formatEndpoint, type PeerState } from "../../lib/net/wireguard/uapi.ts";
import { NetConfigError, parseNetConfig } from "../../lib/subnet/config.ts";
import { decodeLeaseAttrs, encodeLeaseAttrs, type Lease } from "../../lib/subnet/lease.ts";

const field = (o: Record<string, unknown>) => (k: string) => o[k];
const key = (b: number) => new Uint8Array(32).fill(b);

function lease(n: number, pubKey: Uint8Array | null, type = "wireguard", port = 51820): Lease {
  return {
    subnet: parseCIDR(`10.50.${n}.0/24`),
    ipv6Subnet: null,
    attrs: {
      publicIP: `10.99.0.${n}`,
      publicIPv6: null,
      backendType: type,
      backendData: pubKey ? encodeWgData(pubKey, port) : undefined,
    },
    modRevision: 0n,
    storeLease: 0n,
    expiresAt: null,
  };
}

Deno.test("wireguard config: Flannel's defaults", () => {
  const c = parseNetConfig(
    '{"Network":"10.50.0.0/16","Backend":{"Type":"wireguard"}}',
    backendConfigParser,
  );
  assert.deepEqual(c.backend, {
    type: "wireguard",
    listenPort: 51820,
    listenPortV6: 51821,
    mtu: 0,
    psk: null,
    keepalive: 0,
    mode: "separate",
  });
});

Deno.test("wireguard config: every field read, case-insensitively as Go does", () => {
  const psk = keyToBase64(key(7));
  const c = parseNetConfig(
    JSON.stringify({
      Network: "10.50.0.0/16",
      Backend: {
        type: "wireguard",
        listenport: 4000,
        ListenPortV6: 4001,
        MTU: 1400,
        PSK: psk,
        PersistentKeepaliveInterval: 25,
        Mode: "auto",
      },
    }),
    backendConfigParser,
  ).backend as WireguardConfig;
  assert.equal(c.listenPort, 4000);
  assert.equal(c.listenPortV6, 4001);
  assert.equal(c.mtu, 1400);
  assert.deepEqual(c.psk, key(7));
  assert.equal(c.keepalive, 25);
  assert.equal(c.mode, "auto");
});

Deno.test("wireguard config: bad input is one NetConfigError line each", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ Mode: "tunnel" }, /Backend\.Mode "tunnel" is not a valid Mode \(one of separate, auto/],
    [{ Mode: 4 }, /not a valid Mode/],
    [{ PSK: "not base64!" }, /could not parse psk/],
    [{ PSK: btoa("short") }, /could not parse psk: Backend.PSK must be 32 bytes/],
    [{ PSK: 12 }, /PSK must be a base64 string/],
    [{ ListenPort: 70000 }, /ListenPort 70000 is above 65535/],
    [{ ListenPort: -1 }, /ListenPort must be a non-negative integer/],
    [{ PersistentKeepaliveInterval: 1e6 }, /PersistentKeepaliveInterval 1000000 is above 65535/],
  ];
  for (const [o, re] of bad) {
    assert.throws(() => parseWireguardConfig(field(o)), (e) => {
      assert.ok(e instanceof NetConfigError);
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("wireguard lease data: Flannel's {PublicKey, Port}, decoded back", () => {
  const l = lease(3, key(3));
  const text = encodeLeaseAttrs(l.attrs);
  assert.equal(
    text,
    `{"PublicIP":"10.99.0.3","PublicIPv6":null,"BackendType":"wireguard","BackendData":` +
      `{"PublicKey":"${keyToBase64(key(3))}","Port":51820}}`,
  );
  assert.deepEqual(wgData(decodeLeaseAttrs(text)), { publicKey: key(3), port: 51820 });
  assert.equal(wgData(decodeLeaseAttrs(text), true), null);
  const broken = decodeLeaseAttrs('{"PublicIP":"1.2.3.4","BackendData":{"PublicKey":"xx"}}');
  assert.equal(wgData(broken), null, "a key that is not 32 bytes is no key");
});

Deno.test("wireguard devices per Mode: separate splits the families, the others share one", () => {
  const net = parseCIDR("10.50.0.0/16"), net6 = parseCIDR("fd50::/56");
  const cfg = parseWireguardConfig(field({}));
  assert.deepEqual(wgSides(cfg, net, null).map((s) => [s.dev, s.port, s.families]), [
    ["flannel-wg", 51820, [4]],
  ]);
  assert.deepEqual(wgSides(cfg, net, net6).map((s) => [s.dev, s.port, s.families]), [
    ["flannel-wg", 51820, [4]],
    ["flannel-wg-v6", 51821, [6]],
  ]);
  const auto = wgSides(parseWireguardConfig(field({ Mode: "auto" })), net, net6);
  assert.deepEqual(auto.map((s) => [s.dev, s.families, s.networks.map(formatCIDR)]), [
    ["flannel-wg", [4, 6], ["10.50.0.0/16", "fd50::/56"]],
  ]);
});

Deno.test("wireguard per-lease plan: one peer per wireguard lease, own and foreign skipped", () => {
  const cfg = parseWireguardConfig(
    field({ PersistentKeepaliveInterval: 25, PSK: keyToBase64(key(9)) }),
  );
  const [side] = wgSides(cfg, parseCIDR("10.50.0.0/16"), null);
  const own = { v4: "10.99.0.1", v6: null };
  const opts = { psk: cfg.psk, keepalive: cfg.keepalive };
  const p2 = wgPeerOf(lease(2, key(2), "wireguard", 4000), side, own, opts)!;
  assert.deepEqual(p2.publicKey, key(2));
  assert.equal(formatEndpoint(p2.endpoint!), "10.99.0.2:4000");
  assert.deepEqual(p2.allowedIPs.map(formatCIDR), ["10.50.2.0/24"]);
  assert.equal(p2.persistentKeepalive, 25);
  assert.deepEqual(p2.presharedKey, key(9));
  const p3 = wgPeerOf(lease(3, key(3), "wireguard", 0), side, own, opts)!;
  assert.equal(formatEndpoint(p3.endpoint!), "10.99.0.3:51820", "Port 0: our listen port");
  assert.equal(wgPeerOf(lease(1, key(1)), side, own, opts), null, "our own lease");
  assert.equal(wgPeerOf(lease(4, key(4), "vxlan"), side, own, opts), null, "another backend");
  assert.equal(wgPeerOf(lease(5, null), side, own, opts), null, "no BackendData");
});

Deno.test("wireguard peer plan: missing and changed peers set, unwanted removed", () => {
  const cfg = parseWireguardConfig(field({}));
  const [side] = wgSides(cfg, parseCIDR("10.50.0.0/16"), null);
  const own = { v4: "10.99.0.1", v6: null };
  const want = [2, 3, 4].map((n) =>
    wgPeerOf(lease(n, key(n)), side, own, { psk: null, keepalive: 0 })!
  );
  const state = (n: number, subnet = `10.50.${n}.0/24`): PeerState => ({
    publicKey: key(n),
    endpoint: { ip: parseIP(`10.99.0.${n}`), port: 51820 },
    allowedIPs: [parseCIDR(subnet)],
    persistentKeepalive: 0,
    lastHandshakeSec: 0,
    rxBytes: 0n,
    txBytes: 0n,
  });
  // 2 in place, 3 with a stale subnet, 4 missing, 9 no longer wanted
  const plan = planPeers(want, [state(2), state(3, "10.50.33.0/24"), state(9)]);
  assert.deepEqual(plan.set.map((p) => p.publicKey[0]), [3, 4]);
  assert.deepEqual(plan.remove.map((k) => k[0]), [9]);
  assert.deepEqual(planPeers(want, [state(2), state(3), state(4)]), { set: [], remove: [] });
});
