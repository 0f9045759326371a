import assert from "node:assert/strict";
import { parseCIDR, parseIP } from "../../../lib/net/cidr.ts";
import { keyFromHex, keyToHex } from "../../../lib/net/wireguard/keys.ts";
import {
  decodeDevice,
  decodeReply,
  encodeGet,
  encodeSet,
  formatEndpoint,
  parseEndpoint,
  UapiClient,
} from "../../../lib/net/wireguard/uapi.ts";

const K1 = keyFromHex("11".repeat(32));
const K2 = keyFromHex("22".repeat(32));
const PSK = keyFromHex("33".repeat(32));

Deno.test("get is one line and a blank line", () => {
  assert.equal(encodeGet(), "get=1\n\n");
});

Deno.test("set carries device settings, a full peer, and removals in protocol order", () => {
  const text = encodeSet({
    device: { privateKey: K1, listenPort: 51820 },
    peers: [{
      publicKey: K2,
      presharedKey: PSK,
      endpoint: { ip: parseIP("192.0.2.7"), port: 51820 },
      allowedIPs: [parseCIDR("10.5.3.0/24"), parseCIDR("fd00:5:3::/64")],
      persistentKeepalive: 25,
    }],
    removePeers: [K1],
  });
  assert.equal(
    text,
    [
      "set=1",
      `private_key=${"11".repeat(32)}`,
      "listen_port=51820",
      `public_key=${"22".repeat(32)}`,
      `preshared_key=${"33".repeat(32)}`,
      "endpoint=192.0.2.7:51820",
      "persistent_keepalive_interval=25",
      "replace_allowed_ips=true",
      "allowed_ip=10.5.3.0/24",
      "allowed_ip=fd00:5:3::/64",
      `public_key=${"11".repeat(32)}`,
      "remove=true",
    ].join("\n") + "\n\n",
  );
});

Deno.test("bad ports and keepalives are refused before anything is sent", () => {
  assert.throws(() => encodeSet({ device: { listenPort: 70000 } }), /not a port number/);
  assert.throws(
    () => encodeSet({ peers: [{ publicKey: K2, allowedIPs: [], persistentKeepalive: -1 }] }),
    /keepalive -1 out of range/,
  );
});

Deno.test("IPv6 endpoints are bracketed both ways", () => {
  const e = { ip: parseIP("2001:db8::1"), port: 51821 };
  assert.equal(formatEndpoint(e), "[2001:db8::1]:51821");
  assert.deepEqual(parseEndpoint("[2001:db8::1]:51821"), e);
  assert.throws(() => parseEndpoint("2001:db8::1"), /not host:port/);
});

Deno.test("a get reply decodes into the device and its peers", () => {
  const reply = [
    `private_key=${"11".repeat(32)}`,
    "listen_port=51820",
    `public_key=${"22".repeat(32)}`,
    `preshared_key=${"00".repeat(32)}`,
    "protocol_version=1",
    "endpoint=192.0.2.7:51820",
    "last_handshake_time_sec=1700000000",
    "last_handshake_time_nsec=5",
    "tx_bytes=92",
    "rx_bytes=180",
    "persistent_keepalive_interval=25",
    "allowed_ip=10.5.3.0/24",
    `public_key=${"33".repeat(32)}`,
    "allowed_ip=10.5.4.0/24",
    "errno=0",
  ].join("\n") + "\n\n";
  const { errno, pairs } = decodeReply(reply);
  assert.equal(errno, 0);
  const dev = decodeDevice(pairs);
  assert.equal(keyToHex(dev.privateKey!), "11".repeat(32));
  assert.equal(dev.listenPort, 51820);
  assert.equal(dev.peers.length, 2);
  const [a, b] = dev.peers;
  assert.equal(a.presharedKey, undefined, "an all-zero preshared key means none");
  assert.equal(formatEndpoint(a.endpoint!), "192.0.2.7:51820");
  assert.equal(a.lastHandshakeSec, 1700000000);
  assert.equal(a.txBytes, 92n);
  assert.equal(a.rxBytes, 180n);
  assert.equal(a.persistentKeepalive, 25);
  assert.deepEqual(a.allowedIPs, [parseCIDR("10.5.3.0/24")]);
  assert.deepEqual(b.allowedIPs, [parseCIDR("10.5.4.0/24")]);
});

Deno.test("errno is reported as a positive number; malformed replies are errors", () => {
  assert.equal(decodeReply("errno=-22\n\n").errno, 22);
  assert.throws(() => decodeReply("listen_port=1\n\n"), /no errno line/);
  assert.throws(() => decodeReply("garbage\nerrno=0\n\n"), /malformed uapi line/);
});

Deno.test("a socket that never answers gives a timeout error, not a hang", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twill-uapi-" });
  const path = `${dir}/silent.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })();
  try {
    await assert.rejects(
      () => new UapiClient(path, 100).get(),
      /wireguard uapi get: no answer in 100 ms/,
    );
  } finally {
    for (const c of held) c.close();
    listener.close();
    await accepting.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
