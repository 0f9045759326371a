// `twill ctl check` on a real node: 2 nodes in namespaces this test makes (prefix twa-ck), etcd in
// the underlay, a real agent per node with --ip-masq and a pod bridge on node 1. The agents are
// then stopped (nothing is torn down, and nobody repairs what the test breaks); each item is
// broken on node 1 in turn, `ctl check` must print exactly its line and exit 1, and the item is
// put back. Run under `flock /tmp/twill-kernel.lock`.
import assert from "node:assert/strict";
import { type EtcdProc, startEtcd } from "../subnet/etcd_helper.ts";
import {
  type AgentProc,
  httpBody,
  httpStatus,
  inNs,
  sh,
  startAgent,
  storePut,
  Topology,
  waitFor,
} from "../e2e/topology.ts";

const P = "/coreos.com/network";
const ETCD = "http://10.99.0.254:22379";
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

interface Node {
  subnet: string; // "10.51.3.0/24"
  gw: string; // "10.51.3.0"
  ip: string;
  mac: string;
}

async function nodeFacts(topo: Topology, n: number): Promise<Node> {
  const env = await Deno.readTextFile(`${topo.dir}/n${n}/subnet.env`);
  const sn = env.match(/^FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1\/24$/m)![1];
  const mac = (await Deno.readTextFile(`${topo.dir}/n${n}/data/vtep-mac`)).trim();
  return { subnet: `${sn}.0/24`, gw: `${sn}.0`, ip: topo.nodeIp(n), mac };
}

async function check(topo: Topology, json = false): Promise<{ code: number; lines: string[] }> {
  const r = await sh(
    inNs(topo.node(1), [
      Deno.execPath(),
      "run",
      "-A",
      "--no-check",
      "--config",
      CONFIG,
      MAIN,
      "ctl",
      "--server",
      ETCD,
      ...(json ? ["--json"] : []),
      "check",
      `${topo.dir}/n1/subnet.env`,
    ]),
    { allowFail: true },
  );
  if (r.code > 1) throw new Error(`ctl check failed (${r.code}): ${r.out}`);
  return { code: r.code, lines: r.out.trim().split("\n") };
}

async function n1(topo: Topology, args: string[], stdin?: string): Promise<void> {
  await sh(inNs(topo.node(1), args), stdin === undefined ? {} : { stdin });
}

Deno.test({
  name: "ctl check: each broken item on a namespace node gives exactly its line",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "twa-ck-" });
    const topo = new Topology("twa-ck", 2, dir);
    const agents: AgentProc[] = [];
    let etcd: EtcdProc | null = null;
    try {
      await topo.create();
      etcd = await startEtcd("10.99.0.254:22379", "10.99.0.254:22380", topo.ul);
      await storePut(
        { ns: topo.ul, endpoint: ETCD },
        `${P}/config`,
        '{"Network":"10.51.0.0/16","Backend":{"Type":"vxlan"}}',
      );
      for (const n of [1, 2]) {
        agents.push(startAgent(topo, n, ["--ip-masq"], { kind: "main-etcd", etcd: ETCD }));
      }
      for (const n of [1, 2]) {
        await waitFor(
          `n${n} programs its peer`,
          async () =>
            (await httpStatus(topo.node(n), "/readyz")) === 200 &&
            /^twill_peers_programmed 1$/m.test(await httpBody(topo.node(n), "/metrics")),
          30_000,
        )
          .catch((e) => {
            throw new Error(`${e.message}\n${agents[n - 1].log()}`);
          });
      }
      await topo.addPod(1, await Deno.readTextFile(`${dir}/n1/subnet.env`));
      for (const a of agents.splice(0)) await a.stop();
      await brokenItems(t, topo, await nodeFacts(topo, 1), await nodeFacts(topo, 2));
    } finally {
      for (const a of agents) await a.stop("SIGKILL");
      await etcd?.stop();
      await topo.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

async function brokenItems(t: Deno.TestContext, topo: Topology, me: Node, peer: Node) {
  const ok = async () => {
    const r = await check(topo);
    assert.equal(r.code, 0, r.lines.join("\n"));
    assert.match(r.lines[0], /^ok: flannel\.1 10\.51\.\d+\.0\/32 MTU 1450, 1 peer\(s\)/);
  };
  const expectLines = async (want: string[]) => {
    const r = await check(topo);
    assert.deepEqual(r.lines, want);
    assert.equal(r.code, 1);
  };
  const route = `${peer.subnet} via ${peer.gw} dev flannel.1 onlink`;
  await t.step("a healthy node: ok, exit 0", ok);
  await t.step("a deleted route", async () => {
    await n1(topo, ["ip", "route", "del", peer.subnet, "dev", "flannel.1"]);
    await expectLines([`route: no route ${route}; fix: ip route replace ${route}`]);
    await n1(topo, ["ip", "route", "replace", ...route.split(" ")]);
    await ok();
  });
  await t.step("a deleted neighbour", async () => {
    await n1(topo, ["ip", "neigh", "del", peer.gw, "dev", "flannel.1"]);
    await expectLines([
      `neighbour: no permanent neighbour ${peer.gw} lladdr ${peer.mac} on flannel.1; ` +
      `fix: ip neigh replace ${peer.gw} lladdr ${peer.mac} dev flannel.1 nud permanent`,
    ]);
    const fix = ["neigh", "replace", peer.gw, "lladdr", peer.mac, "dev", "flannel.1"];
    await n1(topo, ["ip", ...fix, "nud", "permanent"]);
    await ok();
  });
  await t.step("a deleted FDB entry", async () => {
    await n1(topo, ["bridge", "fdb", "del", peer.mac, "dev", "flannel.1", "dst", peer.ip]);
    await expectLines([
      `fdb: no FDB entry ${peer.mac} dst ${peer.ip} on flannel.1; ` +
      `fix: bridge fdb replace ${peer.mac} dev flannel.1 dst ${peer.ip}`,
    ]);
    await n1(topo, ["bridge", "fdb", "replace", peer.mac, "dev", "flannel.1", "dst", peer.ip]);
    await ok();
  });
  await t.step("a changed device MTU", async () => {
    await n1(topo, ["ip", "link", "set", "flannel.1", "mtu", "1400"]);
    await expectLines([
      "mtu: flannel.1 has MTU 1400, want 1450 (eth0 MTU 1500 − 50); " +
      "fix: ip link set flannel.1 mtu 1450",
    ]);
    await n1(topo, ["ip", "link", "set", "flannel.1", "mtu", "1450"]);
    await ok();
  });
  await t.step("a stray cni0 address", async () => {
    await n1(topo, ["ip", "addr", "add", "10.51.250.1/24", "dev", "cni0"]);
    await expectLines([
      `cni0: cni0 has 10.51.250.1/24, outside this node's lease ${me.subnet}; ` +
      "fix: ip addr del 10.51.250.1/24 dev cni0 once no pod uses it",
    ]);
    await n1(topo, ["ip", "addr", "del", "10.51.250.1/24", "dev", "cni0"]);
    await ok();
  });
  await netfilterItems(t, topo, me, peer, expectLines, ok);
}

async function netfilterItems(
  t: Deno.TestContext,
  topo: Topology,
  me: Node,
  peer: Node,
  expectLines: (want: string[]) => Promise<void>,
  ok: () => Promise<void>,
) {
  const file = `${topo.dir}/n1/subnet.env`;
  await t.step("a flushed masquerade table", async () => {
    const saved = (await sh(inNs(topo.node(1), ["nft", "list", "table", "ip", "twill"]))).out;
    await n1(topo, ["nft", "flush", "table", "ip", "twill"]);
    await expectLines([
      `masquerade: table ip twill has 0 of 6 rules while ${file} says FLANNEL_IPMASQ=true; ` +
      "fix: the agent restores it within its reconcile interval (5 s); if it stays, restart " +
      "the twill agent and read its log",
    ]);
    await n1(topo, ["nft", "delete", "table", "ip", "twill"]);
    await n1(topo, ["nft", "-f", "-"], saved);
    await ok();
  });
  await t.step("a DROP forward chain in another table", async () => {
    await n1(
      topo,
      ["nft", "-f", "-"],
      "table inet twa_ck_drop {\n" +
        "  chain pods { type filter hook forward priority 10; policy drop; }\n}\n",
    );
    await expectLines([
      "forward: chain inet twa_ck_drop pods drops forwarded traffic (policy drop) and accepts " +
      "nothing of 10.51.0.0/16, so pod traffic between nodes is dropped; fix: nft insert rule " +
      "inet twa_ck_drop pods ip saddr 10.51.0.0/16 accept; nft insert rule inet twa_ck_drop pods " +
      "ip daddr 10.51.0.0/16 accept",
    ]);
    await n1(topo, [
      "nft",
      "insert",
      "rule",
      "inet",
      "twa_ck_drop",
      "pods",
      "ip",
      "saddr",
      "10.51.0.0/16",
      "accept",
    ]);
    await ok();
    await n1(topo, ["nft", "delete", "table", "inet", "twa_ck_drop"]);
  });
  await t.step("UDP 8472 blocked", async () => {
    await n1(
      topo,
      ["nft", "-f", "-"],
      "table inet twa_ck_udp {\n" +
        "  chain in { type filter hook input priority 0; policy accept; udp dport 8472 drop; }\n}\n",
    );
    await expectLines([
      `reachability: no answer from peer ${peer.subnet} (${peer.ip}) through the overlay ` +
      `(ping ${peer.gw}): UDP 8472 is blocked between ${me.ip} and ${peer.ip}, or the peer ` +
      `lacks its entries for this node; fix: open UDP 8472 between ${me.ip} and ${peer.ip} ` +
      "(host firewall, security group); run twill ctl check on the peer",
    ]);
    const js = JSON.parse((await check(topo, true)).lines.join("\n"));
    assert.equal(js.ok, false);
    assert.deepEqual(js.findings.map((f: { check: string }) => f.check), ["reachability"]);
    await n1(topo, ["nft", "delete", "table", "inet", "twa_ck_udp"]);
    await ok();
    assert.equal(JSON.parse((await check(topo, true)).lines.join("\n")).ok, true);
  });
}
