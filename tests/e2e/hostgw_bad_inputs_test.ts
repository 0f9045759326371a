// End to end: the host-gw backend between 2 nodes, and bad inputs that must fail with one clear
// line, a non-zero exit and no kernel changes. Namespaces twa-h*, removed by exact name.
import assert from "node:assert/strict";
import { startEtcd } from "../subnet/etcd_helper.ts";
import {
  type AgentMode,
  type AgentProc,
  etcdDel,
  etcdPut,
  httpStatus,
  inNs,
  sh,
  startAgent,
  Topology,
  waitFor,
} from "./topology.ts";

const P = "/coreos.com/network";
// the real binary: `main.ts agent --etcd-endpoints …`
const MAIN_ETCD: AgentMode = { kind: "main-etcd", etcd: "http://10.99.0.254:22379" };

async function kernelState(ns: string): Promise<string> {
  // link names and addresses, IPv4 routes, neighbours, nftables (IPv6 link-local routes come
  // and go with DAD timing, so they are left out)
  const links = JSON.parse((await sh(["ip", "-n", ns, "-j", "link", "show"])).out) as {
    ifname: string;
    address?: string;
  }[];
  const addrs = await sh(["ip", "-n", ns, "-4", "-j", "addr", "show"]);
  const routes = await sh(["ip", "-n", ns, "-4", "-j", "route", "show", "table", "all"]);
  const neigh = await sh(["ip", "-n", ns, "-4", "-j", "neigh", "show", "nud", "permanent"]);
  const nft = await sh(inNs(ns, ["nft", "list", "ruleset"]));
  return JSON.stringify(links.map((l) => [l.ifname, l.address])) + addrs.out + routes.out +
    neigh.out + nft.out;
}

Deno.test({
  name: "e2e host-gw and bad inputs",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "twa-e2e-h-" });
    const topo = new Topology("twa-h", 2, dir);
    let etcd: { stop(): Promise<void> } | null = null;
    const running: AgentProc[] = [];
    try {
      await topo.create();
      etcd = await startEtcd("10.99.0.254:22379", "10.99.0.254:22380", topo.ul);

      await t.step("bad inputs: one clear line, non-zero exit, kernel untouched", async () => {
        const cases: [string, string | null, string[], RegExp][] = [
          [
            "invalid net-conf",
            '{"Network":"10.60.0.0/16","SubnetLen":31}',
            [],
            /^twill agent: SubnetLen must be less than \/31$/,
          ],
          [
            "unknown backend",
            '{"Network":"10.60.0.0/16","Backend":{"Type":"udp"}}',
            [],
            /^twill agent: unknown backend type: udp$/,
          ],
          [
            "missing --iface",
            '{"Network":"10.60.0.0/16"}',
            ["--iface", "nosuch0"],
            /^twill agent: no interface matches --iface nosuch0: /,
          ],
          [
            "host-gw behind NAT",
            '{"Network":"10.60.0.0/16","Backend":{"Type":"host-gw"}}',
            ["--public-ip", "198.51.100.7"],
            /^twill agent: host-gw cannot work behind NAT: /,
          ],
        ];
        for (const [what, conf, flags, expect] of cases) {
          if (conf) await etcdPut(topo, `${P}/config`, conf);
          const before = await kernelState(topo.node(1));
          const a = startAgent(topo, 1, flags, MAIN_ETCD);
          const code = await Promise.race([
            a.child.status.then((s) => s.code),
            new Promise<number>((r) => setTimeout(() => r(-1), 15_000)),
          ]);
          const errLines = (await a.stop("SIGKILL"), a.log()).trim().split("\n")
            .filter((l) => l.startsWith("twill agent:"));
          assert.notEqual(code, 0, `${what}: non-zero exit`);
          assert.notEqual(code, -1, `${what}: exited by itself`);
          assert.equal(errLines.length, 1, `${what}: one error line in\n${a.log()}`);
          assert.match(errLines[0], expect, what);
          assert.equal(await kernelState(topo.node(1)), before, `${what}: kernel untouched`);
        }
        const leases = await sh(
          inNs(topo.ul, [
            "curl",
            "-s",
            "http://10.99.0.254:22379/v3/kv/range",
            "-d",
            `{"key":"${btoa(P + "/subnets/")}","range_end":"${btoa(P + "/subnets0")}"}`,
          ]),
        );
        assert.ok(!leases.out.includes('"kvs"'), "no lease taken by a failed start");
        await etcdDel(topo, `${P}/config`);
      });

      await t.step("host-gw: routes via the peer's PublicIP, pods ping across", async () => {
        await etcdPut(
          topo,
          `${P}/config`,
          '{"Network":"10.60.0.0/16","Backend":{"Type":"host-gw"}}',
        );
        // node 2 holds a 6 s lease: it must keep renewing it (every 3 s)
        running.push(startAgent(topo, 1, [], MAIN_ETCD));
        running.push(startAgent(topo, 2, ["--subnet-lease-ttl", "6s"], MAIN_ETCD));
        for (const n of [1, 2]) {
          await waitFor(
            `n${n} ready`,
            async () => (await httpStatus(topo.node(n), "/readyz")) === 200,
          );
        }
        const env1 = await Deno.readTextFile(`${dir}/n1/subnet.env`);
        const env2 = await Deno.readTextFile(`${dir}/n2/subnet.env`);
        assert.match(
          env1,
          /^FLANNEL_NETWORK=10\.60\.0\.0\/16\nFLANNEL_SUBNET=10\.60\.\d+\.1\/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n$/,
        );
        const p1 = await topo.addPod(1, env1);
        const p2 = await topo.addPod(2, env2);
        const sub2 = env2.match(/FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1/)![1] + ".0/24";
        await waitFor("route on n1", async () => {
          const r = JSON.parse(
            (await sh(["ip", "-n", topo.node(1), "-j", "route", "show", sub2])).out || "[]",
          );
          return r.length === 1 && r[0].gateway === topo.nodeIp(2) && r[0].dev === "eth0";
        }, 5000);
        await waitFor(
          "pod 1 → pod 2",
          async () =>
            (await sh(inNs(topo.pod(1), ["ping", "-c", "1", "-W", "1", p2]), { allowFail: true }))
              .code === 0,
          5000,
        );
        assert.equal(
          (await sh(inNs(topo.pod(2), ["ping", "-c", "1", "-W", "1", p1]), { allowFail: true }))
            .code,
          0,
        );
        // no VXLAN device in host-gw mode
        assert.notEqual(
          (await sh(["ip", "-n", topo.node(1), "link", "show", "flannel.1"], { allowFail: true }))
            .code,
          0,
        );
        // a deleted route comes back
        await sh(["ip", "-n", topo.node(1), "route", "del", sub2]);
        await waitFor(
          "route restored",
          async () => ((await sh(["ip", "-n", topo.node(1), "-j", "route", "show", sub2])).out
            .includes(topo.nodeIp(2))),
          12_000,
        );
      });

      await t.step(
        "a short lease is renewed while its agent runs and expires when it dies",
        async () => {
          const env2 = await Deno.readTextFile(`${dir}/n2/subnet.env`);
          const sub2 = env2.match(/FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1/)![1] + ".0/24";
          const hasRoute = async () =>
            (await sh(["ip", "-n", topo.node(1), "-j", "route", "show", sub2])).out.includes(
              topo.nodeIp(2),
            );
          await new Promise((r) => setTimeout(r, 8000)); // longer than the TTL
          assert.ok(await hasRoute(), "still there: the lease was renewed");
          assert.match(running[1].log(), /event=lease_renewed/);
          await running[1].stop("SIGKILL");
          await waitFor("route gone after expiry", async () => !(await hasRoute()), 15_000);
        },
      );

      await t.step(
        "vxlan with DirectRouting: same-L2 peers get a route via their PublicIP, plus FDB/neigh",
        async () => {
          await running[0].stop();
          running.length = 0;
          await etcdPut(
            topo,
            `${P}/config`,
            '{"Network":"10.60.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}',
          );
          for (const n of [1, 2]) running.push(startAgent(topo, n, [], MAIN_ETCD));
          for (const n of [1, 2]) {
            await waitFor(
              `n${n} ready`,
              async () => (await httpStatus(topo.node(n), "/readyz")) === 200,
            );
          }
          const env2 = await Deno.readTextFile(`${dir}/n2/subnet.env`);
          const base2 = env2.match(/FLANNEL_SUBNET=(\d+\.\d+\.\d+)\.1/)![1];
          const direct = async () =>
            (JSON.parse(
              (await sh(["ip", "-n", topo.node(1), "-j", "route", "show", `${base2}.0/24`])).out,
            ) as { gateway: string; dev: string }[]).map((x) => `${x.gateway} ${x.dev}`).join();
          await waitFor(
            "the direct route on n1",
            async () => (await direct()) === `${topo.nodeIp(2)} eth0`,
            5000,
          )
            .catch(async (e) => {
              throw new Error(`${e.message}: have ${await direct()}\n${running[0].log()}`);
            });
          const fdb = await sh(
            inNs(topo.node(1), ["bridge", "-j", "fdb", "show", "dev", "flannel.1"]),
          );
          assert.ok(fdb.out.includes(`"dst":"${topo.nodeIp(2)}"`), fdb.out);
          const p2 = `${base2}.2`;
          await waitFor(
            "pod 1 → pod 2 (direct)",
            async () =>
              (await sh(inNs(topo.pod(1), ["ping", "-c", "1", "-W", "1", p2]), { allowFail: true }))
                .code === 0,
            5000,
          );
        },
      );
    } finally {
      for (const a of running) await a.stop("SIGKILL");
      await etcd?.stop();
      await topo.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
