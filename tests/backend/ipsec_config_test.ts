// The ipsec backend's pure parts: net-conf's Backend fields (Flannel's names, defaults and its
// short-PSK message), the lease it publishes, and the VICI sections charon gets per peer — checked
// as data, without a charon.
import assert from "node:assert/strict";
import {
  DEFAULT_ESP_PROPOSAL,
  DEFAULT_TIMERS,
  initiatesTo,
  IpsecBackend,
  type IpsecConfig,
  ipsecDesired,
  ipsecPeerSections,
  parseIpsecConfig,
  SHORT_PSK_ERROR,
} from "../../lib/backend/ipsec.ts";
import { backendConfigParser } from "../../lib/backend/registry.ts";
import { parseCIDR } from "../../lib/net/cidr.ts";
import type { RunningCharon } from "../../lib/net/vici/charon.ts";
import { NetConfigError, parseNetConfig } from "../../lib/subnet/config.ts";
import { encodeLeaseAttrs, type Lease } from "../../lib/subnet/lease.ts";

const PSK = "a".repeat(96);

function netConf(backend: Record<string, unknown>): string {
  return JSON.stringify({ Network: "10.50.0.0/16", Backend: { Type: "ipsec", ...backend } });
}

function lease(subnet: string, publicIP: string, backendType = "ipsec"): Lease {
  return {
    subnet: parseCIDR(subnet),
    ipv6Subnet: null,
    attrs: { publicIP, publicIPv6: null, backendType },
    modRevision: 1n,
    storeLease: 0n,
    expiresAt: null,
  };
}

Deno.test("ipsec config: Flannel's fields and defaults through the registry", () => {
  const c = parseNetConfig(netConf({ PSK }), backendConfigParser);
  assert.deepEqual(c.backend, {
    type: "ipsec",
    psk: PSK,
    udpEncap: false,
    espProposal: DEFAULT_ESP_PROPOSAL,
  });
  assert.equal(DEFAULT_ESP_PROPOSAL, "aes128gcm16-sha256-prfsha256-ecp256");
  const d = parseNetConfig(
    netConf({ psk: PSK, udpencap: true, ESPProposal: "aes256-sha256-modp2048" }),
    backendConfigParser,
  );
  assert.deepEqual(d.backend, {
    type: "ipsec",
    psk: PSK,
    udpEncap: true,
    espProposal: "aes256-sha256-modp2048",
  }, "field names match case-insensitively, as Go's decoder does");
});

Deno.test("ipsec config: a PSK under 96 characters (or none) is Flannel's exact error", () => {
  for (const backend of [{ PSK: "a".repeat(95) }, {}, { PSK: "" }]) {
    assert.throws(
      () => parseNetConfig(netConf(backend), backendConfigParser),
      (e) => e instanceof NetConfigError && e.message === SHORT_PSK_ERROR,
    );
  }
  assert.equal(SHORT_PSK_ERROR, "config error, password is too short");
  assert.equal(parseIpsecConfig((k) => k === "PSK" ? PSK : undefined).psk, PSK, "96 is enough");
});

Deno.test("ipsec config: wrong types and odd proposals are one clear line", () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ PSK: 12 }, /Backend\.PSK must be a string/],
    [{ PSK: "x".repeat(5000) }, /Backend\.PSK is longer than 4096/],
    [{ PSK, UDPEncap: "yes" }, /Backend\.UDPEncap must be true or false/],
    [{ PSK, ESPProposal: 7 }, /Backend\.ESPProposal must be a string/],
    [{ PSK, ESPProposal: "aes128, sha1" }, /is not a strongSwan proposal/],
    [{ PSK, ESPProposal: "" }, /is not a strongSwan proposal/],
  ];
  for (const [backend, re] of bad) {
    assert.throws(
      () => parseNetConfig(netConf(backend), backendConfigParser),
      (e) =>
        e instanceof NetConfigError && re.test(e.message) && !e.message.includes("\n") &&
        !e.message.includes("xxxxxxxxxx"),
    );
  }
});

const CFG: IpsecConfig = {
  type: "ipsec",
  psk: PSK,
  udpEncap: false,
  espProposal: DEFAULT_ESP_PROPOSAL,
};
const OWN = { address: "10.99.0.1", publicIP: "10.99.0.1", subnet: parseCIDR("10.50.1.0/24") };

Deno.test("ipsec sections: the secret and connection charon gets for one peer", () => {
  const peer = { address: "10.99.0.2", publicIP: "10.99.0.2", subnet: parseCIDR("10.50.2.0/24") };
  const s = ipsecPeerSections(OWN, peer, { cfg: CFG, encap: true, timers: DEFAULT_TIMERS });
  assert.equal(s.name, "10.99.0.1-10.50.1.0/24-10.50.2.0/24-10.99.0.2", "Flannel's name");
  assert.equal(s.child, "10.50.1.0/24-10.50.2.0/24");
  assert.equal(s.initiator, true);
  assert.deepEqual(s.shared, { id: "psk-10.99.0.2", data: PSK, owners: ["10.99.0.2"] });
  assert.deepEqual(s.conn, {
    local_addrs: ["10.99.0.1"],
    remote_addrs: ["10.99.0.2"],
    version: "2",
    proposals: ["aes256-sha256-modp4096"],
    encap: "yes",
    keyingtries: "0",
    rekey_time: "14400s",
    dpd_delay: "30s",
    mobike: "no",
    local: { auth: "psk", id: "10.99.0.1" },
    remote: { auth: "psk", id: "10.99.0.2" },
    children: {
      "10.50.1.0/24-10.50.2.0/24": {
        local_ts: ["10.50.1.0/24"],
        remote_ts: ["10.50.2.0/24"],
        esp_proposals: ["aes128gcm16-sha256-prfsha256-ecp256"],
        mode: "tunnel",
        rekey_time: "3600s",
        dpd_action: "restart",
      },
    },
  });
  const back = ipsecPeerSections(peer, OWN, {
    cfg: { ...CFG, espProposal: "aes256-sha256" },
    encap: false,
    timers: { ikeRekeySeconds: 60, childRekeySeconds: 8 },
  });
  assert.equal(back.initiator, false, "one side of a pair initiates");
  assert.equal(back.conn.encap, "no");
  assert.equal(back.conn.rekey_time, "60s");
  const child = (back.conn.children as Record<string, Record<string, unknown>>)[back.child];
  assert.equal(child.rekey_time, "8s");
  assert.deepEqual(child.esp_proposals, ["aes256-sha256"]);
});

Deno.test("ipsec sections: one per ipsec peer; our own lease and other backends' are skipped", () => {
  const want = ipsecDesired(OWN, [
    lease("10.50.2.0/24", "10.99.0.2"),
    lease("10.50.3.0/24", "10.99.0.3"),
    lease("10.50.1.0/24", "10.99.0.1"),
    lease("10.50.4.0/24", "10.99.0.4", "vxlan"),
    { ...lease("10.50.5.0/24", "10.99.0.5"), subnet: null },
  ], { cfg: CFG, encap: false, timers: DEFAULT_TIMERS });
  assert.deepEqual([...want.keys()], [
    "10.99.0.1-10.50.1.0/24-10.50.2.0/24-10.99.0.2",
    "10.99.0.1-10.50.1.0/24-10.50.3.0/24-10.99.0.3",
  ]);
  assert.equal(initiatesTo("10.99.0.9", "10.99.0.10"), true, "compared as numbers");
  assert.equal(initiatesTo("10.99.0.10", "10.99.0.9"), false);
});

Deno.test("ipsec lease: Flannel's attributes, no BackendData", () => {
  const charon = { client: {}, paths: {}, reused: true } as unknown as RunningCharon;
  const iface = {
    name: "eth0",
    index: 2,
    mtu: 1500,
    address: "10.99.0.1",
    prefixLen: 24,
    address6: null,
    prefixLen6: 0,
  };
  const ctx = {
    iface,
    publicIP: "10.99.0.1",
    network: parseCIDR("10.50.0.0/16"),
    network6: null,
    dataDir: "/nonexistent",
    log: () => {},
  };
  const b = new IpsecBackend(CFG, ctx, "kernel", charon);
  assert.equal(
    encodeLeaseAttrs(b.leaseAttrs()),
    '{"PublicIP":"10.99.0.1","PublicIPv6":null,"BackendType":"ipsec"}',
  );
  assert.equal(b.mtu, 1423, "underlay − 77");
  assert.equal(new IpsecBackend({ ...CFG, udpEncap: true }, ctx, "kernel", charon).mtu, 1415);
  const lib = new IpsecBackend(CFG, ctx, "libipsec", charon);
  assert.equal(lib.mtu, 1400, "libipsec: encapsulated, and capped by its TUN device");
  assert.equal(lib.encap, true);
  assert.equal(
    new IpsecBackend(CFG, { ...ctx, iface: { ...iface, mtu: 1450 } }, "libipsec", charon)
      .mtu,
    1365,
  );
});
