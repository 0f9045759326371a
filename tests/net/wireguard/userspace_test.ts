// Against the real wireguard-go (Debian package), in a namespace this test creates. Run under
// flock /tmp/twill-kernel.lock.
import assert from "node:assert/strict";
import { parseCIDR, parseIP } from "../../../lib/net/cidr.ts";
import { MissingBinaryError, runDirOf } from "../../../lib/net/detached.ts";
import { generateKeyPair, keyToBase64 } from "../../../lib/net/wireguard/keys.ts";
import { UapiError } from "../../../lib/net/wireguard/uapi.ts";
import {
  ensureWireguardGo,
  stopWireguardGo,
  uapiSocketPath,
} from "../../../lib/net/wireguard/userspace.ts";

const NS = "twdp-wg-uapi";
const DEV = "twdp-wg0";

async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
}

Deno.test("wireguard-go: started detached, configured over UAPI, reused after a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "twill-wg-" });
  await run("ip", "netns", "add", NS);
  let pid: number | undefined;
  try {
    const netns = `/run/netns/${NS}`;
    const dev = await ensureWireguardGo({ dataDir, device: DEV, netns });
    pid = dev.pid;
    assert.equal(dev.reused, false);
    assert.equal(dev.socketPath, `${dataDir}/run/wireguard/${DEV}.sock`);
    assert.ok((await run("ip", "-n", NS, "link", "show", DEV)).includes(DEV));

    const own = await generateKeyPair();
    const peer = await generateKeyPair();
    const psk = (await generateKeyPair()).privateKey;
    await dev.client.configureDevice({ privateKey: own.privateKey, listenPort: 51820 });
    await dev.client.setPeer({
      publicKey: peer.publicKey,
      presharedKey: psk,
      endpoint: { ip: parseIP("192.0.2.7"), port: 51820 },
      allowedIPs: [parseCIDR("10.5.3.0/24"), parseCIDR("10.5.9.0/24")],
      persistentKeepalive: 25,
    });
    let state = await dev.client.get();
    assert.equal(state.listenPort, 51820);
    assert.deepEqual(state.privateKey, own.privateKey);
    assert.equal(state.peers.length, 1);
    assert.deepEqual(state.peers[0].presharedKey, psk);
    assert.equal(state.peers[0].persistentKeepalive, 25);
    assert.deepEqual(state.peers[0].allowedIPs.length, 2);

    // `wg` (wireguard-tools) reads the same device through the same socket.
    const dump = await run(
      "nsenter",
      `--net=${netns}`,
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      'mount --bind "$0" /run && wg show "$1" dump',
      runDirOf(dataDir),
      DEV,
    );
    const peerLine = dump.trim().split("\n")[1].split("\t");
    assert.equal(peerLine[0], keyToBase64(peer.publicKey));
    assert.equal(peerLine[2], "192.0.2.7:51820");
    assert.equal(peerLine[3], "10.5.3.0/24,10.5.9.0/24");

    // Updating a peer replaces its allowed IPs.
    await dev.client.setPeer({ publicKey: peer.publicKey, allowedIPs: [parseCIDR("10.5.4.0/24")] });
    state = await dev.client.get();
    assert.deepEqual(state.peers[0].allowedIPs, [parseCIDR("10.5.4.0/24")]);

    // A refused request is a UapiError with the errno.
    await assert.rejects(
      () => dev.client.exchange("bogus", "set=1\nno_such_key=1\n\n"),
      (e) => e instanceof UapiError && e.errno > 0,
    );

    // An agent restart finds the same process through its socket.
    const again = await ensureWireguardGo({ dataDir, device: DEV, netns });
    assert.equal(again.reused, true);
    assert.ok(alive(pid!));

    await again.client.removePeer(peer.publicKey);
    assert.equal((await again.client.get()).peers.length, 0);

    await stopWireguardGo(dataDir, DEV);
    await waitGone(pid!);
    assert.equal(alive(pid!), false, "removing the socket stops wireguard-go");
  } finally {
    if (pid !== undefined && alive(pid)) Deno.kill(pid, "SIGTERM");
    await run("ip", "netns", "del", NS);
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("wireguard-go outlives the agent process that started it", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "twill-wg-" });
  await run("ip", "netns", "add", NS);
  let pid: number | undefined;
  try {
    // A separate Deno process plays the agent: it starts the daemon and exits.
    const module = new URL("../../../lib/net/wireguard/userspace.ts", import.meta.url).href;
    const code = `const { ensureWireguardGo } = await import(${JSON.stringify(module)});
      const d = await ensureWireguardGo(${
      JSON.stringify({ dataDir, device: DEV, netns: `/run/netns/${NS}` })
    });
      console.log(d.pid);`;
    pid = Number((await run(Deno.execPath(), "eval", code)).trim());
    assert.ok(pid > 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(alive(pid), "still running after its starter exited");
    const again = await ensureWireguardGo({ dataDir, device: DEV });
    assert.equal(again.reused, true);
    assert.equal((await again.client.get()).peers.length, 0);
    await stopWireguardGo(dataDir, DEV);
    await waitGone(pid);
  } finally {
    if (pid !== undefined && alive(pid)) Deno.kill(pid, "SIGTERM");
    await run("ip", "netns", "del", NS);
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("two wireguard-go nodes configured only over UAPI carry DF pings at MTU 1420", async () => {
  const nodes = [
    { ns: "twdp-wg-a", ip: "192.0.2.1", pod: "10.8.1.0" },
    { ns: "twdp-wg-b", ip: "192.0.2.2", pod: "10.8.2.0" },
  ];
  const dirs = await Promise.all(nodes.map(() => Deno.makeTempDir({ prefix: "twill-wg-" })));
  const pids: number[] = [];
  try {
    for (const n of nodes) await run("ip", "netns", "add", n.ns);
    await run(
      "ip",
      "-n",
      nodes[0].ns,
      "link",
      "add",
      "u0",
      "type",
      "veth",
      "peer",
      "u0",
      "netns",
      nodes[1].ns,
    );
    const keys = await Promise.all(nodes.map(() => generateKeyPair()));
    const devs = [];
    for (const [i, n] of nodes.entries()) {
      await run("ip", "-n", n.ns, "addr", "add", `${n.ip}/24`, "dev", "u0");
      await run("ip", "-n", n.ns, "link", "set", "u0", "up");
      const dev = await ensureWireguardGo({
        dataDir: dirs[i],
        device: DEV,
        netns: `/run/netns/${n.ns}`,
      });
      pids.push(dev.pid!);
      devs.push(dev);
      await run("ip", "-n", n.ns, "addr", "add", `${n.pod}/32`, "dev", DEV);
      await run("ip", "-n", n.ns, "link", "set", DEV, "mtu", "1420", "up");
      await dev.client.configureDevice({ privateKey: keys[i].privateKey, listenPort: 51820 });
    }
    for (const [i, n] of nodes.entries()) {
      const peer = nodes[1 - i];
      await devs[i].client.setPeer({
        publicKey: keys[1 - i].publicKey,
        endpoint: { ip: parseIP(peer.ip), port: 51820 },
        allowedIPs: [parseCIDR(`${peer.pod}/24`)],
      });
      await run("ip", "-n", n.ns, "route", "add", `${peer.pod}/24`, "dev", DEV, "src", n.pod);
    }
    // A DF ping at the device MTU (1420 = underlay 1500 - 80) crosses the tunnel.
    await run(
      "ip",
      "netns",
      "exec",
      nodes[0].ns,
      "ping",
      "-c",
      "2",
      "-W",
      "2",
      "-M",
      "do",
      "-s",
      String(1420 - 28),
      nodes[1].pod,
    );
    const peerState = (await devs[0].client.get()).peers[0];
    assert.ok(peerState.lastHandshakeSec > 0, "a handshake happened");
    assert.ok(peerState.rxBytes > 0n && peerState.txBytes > 0n);
  } finally {
    for (const pid of pids) if (alive(pid)) Deno.kill(pid, "SIGTERM");
    for (const n of nodes) await run("ip", "netns", "del", n.ns).catch(() => {});
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("a missing wireguard-go binary is one line naming the package", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "twill-wg-" });
  try {
    await assert.rejects(
      () => ensureWireguardGo({ dataDir, device: "wgx", binary: "no-such-wireguard-go" }),
      (e) => e instanceof MissingBinaryError && /Debian package wireguard-go/.test(e.message),
    );
    assert.throws(() => Deno.statSync(uapiSocketPath(dataDir, "wgx")));
    await assert.rejects(
      () => ensureWireguardGo({ dataDir, device: "../x" }),
      /invalid WireGuard device name/,
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
