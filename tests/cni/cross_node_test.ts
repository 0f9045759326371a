// Across nodes: two nodes run real twill agents (embedded store, VXLAN) from the e2e topology;
// on node 2 twill's CNI face wires a pod, on node 1 podman runs a container through twill. The
// container reaches the pod on the other node through the overlay.
import assert from "node:assert/strict";
import { type AgentProc, httpStatus, startAgent, Topology, waitFor } from "../e2e/topology.ts";
import { preparePodman } from "./podman_support.ts";
import { flannelConf, netnsAdd, netnsDel, ns, podEnv, runTwill, sh } from "./support.ts";

Deno.test("a podman container on node 1 pings a twill-wired pod on node 2 over VXLAN", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twc-xnode" });
  const topo = new Topology(ns("x"), 2, dir);
  const agents: AgentProc[] = [];
  const pod2 = ns("xq2");
  let cleanup = async () => {};
  try {
    await topo.create();
    await Deno.writeTextFile(
      `${dir}/net-conf.json`,
      `{"Network":"10.60.0.0/16","Backend":{"Type":"vxlan"}}`,
    );
    for (const n of [1, 2]) {
      agents.push(startAgent(topo, n, [], {
        kind: "main-embedded",
        token: "twc-token",
        role: n === 1 ? "init" : "join",
        netConf: `${dir}/net-conf.json`,
      }));
      await waitFor(
        `n${n} /readyz`,
        async () => (await httpStatus(topo.node(n), "/readyz")) === 200,
        60_000,
      )
        .catch((e) => {
          throw new Error(`${e.message}\n${agents[n - 1].log()}`);
        });
    }
    const subnet = async (n: number) =>
      (await Deno.readTextFile(`${dir}/n${n}/subnet.env`)).match(
        /FLANNEL_SUBNET=([\d.]+)\.1\/24/,
      )![1];
    const [s1, s2] = [await subnet(1), await subnet(2)];
    assert.notEqual(s1, s2);

    // Node 2: a pod wired by twill's CNI face from the agent's own subnet.env.
    await netnsAdd(pod2);
    const conf2 = flannelConf(`${dir}/n2`, {
      subnetFile: `${dir}/n2/subnet.env`,
      dataDir: `${dir}/n2/cni`,
      ipam: { dataDir: `${dir}/n2/ipam` },
    });
    const add = await runTwill(topo.node(2), "ADD", conf2, podEnv("remote", pod2));
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const remoteIp = add.json.ips[0].address.split("/")[0];
    assert.equal(remoteIp, `${s2}.2`);

    // Node 1: podman, the CNI backend, twill as flannel.
    const podman = await preparePodman(`${dir}/podman`, topo.node(1), {
      subnetFile: `${dir}/n1/subnet.env`,
      dataDir: `${dir}/n1/cni`,
      ipam: { dataDir: `${dir}/n1/ipam` },
    });
    cleanup = podman.cleanup;
    // The agents program the overlay route to the other node's subnet; wait until node 1 has it.
    await waitFor(`n1 route to ${s2}.0/24`, async () => {
      const r = await sh(["ip", "-n", topo.node(1), "route", "show", `${s2}.0/24`]);
      return r.stdout.includes("flannel.1");
    }, 20_000);
    const run = await podman.run([
      "run",
      "--rm",
      "--network",
      "cbr0",
      "localhost/twc-busybox",
      "sh",
      "-c",
      `ip -4 addr show eth0; ping -c3 -W3 ${remoteIp}`,
    ]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, new RegExp(`inet ${s1.replaceAll(".", "\\.")}\\.\\d+/24`));
    assert.match(run.stdout, /[123] packets received/);
  } finally {
    await cleanup();
    for (const a of agents) await a.stop();
    await netnsDel(pod2);
    await topo.destroy();
    await Deno.remove(dir, { recursive: true });
  }
});
