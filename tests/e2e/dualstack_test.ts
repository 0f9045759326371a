// End to end, dual stack: 2 nodes with IPv4 and IPv6 underlay addresses, `main.ts agent
// --etcd-endpoints` against etcd 3.4, a net-conf with EnableIPv6; vxlan (flannel.1 and
// flannel-v6.1) and host-gw both carry pod traffic over both families. Namespaces twa-d*/twa-g*.
import assert from "node:assert/strict";
import { startEtcd } from "../subnet/etcd_helper.ts";
import { parseSubnetEnv } from "../../lib/subnet/subnet_env.ts";
import {
  type AgentProc,
  etcdList,
  etcdPut,
  httpStatus,
  inNs,
  sh,
  startAgent,
  Topology,
  waitFor,
} from "./topology.ts";

const P = "/coreos.com/network";
const netConf = (backend: string) =>
  `{"Network":"10.70.0.0/16","EnableIPv6":true,"IPv6Network":"fd70::/48","Backend":{"Type":"${backend}"}}`;

for (const backend of ["vxlan", "host-gw"] as const) {
  Deno.test({
    name: `e2e dual stack, ${backend}: IPv4 and IPv6 leases, subnet.env, pods ping over both`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => dualStack(backend),
  });
}

async function dualStack(backend: "vxlan" | "host-gw") {
  const vxlan = backend === "vxlan";
  {
    const dir = await Deno.makeTempDir({ prefix: "twa-e2e-d-" });
    const topo = new Topology(vxlan ? "twa-d" : "twa-g", 2, dir);
    topo.ipv6 = true;
    const agents: AgentProc[] = [];
    let etcd: { stop(): Promise<void> } | null = null;
    try {
      await topo.create();
      etcd = await startEtcd("10.99.0.254:22379", "10.99.0.254:22380", topo.ul);
      await etcdPut(topo, `${P}/config`, netConf(backend));
      for (const n of [1, 2]) {
        agents.push(
          startAgent(topo, n, ["--ip-masq"], {
            kind: "main-etcd",
            etcd: "http://10.99.0.254:22379",
          }),
        );
      }
      for (const n of [1, 2]) {
        await waitFor(
          `n${n} ready`,
          async () => (await httpStatus(topo.node(n), "/readyz")) === 200,
        )
          .catch((e) => {
            throw new Error(`${e.message}\n${agents[n - 1].log()}`);
          });
      }
      const leases = await etcdList(topo, `${P}/subnets/`);
      assert.equal(leases.size, 2);
      for (const [k, v] of leases) {
        assert.match(k, /\/subnets\/10\.70\.\d+\.0-24&fd70:[0-9a-f:]+::-64$/);
        const a = JSON.parse(v);
        assert.deepEqual(
          Object.keys(a),
          vxlan
            ? ["PublicIP", "PublicIPv6", "BackendType", "BackendData", "BackendV6Data"]
            : ["PublicIP", "PublicIPv6", "BackendType"],
        );
        assert.match(a.PublicIPv6, /^fd99::[12]$/);
        if (vxlan) assert.equal(a.BackendV6Data.VNI, 1);
      }
      const env = await Promise.all(
        [1, 2].map((n) => Deno.readTextFile(`${dir}/n${n}/subnet.env`)),
      );
      for (const e of env) {
        const parsed = parseSubnetEnv(e); // what the CNI plugin reads
        assert.equal(parsed.ipv6Subnet?.ip.family, 6);
        assert.equal(parsed.ipMasq, true);
        assert.match(
          e,
          /^FLANNEL_NETWORK=10\.70\.0\.0\/16\nFLANNEL_SUBNET=10\.70\.\d+\.1\/24\nFLANNEL_IPV6_NETWORK=fd70::\/48\nFLANNEL_IPV6_SUBNET=fd70:[0-9a-f:]+::1\/64\nFLANNEL_MTU=(1430|1500)\nFLANNEL_IPMASQ=true\n$/,
        );
      }
      const p4 = [await topo.addPod(1, env[0]), await topo.addPod(2, env[1])];
      const p6 = env.map((e) => e.match(/FLANNEL_IPV6_SUBNET=(\S+)::1\//)![1] + "::2");
      await waitFor(
        "pod 1 → pod 2 over IPv4",
        async () =>
          (await sh(inNs(topo.pod(1), ["ping", "-c", "1", "-W", "1", p4[1]]), { allowFail: true }))
            .code === 0,
        5000,
      );
      await waitFor(
        "pod 1 → pod 2 over IPv6",
        async () =>
          (await sh(inNs(topo.pod(1), ["ping", "-6", "-c", "1", "-W", "1", p6[1]]), {
            allowFail: true,
          })).code === 0,
        5000,
      );
      // full IPv6 MTU with don't-fragment: MTU − 40 (IPv6) − 8 (ICMPv6) bytes of payload
      const payload = String((vxlan ? 1430 : 1500) - 48);
      const big = await sh(
        inNs(topo.pod(2), ["ping", "-6", "-c", "1", "-W", "1", "-M", "do", "-s", payload, p6[0]]),
        { allowFail: true },
      );
      assert.equal(big.code, 0, big.out + big.err);
      if (vxlan) {
        const dev = await sh([
          "ip",
          "-n",
          topo.node(1),
          "-d",
          "-j",
          "link",
          "show",
          "flannel-v6.1",
        ]);
        const info = JSON.parse(dev.out)[0].linkinfo.info_data;
        assert.equal(info.local6, "fd99::1");
        assert.equal(info.learning, false);
      } else {
        const r6 = await sh([
          "ip",
          "-n",
          topo.node(1),
          "-6",
          "-j",
          "route",
          "show",
          `${p6[1].replace(/::2$/, "::")}/64`,
        ]);
        assert.equal(JSON.parse(r6.out)[0].gateway, "fd99::2");
      }
      // the devices are reused as they are: no repairs after several reconcile passes
      await new Promise((r) => setTimeout(r, 6000));
      assert.doesNotMatch(agents[0].log(), /reconcile_repaired/);
      const nft = await sh(inNs(topo.node(1), ["nft", "list", "table", "ip6", "twill"]));
      assert.match(nft.out, /ip6 saddr fd70::\/48 ip6 daddr != ff00::\/8 masquerade fully-random/);
      // a flushed ip6 masquerade table is repaired by the periodic reconcile, as the ip one is
      await sh(inNs(topo.node(1), ["nft", "flush", "table", "ip6", "twill"]));
      await waitFor(
        "ip6 masquerade table repaired",
        async () =>
          /ip6 saddr fd70::\/48 ip6 daddr != ff00::\/8 masquerade fully-random/.test(
            (await sh(inNs(topo.node(1), ["nft", "list", "table", "ip6", "twill"]))).out,
          ),
        15000,
      );
      await waitFor(
        "the repair logged",
        () => Promise.resolve(/reconcile_repaired.*masquerade/.test(agents[0].log())),
        5000,
      );
    } catch (e) {
      for (const a of agents) console.error(a.log());
      throw e;
    } finally {
      for (const a of agents) await a.stop("SIGKILL");
      await etcd?.stop();
      await topo.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
}
