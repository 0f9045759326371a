// End to end, shared by two test files: 3 nodes in network namespaces, a real agent process
// per node (`main.ts agent`), VXLAN between them; the store is either etcd 3.4 in the underlay
// namespace (--etcd-endpoints) or twill's embedded store (--init / --join). Namespaces
// <prefix>*, removed by exact name in finally.
import assert from "node:assert/strict";
import { type EtcdProc, startEtcd } from "../subnet/etcd_helper.ts";
import { requireTools } from "../support/tools.ts";
import {
  type AgentMode,
  type AgentProc,
  embeddedAccess,
  etcdAccess,
  httpBody,
  httpStatus,
  inNs,
  sh,
  startAgent,
  type StoreAccess,
  storeCall,
  storeDel,
  storeList,
  storePut,
  Topology,
  waitFor,
} from "./topology.ts";

const P = "/coreos.com/network";
const NET_CONF = '{"Network":"10.50.0.0/16","Backend":{"Type":"vxlan"}}';

/** Arguments for Deno.Command("ip", …) that run `args` inside namespace `ns`. */
function nsArgs(ns: string, args: string[]): string[] {
  return inNs(ns, args).slice(1);
}

async function ping(fromNs: string, ip: string, extra: string[] = []): Promise<boolean> {
  const r = await sh(inNs(fromNs, ["ping", "-c", "1", "-W", "1", ...extra, ip]), {
    allowFail: true,
  });
  return r.code === 0;
}

async function routes(ns: string, dev: string): Promise<string[]> {
  const r = await sh(["ip", "-n", ns, "-j", "-4", "route", "show", "dev", dev], {
    allowFail: true,
  });
  return r.code ? [] : (JSON.parse(r.out || "[]") as { dst: string }[]).map((x) => x.dst);
}

export async function vxlanScenario(
  t: Deno.TestContext,
  o: { prefix: string; store: "etcd" | "embedded" },
): Promise<void> {
  requireTools(["tcpdump"]);
  const dir = await Deno.makeTempDir({ prefix: `${o.prefix}-e2e-` });
  const topo = new Topology(o.prefix, 3, dir);
  const agents = new Map<number, AgentProc>();
  let etcd: EtcdProc | null = null;
  const token = "twa-e2e-token";
  let store: StoreAccess;
  const mode = (n: number, restart = false): AgentMode =>
    o.store === "etcd" ? { kind: "main-etcd", etcd: "http://10.99.0.254:22379" } : {
      kind: "main-embedded",
      token,
      role: restart ? "restart" : n === 1 ? "init" : "join",
      netConf: `${dir}/net-conf.json`,
    };
  try {
    await topo.create();
    if (o.store === "etcd") {
      etcd = await startEtcd("10.99.0.254:22379", "10.99.0.254:22380", topo.ul);
      store = etcdAccess(topo);
      await storePut(store, `${P}/config`, NET_CONF);
      for (let n = 1; n <= 3; n++) agents.set(n, startAgent(topo, n, ["--ip-masq"], mode(n)));
    } else {
      await Deno.writeTextFile(`${dir}/net-conf.json`, NET_CONF);
      for (let n = 1; n <= 3; n++) {
        agents.set(n, startAgent(topo, n, ["--ip-masq"], mode(n)));
        await waitFor(
          `n${n} /readyz`,
          async () => (await httpStatus(topo.node(n), "/readyz")) === 200,
          30_000,
        ).catch((e) => {
          throw new Error(`${e.message}\n${agents.get(n)!.log()}`);
        });
      }
      store = embeddedAccess(topo, 2);
    }

    const env = new Map<number, string>();
    const podIp = new Map<number, string>();
    await t.step(
      "every agent becomes ready with a distinct lease and Flannel's subnet.env",
      async () => {
        for (let n = 1; n <= 3; n++) {
          await waitFor(
            `n${n} /readyz`,
            async () => (await httpStatus(topo.node(n), "/readyz")) === 200,
            30_000,
          )
            .catch((e) => {
              throw new Error(`${e.message}\n${agents.get(n)!.log()}`);
            });
        }
        const leases = await storeList(store, `${P}/subnets/`);
        assert.equal(leases.size, 3);
        const byIp = new Map<string, string>();
        for (const [k, v] of leases) {
          byIp.set(JSON.parse(v).PublicIP, k.split("/").pop()!);
        }
        for (let n = 1; n <= 3; n++) {
          const key = byIp.get(topo.nodeIp(n));
          assert.ok(key, `a lease for node ${n}`);
          const v = JSON.parse(leases.get(`${P}/subnets/${key}`)!);
          assert.deepEqual(Object.keys(v), [
            "PublicIP",
            "PublicIPv6",
            "BackendType",
            "BackendData",
          ]);
          assert.equal(v.BackendData.VNI, 1);
          const mac = (await Deno.readTextFile(`${dir}/n${n}/data/vtep-mac`)).trim();
          assert.equal(v.BackendData.VtepMAC, mac);
          const base = key!.replace(/\.0-24$/, "");
          const text = await Deno.readTextFile(`${dir}/n${n}/subnet.env`);
          assert.equal(
            text,
            `FLANNEL_NETWORK=10.50.0.0/16\nFLANNEL_SUBNET=${base}.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`,
          );
          assert.equal((await Deno.stat(`${dir}/n${n}/subnet.env`)).mode! & 0o777, 0o644);
          env.set(n, text);
        }
        assert.equal(new Set(byIp.values()).size, 3, "distinct subnets");
        // node 1 programs node 3 from its watch while node 3 finishes starting up: either may
        // come first, so give node 1 a moment
        let m = "";
        await waitFor("node 1 programs both peers", async () => {
          m = await httpBody(topo.node(1), "/metrics");
          return /twill_peers_programmed 2/.test(m);
        }, 5_000).catch(() => {});
        assert.match(m, /twill_peers_programmed 2/);
        assert.equal(await httpStatus(topo.node(1), "/healthz"), 200);
      },
    );

    await t.step(
      "pods ping across nodes over VXLAN, full MTU with DF, UDP 8472 on the underlay",
      async () => {
        for (let n = 1; n <= 3; n++) podIp.set(n, await topo.addPod(n, env.get(n)!));
        const cap = new Deno.Command("ip", {
          args: nsArgs(topo.ul, [
            "tcpdump",
            "-n",
            "-i",
            "br0",
            "-c",
            "4",
            "udp",
            "dst",
            "port",
            "8472",
          ]),
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        await new Promise((r) => setTimeout(r, 500));
        for (const [a, b] of [[1, 2], [2, 3], [3, 1]]) {
          await waitFor(`pod ${a} → pod ${b}`, () => ping(topo.pod(a), podIp.get(b)!), 10_000);
        }
        // 1450-byte packets: 1422 bytes of ICMP payload + 28 bytes of headers, don't fragment
        assert.ok(
          await ping(topo.pod(1), podIp.get(2)!, ["-M", "do", "-s", "1422"]),
          "full-MTU ping",
        );
        assert.ok(
          !(await ping(topo.pod(1), podIp.get(2)!, ["-M", "do", "-s", "1423"])),
          "MTU+1 refused",
        );
        const out = await Promise.race([
          cap.output(),
          new Promise<null>((r) => setTimeout(() => r(null), 5000)),
        ]);
        if (!out) {
          cap.kill("SIGKILL");
          await cap.status;
        }
        assert.ok(out, "tcpdump saw UDP 8472 packets on the underlay");
        assert.match(new TextDecoder().decode(out!.stdout), /\.8472: .*VXLAN|\.8472:/);
      },
    );

    await t.step(
      "masquerade: pod → outside gets the node address, pod ↔ pod and outside → pod keep theirs",
      async () => {
        const cap = (filter: string[], ns: string, iface: string) =>
          new Deno.Command("ip", {
            args: nsArgs(ns, ["tcpdump", "-n", "-l", "-i", iface, "-c", "1", ...filter]),
            stdout: "piped",
            stderr: "null",
          }).spawn();
        const out = cap(["icmp", "and", "dst", "host", "203.0.113.1"], topo.ul, "br0");
        await new Promise((r) => setTimeout(r, 400));
        assert.ok(await ping(topo.pod(1), "203.0.113.1"), "pod reaches the outside");
        const o = new TextDecoder().decode((await out.output()).stdout);
        assert.match(
          o,
          new RegExp(`IP ${topo.nodeIp(1).replace(/\./g, "\\.")} > 203\\.0\\.113\\.1`),
        );
        const inPod = cap(["icmp", "and", "src", "host", podIp.get(1)!], topo.pod(2), "eth0");
        await new Promise((r) => setTimeout(r, 400));
        assert.ok(await ping(topo.pod(1), podIp.get(2)!));
        const o2 = new TextDecoder().decode((await inPod.output()).stdout);
        assert.match(o2, new RegExp(`IP ${podIp.get(1)!.replace(/\./g, "\\.")} > `));
        // outside → a local pod keeps the client's address (the "internet" routes the pod
        // subnet to node 1)
        const sub1 = env.get(1)!.match(/FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1/)![1] + ".0/24";
        await sh(["ip", "-n", topo.ul, "route", "replace", sub1, "via", topo.nodeIp(1)]);
        const fromOutside = cap(["icmp", "and", "src", "host", "10.99.0.254"], topo.pod(1), "eth0");
        await new Promise((r) => setTimeout(r, 400));
        assert.ok(await ping(topo.ul, podIp.get(1)!), "the outside reaches a pod");
        const o3 = new TextDecoder().decode((await fromOutside.output()).stdout);
        assert.match(o3, /IP 10\.99\.0\.254 > /);
      },
    );

    await t.step(
      "restarting an agent keeps its subnet and VTEP MAC; pods elsewhere lose nothing",
      async () => {
        const before = await Deno.readTextFile(`${dir}/n1/subnet.env`);
        const mac = await Deno.readTextFile(`${dir}/n1/data/vtep-mac`);
        const pinger = new Deno.Command("ip", {
          args: nsArgs(topo.pod(2), ["ping", "-i", "0.05", "-c", "80", "-W", "1", podIp.get(3)!]),
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const p1 = new Deno.Command("ip", {
          args: nsArgs(topo.pod(3), ["ping", "-i", "0.05", "-c", "80", "-W", "1", podIp.get(1)!]),
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        assert.equal(await agents.get(1)!.stop(), 0);
        agents.set(1, startAgent(topo, 1, ["--ip-masq"], mode(1, true)));
        await waitFor(
          "n1 ready again",
          async () => (await httpStatus(topo.node(1), "/readyz")) === 200,
        );
        const po = await pinger.output();
        const r = new TextDecoder().decode(po.stdout);
        assert.match(
          r,
          / 0% packet loss/,
          `code ${po.code} ${new TextDecoder().decode(po.stderr)}`,
        );
        const r1 = new TextDecoder().decode((await p1.output()).stdout);
        assert.match(r1, / 0% packet loss/, `pod on the restarted node: ${r1}`);
        assert.equal(await Deno.readTextFile(`${dir}/n1/subnet.env`), before);
        assert.equal(await Deno.readTextFile(`${dir}/n1/data/vtep-mac`), mac);
        assert.match(agents.get(1)!.log(), /event=lease_acquired .*how=reused/);
      },
    );

    await t.step(
      "reconcile restores a deleted route, flannel.1 and the masquerade table",
      async () => {
        const sub3 = env.get(3)!.match(/FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1/)![1] + ".0/24";
        await sh(["ip", "-n", topo.node(2), "route", "del", sub3]);
        await waitFor(
          "route restored",
          async () => (await routes(topo.node(2), "flannel.1")).includes(sub3),
          12_000,
        );
        await sh(["ip", "-n", topo.node(2), "link", "del", "flannel.1"]);
        await waitFor(
          "flannel.1 recreated",
          async () => (await routes(topo.node(2), "flannel.1")).length === 2,
          12_000,
        );
        await waitFor("pod 2 → pod 3 again", () => ping(topo.pod(2), podIp.get(3)!), 12_000);
        assert.match(agents.get(2)!.log(), /event=reconcile_repaired/);
        // a removed masquerade table comes back
        await sh(inNs(topo.node(2), ["nft", "delete", "table", "ip", "twill"]));
        await waitFor(
          "masquerade table restored",
          async () =>
            (await sh(inNs(topo.node(2), ["nft", "list", "table", "ip", "twill"]), {
              allowFail: true,
            }))
              .code === 0,
          12_000,
        );
        // The agent logs the repair just after the table is back; its stderr arrives a moment later.
        await waitFor(
          "the masquerade repair logged",
          () =>
            Promise.resolve(
              /event=reconcile_repaired masquerade=reapplied/.test(agents.get(2)!.log()),
            ),
          3_000,
        );
      },
    );

    await t.step(
      "a deleted lease disappears from the other nodes; a running node re-acquires its own",
      async () => {
        const sub3 = env.get(3)!.match(/FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1/)![1];
        await agents.get(3)!.stop("SIGKILL");
        agents.delete(3);
        await storeDel(store, `${P}/subnets/${sub3}.0-24`);
        for (const n of [1, 2]) {
          await waitFor(`n${n} drops ${sub3}.0/24`, async () => {
            const rs = await routes(topo.node(n), "flannel.1");
            const ne = await sh([
              "ip",
              "-n",
              topo.node(n),
              "-j",
              "neigh",
              "show",
              "dev",
              "flannel.1",
            ]);
            const fdb = await sh(
              inNs(topo.node(n), ["bridge", "-j", "fdb", "show", "dev", "flannel.1"]),
            );
            return !rs.includes(`${sub3}.0/24`) && !ne.out.includes(`"${sub3}.0"`) &&
              !fdb.out.includes(`"${topo.nodeIp(3)}"`);
          }, 5000);
        }
        const sub2 = env.get(2)!.match(/FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1/)![1];
        await storeDel(store, `${P}/subnets/${sub2}.0-24`);
        await waitFor(
          "n2 re-acquired the same subnet",
          async () => (await storeList(store, `${P}/subnets/`)).has(`${P}/subnets/${sub2}.0-24`),
          5000,
        );
        assert.match(agents.get(2)!.log(), /event=lease_lost/);
        await waitFor("pod 1 → pod 2 still", () => ping(topo.pod(1), podIp.get(2)!), 5000);
      },
    );

    if (o.store === "etcd") {
      await t.step(
        "after a store outage past compaction, an agent re-lists and applies the difference",
        async () => {
          const lease = (ip: string, mac: string) =>
            `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;
          const pid = agents.get(1)!.child.pid;
          Deno.kill(pid, "SIGSTOP");
          try {
            // while node 1 sleeps its watch connection breaks (the store restarts) ...
            await etcd!.kill();
            etcd = await etcd!.restart();
            // ... a peer comes and goes, another one comes, and that history is compacted away
            await storePut(
              store,
              `${P}/subnets/10.50.200.0-24`,
              lease("10.99.0.200", "02:dd:00:00:00:c8"),
            );
            await storeDel(store, `${P}/subnets/10.50.200.0-24`);
            await storePut(
              store,
              `${P}/subnets/10.50.201.0-24`,
              lease("10.99.0.201", "02:dd:00:00:00:c9"),
            );
            const head = await storeCall(store, "/v3/kv/range", { key: btoa("x") }) as {
              header: { revision: string };
            };
            await storeCall(store, "/v3/kv/compaction", { revision: head.header.revision });
          } finally {
            Deno.kill(pid, "SIGCONT");
          }
          await waitFor(
            "n1 programs the peer it missed",
            async () => (await routes(topo.node(1), "flannel.1")).includes("10.50.201.0/24"),
            15_000,
          );
          assert.ok(!(await routes(topo.node(1), "flannel.1")).includes("10.50.200.0/24"));
          assert.match(agents.get(1)!.log(), /event=watch_compacted/);
          await storeDel(store, `${P}/subnets/10.50.201.0-24`);
          await waitFor(
            "and drops it when it goes",
            async () => !(await routes(topo.node(1), "flannel.1")).includes("10.50.201.0/24"),
            5000,
          );
        },
      );
    }
  } catch (e) {
    for (const [n, a] of agents) console.error(`--- agent n${n} log ---\n${a.log()}`);
    throw e;
  } finally {
    for (const a of agents.values()) await a.stop("SIGKILL");
    await etcd?.stop();
    await topo.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
