// The ipip device request, byte for byte (layout worked out by hand from linux/if_link.h and
// linux/if_tunnel.h), and the support probe against the kernel, in a namespace made here. Run under
// flock /tmp/twill-kernel.lock.
import assert from "node:assert/strict";
import { parseIP } from "../../lib/net/cidr.ts";
import {
  createIpip,
  encodeCreateIpip,
  IpipUnsupportedError,
  probeIpip,
} from "../../lib/net/netlink/ipip.ts";
import { getLink } from "../../lib/net/netlink/rtnl.ts";
import { Netns } from "../../lib/net/netns.ts";

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

Deno.test("RTM_NEWLINK for flannel.ipip with local address, underlay link and MTU", () => {
  const got = encodeCreateIpip(9, { local: parseIP("192.168.1.10"), mtu: 1480, link: 2 });
  // deno-fmt-ignore
  const want = [
    104, 0, 0, 0, 16, 0, 0x05, 0x06, 9, 0, 0, 0, 0, 0, 0, 0, // RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,          // ifinfomsg, all zero
    17, 0, 3, 0, ...ascii("flannel.ipip"), 0, 0, 0, 0,       // IFLA_IFNAME + NUL, padded
    8, 0, 4, 0, 0xc8, 0x05, 0, 0,                            // IFLA_MTU 1480
    44, 0, 18, 0x80,                                         // IFLA_LINKINFO | NLA_F_NESTED
    9, 0, 1, 0, ...ascii("ipip"), 0, 0, 0, 0,                //   IFLA_INFO_KIND "ipip" + NUL
    28, 0, 2, 0x80,                                          //   IFLA_INFO_DATA | NLA_F_NESTED
    8, 0, 2, 0, 192, 168, 1, 10,                             //     IFLA_IPTUN_LOCAL
    8, 0, 1, 0, 2, 0, 0, 0,                                  //     IFLA_IPTUN_LINK 2
    5, 0, 10, 0, 1, 0, 0, 0,                                 //     IFLA_IPTUN_PMTUDISC 1
  ];
  assert.deepEqual([...got], want);
});

Deno.test("ipip refuses IPv6 and impossible MTUs before asking the kernel", () => {
  assert.throws(() => encodeCreateIpip(1, { local: parseIP("fd00::1"), mtu: 1480 }), /IPv4 only/);
  assert.throws(() => encodeCreateIpip(1, { local: parseIP("10.0.0.1"), mtu: 20 }), /MTU 20/);
});

Deno.test("the probe agrees with `ip link add type ipip` and leaves nothing behind", async () => {
  const name = "twdp-ipip";
  const ip = (...args: string[]) =>
    new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  assert.ok((await ip("netns", "add", name)).success);
  const ns = Netns.open(`/run/netns/${name}`);
  const s = ns.socket();
  try {
    const byIp = (await ip("-n", name, "link", "add", "iprouteprobe", "type", "ipip")).success;
    if (byIp) await ip("-n", name, "link", "del", "iprouteprobe");
    const probe = probeIpip(s);
    assert.equal(probe.supported, byIp, probe.detail);
    assert.equal(getLink(s, "twill-ipprobe"), null, "the probe device is gone");
    const spec = { local: parseIP("10.9.0.1"), mtu: 1480 };
    if (byIp) {
      createIpip(s, spec);
      const link = getLink(s, "flannel.ipip");
      assert.equal(link?.kind, "ipip");
      assert.equal(link?.mtu, 1480);
    } else {
      assert.throws(
        () => createIpip(s, spec),
        (e) => e instanceof IpipUnsupportedError && /no ipip tunnel support/.test(e.message),
      );
    }
  } finally {
    s.close();
    ns.close();
    await ip("netns", "del", name);
  }
});
