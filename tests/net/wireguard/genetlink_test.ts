// The kernel's wireguard generic netlink requests, checked byte for byte against layouts worked
// out by hand from include/uapi/linux/wireguard.h (this test kernel has no WireGuard to ask).
import assert from "node:assert/strict";
import { parseCIDR, parseIP } from "../../../lib/net/cidr.ts";
import {
  decodeFamilyId,
  encodeGetFamily,
  NETLINK_GENERIC,
  resolveFamily,
} from "../../../lib/net/netlink/genl.ts";
import { NetlinkSocket } from "../../../lib/net/netlink/socket.ts";
import { Netns } from "../../../lib/net/netns.ts";
import { encodeSetDevice, sockaddrBytes } from "../../../lib/net/wireguard/genetlink.ts";

const k = (b: number) => new Array(32).fill(b);
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

Deno.test("sockaddr_in and sockaddr_in6: family little-endian, port big-endian", () => {
  assert.deepEqual(
    [...sockaddrBytes({ ip: parseIP("192.0.2.7"), port: 51820 })],
    [2, 0, 0xca, 0x6c, 192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0],
  );
  const v6 = sockaddrBytes({ ip: parseIP("2001:db8::1"), port: 51821 });
  assert.equal(v6.length, 28);
  assert.deepEqual([...v6.subarray(0, 8)], [10, 0, 0xca, 0x6d, 0, 0, 0, 0]);
  assert.deepEqual([...v6.subarray(8, 24)], [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1]);
  assert.deepEqual([...v6.subarray(24)], [0, 0, 0, 0]);
});

Deno.test("WG_CMD_SET_DEVICE with key, port and one full peer", () => {
  const got = encodeSetDevice(0x1234, 7, {
    ifname: "flannel-wg",
    privateKey: new Uint8Array(k(0x11)),
    listenPort: 51820,
    peers: [{
      publicKey: new Uint8Array(k(0x22)),
      presharedKey: new Uint8Array(k(0x33)),
      endpoint: { ip: parseIP("192.0.2.7"), port: 51820 },
      persistentKeepalive: 25,
      allowedIPs: [parseCIDR("10.5.3.0/24")],
    }],
  });
  // deno-fmt-ignore
  const want = [
    228, 0, 0, 0, 0x34, 0x12, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr: len, family id, REQUEST|ACK, seq
    1, 1, 0, 0,                                            // genlmsghdr: WG_CMD_SET_DEVICE, version 1
    15, 0, 2, 0, ...ascii("flannel-wg"), 0, 0,             // WGDEVICE_A_IFNAME + NUL, padded
    36, 0, 3, 0, ...k(0x11),                               // WGDEVICE_A_PRIVATE_KEY
    6, 0, 6, 0, 0x6c, 0xca, 0, 0,                          // WGDEVICE_A_LISTEN_PORT 51820, padded
    148, 0, 8, 0x80,                                       // WGDEVICE_A_PEERS | NLA_F_NESTED
    144, 0, 0, 0x80,                                       //   peer 0 | NLA_F_NESTED
    36, 0, 1, 0, ...k(0x22),                               //     WGPEER_A_PUBLIC_KEY
    8, 0, 3, 0, 2, 0, 0, 0,                                //     WGPEER_A_FLAGS REPLACE_ALLOWEDIPS
    36, 0, 2, 0, ...k(0x33),                               //     WGPEER_A_PRESHARED_KEY
    20, 0, 4, 0, 2, 0, 0xca, 0x6c, 192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0, // WGPEER_A_ENDPOINT
    6, 0, 5, 0, 25, 0, 0, 0,                               //     WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL
    32, 0, 9, 0x80,                                        //     WGPEER_A_ALLOWEDIPS | NLA_F_NESTED
    28, 0, 0, 0x80,                                        //       allowed IP 0 | NLA_F_NESTED
    6, 0, 1, 0, 2, 0, 0, 0,                                //         WGALLOWEDIP_A_FAMILY AF_INET
    8, 0, 2, 0, 10, 5, 3, 0,                               //         WGALLOWEDIP_A_IPADDR
    5, 0, 3, 0, 24, 0, 0, 0,                               //         WGALLOWEDIP_A_CIDR_MASK
  ];
  assert.deepEqual([...got], want);
});

Deno.test("removing a peer sends only its key and REMOVE_ME; REPLACE_PEERS is a device flag", () => {
  const got = encodeSetDevice(0x1234, 8, {
    ifname: "wg0",
    replacePeers: true,
    peers: [{ publicKey: new Uint8Array(k(0x22)), remove: true, endpoint: undefined }],
  });
  // deno-fmt-ignore
  const want = [
    88, 0, 0, 0, 0x34, 0x12, 5, 0, 8, 0, 0, 0, 0, 0, 0, 0, // 16 + 4 + 8 + 8 + 52
    1, 1, 0, 0,
    8, 0, 2, 0, ...ascii("wg0"), 0,                        // WGDEVICE_A_IFNAME
    8, 0, 5, 0, 1, 0, 0, 0,                                // WGDEVICE_A_FLAGS REPLACE_PEERS
    52, 0, 8, 0x80,                                        // WGDEVICE_A_PEERS
    48, 0, 0, 0x80,                                        //   peer 0
    36, 0, 1, 0, ...k(0x22),                               //     WGPEER_A_PUBLIC_KEY
    8, 0, 3, 0, 1, 0, 0, 0,                                //     WGPEER_A_FLAGS REMOVE_ME
  ];
  assert.deepEqual([...got], want);
  assert.throws(
    () => encodeSetDevice(1, 1, { ifname: "wg0", privateKey: new Uint8Array(31) }),
    /private key must be 32 bytes/,
  );
  assert.throws(() => encodeSetDevice(1, 1, { ifname: "has space" }), /invalid device name/);
});

Deno.test("CTRL_CMD_GETFAMILY for wireguard, and the family id in a reply", () => {
  // deno-fmt-ignore
  const want = [
    36, 0, 0, 0, 0x10, 0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0,     // GENL_ID_CTRL, NLM_F_REQUEST, seq 3
    3, 2, 0, 0,                                            // CTRL_CMD_GETFAMILY, version 2
    14, 0, 2, 0, ...ascii("wireguard"), 0, 0, 0,           // CTRL_ATTR_FAMILY_NAME + NUL, padded
  ];
  assert.deepEqual([...encodeGetFamily("wireguard", 1, 3)], want);
  assert.equal(decodeFamilyId(Uint8Array.from([1, 2, 0, 0, 6, 0, 1, 0, 0x22, 0x00, 0, 0])), 0x22);
});

Deno.test("family resolution asks the kernel: nlctrl is 0x10, wireguard absent here", async () => {
  const name = "twdp-genl";
  const run = (...args: string[]) => new Deno.Command("ip", { args }).output();
  assert.ok((await run("netns", "add", name)).success);
  const ns = Netns.open(`/run/netns/${name}`);
  try {
    const s = ns.run(() => NetlinkSocket.open(NETLINK_GENERIC));
    try {
      assert.equal(resolveFamily(s, "nlctrl"), 0x10);
      const wg = resolveFamily(s, "wireguard");
      const hasModule = await Deno.stat("/sys/module/wireguard").then(() => true, () => false);
      if (hasModule) assert.ok(wg !== null && wg >= 0x10);
      else assert.equal(wg, null);
    } finally {
      s.close();
    }
  } finally {
    ns.close();
    await run("netns", "del", name);
  }
});
