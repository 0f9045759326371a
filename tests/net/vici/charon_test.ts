// Against the real charon (Debian strongswan-charon + libcharon-extra-plugins): two namespaces
// joined by a veth, one charon each, driven only over VICI. Run under flock
// /tmp/twill-kernel.lock.
import { processAlive as alive, runOk } from "../../../scripts/lib/run.ts";
import assert from "node:assert/strict";
import { MissingBinaryError } from "../../../lib/net/detached.ts";
import {
  charonConfig,
  charonPid,
  ensureCharon,
  type IpsecMode,
  ipsecMtu,
  kernelHasEsp,
  LIBIPSEC_TUN_MTU,
  type RunningCharon,
  stopCharon,
} from "../../../lib/net/vici/charon.ts";
import { ViciCommandError } from "../../../lib/net/vici/client.ts";
import type { ViciSection } from "../../../lib/net/vici/message.ts";

const NODES = [
  { ns: "twdp-ike-a", ip: "192.0.2.1", subnet: "10.7.1.0/24" },
  { ns: "twdp-ike-b", ip: "192.0.2.2", subnet: "10.7.2.0/24" },
];
const PSK = "p".repeat(96);

const ip = (...args: string[]) => runOk("ip", args);

/** A connection shaped as Flannel's ipsec backend loads one per peer. */
function peerConn(local: typeof NODES[0], remote: typeof NODES[0]): ViciSection {
  return {
    local_addrs: [local.ip],
    remote_addrs: [remote.ip],
    version: "2",
    proposals: ["aes256-sha256-modp4096"],
    encap: "yes",
    keyingtries: "0",
    local: { auth: "psk", id: local.ip },
    remote: { auth: "psk", id: remote.ip },
    children: {
      [`${local.subnet}-${remote.subnet}`]: {
        local_ts: [local.subnet],
        remote_ts: [remote.subnet],
        esp_proposals: ["aes128-sha256-modp2048"],
        mode: "tunnel",
      },
    },
  };
}

Deno.test("the config names the vici socket under /run and libipsec only in that mode", () => {
  const lib = charonConfig("libipsec");
  assert.match(lib, /socket = unix:\/\/\/run\/charon\.vici/);
  assert.match(lib, /load = .* kernel-libipsec kernel-netlink socket-default vici/);
  assert.doesNotMatch(charonConfig("kernel"), /kernel-libipsec/);
});

Deno.test("the announced MTU: Flannel's ESP overhead, UDP encapsulation, libipsec's ceiling", () => {
  assert.equal(ipsecMtu("kernel", 1500, false), 1423);
  assert.equal(ipsecMtu("kernel", 1500, true), 1415);
  assert.equal(ipsecMtu("libipsec", 1500, false), 1400, "encapsulated, and capped by the TUN");
  assert.equal(ipsecMtu("libipsec", 1450, false), 1365);
});

/** Whether a DF ping of `total` bytes (IP header included) crosses from node A to node B. */
async function dfPing(total: number): Promise<boolean> {
  const args = ["netns", "exec", NODES[0].ns, "ping", "-c", "1", "-W", "2", "-M", "do"];
  args.push("-s", String(total - 28), "-I", "10.7.1.1", "10.7.2.1");
  return (await new Deno.Command("ip", { args, stdout: "null", stderr: "null" }).output()).success;
}

Deno.test("charon over VICI: version, PSK and connection, an IKE SA, unload", async () => {
  const mode: IpsecMode = (await kernelHasEsp()).esp ? "kernel" : "libipsec";
  const dirs = await Promise.all(NODES.map(() => Deno.makeTempDir({ prefix: "twill-ike-" })));
  const charons: RunningCharon[] = [];
  try {
    for (const n of NODES) await ip("netns", "add", n.ns);
    await ip(
      "-n",
      NODES[0].ns,
      "link",
      "add",
      "veth0",
      "type",
      "veth",
      "peer",
      "veth0",
      "netns",
      NODES[1].ns,
    );
    for (const n of NODES) {
      await ip("-n", n.ns, "addr", "add", `${n.ip}/24`, "dev", "veth0");
      await ip("-n", n.ns, "link", "set", "veth0", "up");
      await ip("-n", n.ns, "link", "set", "lo", "up");
      // A node owns the first address of its subnet (cni0's, in a real node); charon routes the
      // tunnel from it.
      await ip("-n", n.ns, "addr", "add", `${n.subnet.replace(".0/24", ".1")}/32`, "dev", "lo");
    }
    for (const [i, n] of NODES.entries()) {
      charons.push(await ensureCharon({ dataDir: dirs[i], mode, netns: `/run/netns/${n.ns}` }));
      assert.equal(charons[i].reused, false);
      assert.equal(charons[i].paths.viciSocket, `${dirs[i]}/run/charon.vici`);
      assert.equal(await charonPid(dirs[i]), charons[i].pid, "pid file under the data dir");
    }
    const v = await charons[0].client.version();
    assert.equal(v.daemon, "charon");
    assert.match(String(v.version), /^5\./);

    for (const [i, n] of NODES.entries()) {
      const peer = NODES[1 - i];
      await charons[i].client.loadShared({ id: `psk-${peer.ip}`, data: PSK, owners: [peer.ip] });
      await charons[i].client.loadConn(peer.ip, peerConn(n, peer));
    }
    const conns = await charons[0].client.request("get-conns");
    assert.deepEqual(conns.conns, [NODES[1].ip]);

    await charons[0].client.initiate({
      ike: NODES[1].ip,
      child: `${NODES[0].subnet}-${NODES[1].subnet}`,
      timeoutMs: 20_000,
    });
    const sas = await charons[0].client.listSas();
    assert.equal(sas.length, 1);
    const sa = sas[0][NODES[1].ip] as ViciSection;
    assert.equal(sa.state, "ESTABLISHED");
    assert.equal(sa["remote-host"], NODES[1].ip);
    if (mode === "libipsec") assert.equal(sa["nat-any"] ?? sa.encap ?? "yes", "yes");
    const children = Object.values(sa["child-sas"] as ViciSection) as ViciSection[];
    assert.equal(children.length, 1);
    assert.equal(children[0].state, "INSTALLED");
    assert.deepEqual(children[0]["local-ts"], [NODES[0].subnet]);

    // Traffic between the two subnets crosses the tunnel.
    const ping = await new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        NODES[0].ns,
        "ping",
        "-c",
        "2",
        "-W",
        "2",
        "-I",
        "10.7.1.1",
        "10.7.2.1",
      ],
      stdout: "piped",
    }).output();
    assert.ok(ping.success, new TextDecoder().decode(ping.stdout));
    if (mode === "libipsec") {
      assert.ok(await dfPing(LIBIPSEC_TUN_MTU), "libipsec carries 1400-byte packets");
      // A larger TUN MTU does not widen the path: libipsec drops what exceeds its buffers.
      for (const n of NODES) await ip("-n", n.ns, "link", "set", "ipsec0", "mtu", "1500");
      assert.equal(await dfPing(LIBIPSEC_TUN_MTU + 1), false);
    }
    const after = (await charons[0].client.listSas())[0][NODES[1].ip] as ViciSection;
    const child = Object.values(after["child-sas"] as ViciSection)[0] as ViciSection;
    assert.ok(Number(child["packets-out"]) >= 2, "the pings went through the SA");

    // A refusal carries charon's own message.
    await assert.rejects(
      () => charons[0].client.unloadConn("no-such-conn"),
      (e) => e instanceof ViciCommandError && /no-such-conn/.test(e.errmsg),
    );

    await charons[0].client.terminate({ ike: NODES[1].ip, timeoutMs: 10_000 });
    await charons[0].client.unloadConn(NODES[1].ip);
    await charons[0].client.unloadShared(`psk-${NODES[1].ip}`);
    assert.deepEqual((await charons[0].client.request("get-conns")).conns, []);
    assert.equal((await charons[0].client.listSas()).length, 0);

    // An agent restart finds the same charon through the socket under its data dir.
    const again = await ensureCharon({ dataDir: dirs[0], mode });
    assert.equal(again.reused, true);
    again.client.close();
  } catch (e) {
    // charon's own account of the failure is in its logs, which finally removes.
    for (const d of dirs) console.error(await Deno.readTextFile(`${d}/charon.log`).catch(() => ""));
    throw e;
  } finally {
    for (const c of charons) c.client.close();
    for (const [i, c] of charons.entries()) {
      await stopCharon(dirs[i]);
      for (let t = 0; t < 100 && c.pid && alive(c.pid); t++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      if (c.pid && alive(c.pid)) Deno.kill(c.pid, "SIGKILL");
    }
    for (const n of NODES) await ip("netns", "del", n.ns).catch(() => {});
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("a missing charon is one line naming the packages", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "twill-ike-" });
  try {
    await assert.rejects(
      () => ensureCharon({ dataDir, mode: "libipsec", binary: "/nonexistent/charon" }),
      (e) =>
        e instanceof MissingBinaryError &&
        /strongswan-charon, libcharon-extra-plugins and libstrongswan-standard-plugins/.test(
          e.message,
        ),
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
