// A real container runtime: podman 4.3 with its CNI network backend runs a busybox container on
// the kube-flannel network list, calling twill as "flannel" (then the reference portmap), inside
// a node namespace this test made. The container must get an address in FLANNEL_SUBNET and reach
// the gateway; podman's DEL must release it.
import assert from "node:assert/strict";
import { preparePodman } from "./podman_support.ts";
import { listDir, must, netnsAdd, netnsDel, ns } from "./support.ts";

const NODE = ns("mn");

Deno.test("podman with the CNI backend runs a container on twill's kube-flannel network", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twc-podman" });
  let cleanup = async () => {};
  try {
    await netnsAdd(NODE);
    await Deno.writeTextFile(
      `${dir}/subnet.env`,
      "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    );
    const podman = await preparePodman(dir, NODE, {
      subnetFile: `${dir}/subnet.env`,
      dataDir: `${dir}/flannel`,
      ipam: { dataDir: `${dir}/ipam` },
    });
    cleanup = podman.cleanup;
    const run = await podman.run([
      "run",
      "--rm",
      "--network",
      "cbr0",
      "localhost/twc-busybox",
      "sh",
      "-c",
      "ip -4 addr show eth0; ping -c1 -W3 10.244.7.1",
    ]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const m = run.stdout.match(/inet (10\.244\.7\.\d+)\/24/);
    assert.ok(m, `the container has an address in 10.244.7.0/24:\n${run.stdout}`);
    assert.notEqual(m[1], "10.244.7.1");
    assert.match(run.stdout, /1 packets received/);
    // podman ran DEL when the container went away: nothing reserved, no bridge port left.
    assert.deepEqual((await listDir(`${dir}/ipam/cbr0`)).filter((f) => f.startsWith("10.")), []);
    const ports = JSON.parse(
      await must(["ip", "-n", NODE, "-j", "link", "show", "master", "cni0"]) || "[]",
    );
    assert.deepEqual(ports, []);
  } finally {
    await cleanup();
    await netnsDel(NODE);
    await Deno.remove(dir, { recursive: true });
  }
});
