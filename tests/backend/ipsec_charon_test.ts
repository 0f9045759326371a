// The ipsec backend against the real charon: two namespaces joined by a veth, one backend each
// (driven as the agent drives it: init, setOwnLease, reconcile, applyEvents), SAs over libipsec
// (or kernel ESP where there is one). Rekeys, a backend restart and a peer leaving while pings
// flow; bad input at start. Namespaces twips-*, removed in finally; every charon started here is
// stopped. Run under flock /tmp/twill-kernel.lock.
import { processAlive as alive, runOk } from "../../scripts/lib/run.ts";
import assert from "node:assert/strict";
import {
  type IpsecBackend,
  ipsecBackendType,
  type IpsecConfig,
  parseIpsecConfig,
  saStates,
} from "../../lib/backend/ipsec.ts";
import type { BackendContext } from "../../lib/backend/backend.ts";
import { parseCIDR } from "../../lib/net/cidr.ts";
import { MissingBinaryError } from "../../lib/net/detached.ts";
import { charonPid, stopCharonProcess } from "../../lib/net/vici/charon.ts";
import { ViciClient } from "../../lib/net/vici/client.ts";
import type { ViciSection } from "../../lib/net/vici/message.ts";
import type { Lease } from "../../lib/subnet/lease.ts";
import { requireTools } from "../support/tools.ts";

const NET = "10.8.0.0/16";
const NODES = [
  { ns: "twips-a", ip: "192.0.2.1", subnet: "10.8.1.0/24" },
  { ns: "twips-b", ip: "192.0.2.2", subnet: "10.8.2.0/24" },
];
const PSK = "k".repeat(100);

const ip = (...args: string[]) => runOk("ip", args);

function lease(n: typeof NODES[0]): Lease {
  return {
    subnet: parseCIDR(n.subnet),
    ipv6Subnet: null,
    attrs: { publicIP: n.ip, publicIPv6: null, backendType: "ipsec" },
    modRevision: 1n,
    storeLease: 0n,
    expiresAt: null,
  };
}

function ctx(n: typeof NODES[0], dataDir: string, lines: string[]): BackendContext {
  return {
    iface: {
      name: "veth0",
      index: 0,
      mtu: 1500,
      address: n.ip,
      prefixLen: 24,
      address6: null,
      prefixLen6: 0,
    },
    publicIP: n.ip,
    network: parseCIDR(NET),
    network6: null,
    dataDir,
    log: (level, event, fields) => lines.push(`${level} ${event} ${JSON.stringify(fields ?? {})}`),
  };
}

function config(extra: Record<string, unknown> = {}): IpsecConfig {
  const o: Record<string, unknown> = { PSK, ...extra };
  return parseIpsecConfig((k) => o[k]);
}

async function makeNamespaces(): Promise<void> {
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
  }
}

async function cleanup(dirs: string[]): Promise<void> {
  for (const d of dirs) {
    const pid = await charonPid(d);
    if (pid && alive(pid)) await stopCharonProcess(pid);
  }
  for (const n of NODES) await ip("netns", "del", n.ns).catch(() => {});
  for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
}

/** The longest run of consecutive lost sequence numbers (at 10/s, 10 is a second of silence). */
function longestRun(lost: number[]): number {
  let best = 0;
  let run = 0;
  lost.forEach((n, i) => {
    run = i > 0 && lost[i - 1] === n - 1 ? run + 1 : 1;
    best = Math.max(best, run);
  });
  return best;
}

/** Pings node B's subnet address from A's for `seconds` at 10/s; the sequence numbers lost. */
async function pingFor(seconds: number): Promise<{ sent: number; lost: number[] }> {
  const args = [
    "netns",
    "exec",
    NODES[0].ns,
    "ping",
    "-i",
    "0.1",
    "-W",
    "1",
    "-w",
    String(seconds),
  ];
  args.push("-I", "10.8.1.0", "10.8.2.0");
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  const got = new Set([...text.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])));
  const sent = Number(/(\d+) packets transmitted/.exec(text)?.[1] ?? 0);
  const lost: number[] = [];
  for (let i = 1; i <= sent; i++) if (!got.has(i)) lost.push(i);
  return { sent, lost };
}

async function childSa(socket: string): Promise<ViciSection | null> {
  const c = await ViciClient.connect(socket, 10_000);
  try {
    for (const ev of await c.listSas()) {
      for (const sa of Object.values(ev) as ViciSection[]) {
        for (const ch of Object.values(sa["child-sas"] as ViciSection ?? {}) as ViciSection[]) {
          if (ch.state === "INSTALLED") return ch;
        }
      }
    }
    return null;
  } finally {
    c.close();
  }
}

async function sasOf(socket: string): Promise<ViciSection[]> {
  const c = await ViciClient.connect(socket, 10_000);
  try {
    return await c.listSas();
  } finally {
    c.close();
  }
}

async function until(what: string, ms: number, fn: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test("ipsec backend: SAs between two nodes, rekeyed and restarted without loss, charon restarted when it dies, unloaded", async () => {
  requireTools(["ip", "ping"]);
  const dirs = await Promise.all(NODES.map(() => Deno.makeTempDir({ prefix: "twill-ipsec-" })));
  const logs: string[][] = [[], []];
  try {
    await makeNamespaces();
    const types = NODES.map((n) =>
      ipsecBackendType({
        netns: n.ns,
        timers: { ikeRekeySeconds: 3600, childRekeySeconds: 8 },
        takeoverMs: 5000,
      })
    );
    const b: IpsecBackend[] = [];
    for (const [i, n] of NODES.entries()) {
      b.push(await types[i].init(config(), ctx(n, dirs[i], logs[i])) as IpsecBackend);
      b[i].setOwnLease(lease(n));
    }
    const socket = (i: number) => `${dirs[i]}/run/charon.vici`;
    if (b[0].mode === "libipsec") {
      assert.equal(b[0].mtu, 1400, "libipsec's TUN carries 1400 bytes");
      assert.ok(logs[0].some((l) => /ipsec_udp_encap .*forced/.test(l)));
      assert.ok(logs[0].some((l) => /ipsec_mtu_capped .*"flannel_mtu":1415/.test(l)));
    }
    assert.ok(logs[0].some((l) => /ipsec_mode .*"mode":"(kernel|libipsec)"/.test(l)));
    assert.ok(!logs.flat().some((l) => l.includes(PSK)), "the PSK is never logged");

    // B reconciles first (it answers: 192.0.2.1 < 192.0.2.2 makes A the initiator).
    const r1 = await b[1].reconcile([lease(NODES[0])]);
    assert.equal(r1.errors, "");
    assert.equal(r1.added, 1);
    const r0 = await b[0].reconcile([lease(NODES[1])]);
    assert.equal(r0.errors, "");
    await until("the SA", 20_000, async () => !!(await childSa(socket(0))));
    assert.equal((await b[0].reconcile([lease(NODES[1])])).peersProgrammed, 1);
    const sas = await sasOf(socket(0));
    assert.equal(sas.length, 1, "one IKE_SA per pair");
    assert.deepEqual(
      Object.keys(sas[0]),
      ["192.0.2.1-10.8.1.0/24-10.8.2.0/24-192.0.2.2"],
      "Flannel's connection name",
    );

    // Rekeys (every ~8 s) while pings flow: traffic never stops. A single late reply can happen
    // when the userspace ESP process is starved of CPU (the whole suite shares 2 cores), so the
    // measure is the one the issue uses for restarts: no silence of 1 s or more.
    const before = await childSa(socket(0));
    const flow = await pingFor(20);
    const after = await childSa(socket(0));
    assert.ok(flow.sent >= 150, `sent ${flow.sent}`);
    assert.ok(longestRun(flow.lost) < 10, `no second without replies across rekeys: ${flow.lost}`);
    assert.ok(flow.lost.length <= flow.sent / 50, `at most 2% lost across rekeys: ${flow.lost}`);
    assert.notEqual(after?.["spi-in"], before?.["spi-in"], "the CHILD_SA was rekeyed");

    // An agent restart: a new backend on the same data dir reuses charon; traffic keeps flowing.
    const during = pingFor(6);
    await new Promise((r) => setTimeout(r, 1000));
    const again = await types[0].init(config(), ctx(NODES[0], dirs[0], logs[0])) as IpsecBackend;
    assert.ok(logs[0].some((l) => /ipsec_mode .*"charon":"reused"/.test(l)));
    again.setOwnLease(lease(NODES[0]));
    assert.equal((await again.reconcile([lease(NODES[1])])).errors, "");
    const r = await during;
    assert.ok(longestRun(r.lost) < 10, `no second without replies across a restart: ${r.lost}`);
    assert.equal((await sasOf(socket(0))).length, 1, "the restart did not add an SA");

    // charon dies under the agent: the next reconcile starts a new one and keys the peer again.
    const dead = (await charonPid(dirs[0]))!;
    Deno.kill(dead, "SIGKILL");
    await until("charon to die", 5000, () => Promise.resolve(!alive(dead)));
    const back = await again.reconcile([lease(NODES[1])]);
    assert.equal(back.deviceReason, "charon restarted");
    assert.notEqual(await charonPid(dirs[0]), dead);
    await until("the SA again", 20_000, async () => {
      await again.reconcile([lease(NODES[1])]);
      return !!(await childSa(socket(0)));
    });
    await until("pings again", 10_000, async () => (await pingFor(1)).lost.length === 0);

    // B leaves: A unloads it, and the SA goes on both sides.
    const gone = await again.applyEvents([{ type: "removed", lease: lease(NODES[1]) }]);
    assert.equal(gone, "");
    assert.equal((await sasOf(socket(0))).length, 0);
    const c = await ViciClient.connect(socket(0));
    assert.deepEqual(await c.getConns(), []);
    assert.deepEqual(await c.getShared(), []);
    c.close();
    await until("B to drop the SA", 10_000, async () => (await sasOf(socket(1))).length === 0);
  } catch (e) {
    for (const d of dirs) console.error(await Deno.readTextFile(`${d}/charon.log`).catch(() => ""));
    console.error(logs.flat().join("\n"));
    throw e;
  } finally {
    await cleanup(dirs);
  }
});

Deno.test("ipsec backend: a missing charon, or one refusing our proposal, stops start-up clean", async () => {
  const dirs = await Promise.all(NODES.map(() => Deno.makeTempDir({ prefix: "twill-ipsec-" })));
  try {
    await makeNamespaces();
    const missing = ipsecBackendType({ netns: NODES[0].ns, charonBinary: "/nonexistent/charon" });
    await assert.rejects(
      () => missing.init(config(), ctx(NODES[0], dirs[0], [])),
      (e) => e instanceof MissingBinaryError && /libcharon-extra-plugins/.test(e.message),
    );
    assert.equal(await charonPid(dirs[0]), null, "no charon started");

    const t = ipsecBackendType({ netns: NODES[1].ns });
    await assert.rejects(
      () => t.init(config({ ESPProposal: "aes999-sha256" }), ctx(NODES[1], dirs[1], [])),
      (e) =>
        e instanceof Error &&
        /^ipsec: charon refused load-conn: .* \(see .*charon\.log\)$/.test(e.message) &&
        !e.message.includes("\n"),
    );
    const pid = await charonPid(dirs[1]);
    assert.ok(pid === null || !alive(pid), "the charon it started is stopped");
  } finally {
    await cleanup(dirs);
  }
});

Deno.test("saStates: up needs an installed CHILD_SA; connecting is on its way", () => {
  const m = saStates([
    { a: { state: "ESTABLISHED", "child-sas": { x: { state: "INSTALLED" } } } },
    { b: { state: "CONNECTING" } },
    { c: { state: "ESTABLISHED", "child-sas": { y: { state: "INSTALLING" } } } },
    { d: { state: "DELETING" } },
  ]);
  assert.deepEqual([...m], [["a", "up"], ["b", "pending"], ["c", "pending"]]);
});
