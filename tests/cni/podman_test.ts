// A real container runtime: podman 4.3 with its CNI network backend runs a busybox container on
// the kube-flannel network list, calling twill as "flannel" (then the reference portmap), inside
// a node namespace this test made. The container must get an address in FLANNEL_SUBNET and reach
// the gateway; podman's DEL must release it.
import assert from "node:assert/strict";
import { DENO, listDir, MAIN, must, netnsAdd, netnsDel, REF_PLUGINS, sh } from "./support.ts";

const NODE = "twc-mn";

async function buildImageTar(dir: string): Promise<string> {
  const root = `${dir}/rootfs`;
  await Deno.mkdir(`${root}/bin`, { recursive: true });
  await Deno.copyFile("/bin/busybox", `${root}/bin/busybox`);
  await Deno.chmod(`${root}/bin/busybox`, 0o755);
  for (const tool of ["sh", "ip", "ping", "cat"]) {
    await Deno.symlink("busybox", `${root}/bin/${tool}`);
  }
  await must(["tar", "-C", root, "-cf", `${dir}/busybox.tar`, "."]);
  return `${dir}/busybox.tar`;
}

Deno.test("podman with the CNI backend runs a container on twill's kube-flannel network", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twc-podman" });
  const podman = [
    "nsenter",
    `--net=/var/run/netns/${NODE}`,
    "podman",
    "--root",
    `${dir}/root`,
    "--runroot",
    `${dir}/run`,
    "--tmpdir",
    `${dir}/tmp`,
    "--storage-driver",
    "vfs",
  ];
  const env = { CONTAINERS_CONF: `${dir}/containers.conf` };
  try {
    await netnsAdd(NODE);
    // twill as "flannel", installed the way an operator would, into the test's own bin dir.
    const inst = await sh([
      DENO,
      "run",
      "-A",
      MAIN,
      "install-cni",
      "--bin-dir",
      `${dir}/bin`,
      "--conf-dir",
      `${dir}/installed`,
    ]);
    assert.equal(inst.code, 0, inst.stderr);
    await Deno.writeTextFile(
      `${dir}/subnet.env`,
      "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    );
    // The kube-flannel conflist, with the node state pointed into the test's directory.
    const conflist = JSON.parse(await Deno.readTextFile(`${dir}/installed/10-flannel.conflist`));
    Object.assign(conflist.plugins[0], {
      subnetFile: `${dir}/subnet.env`,
      dataDir: `${dir}/flannel`,
      ipam: { dataDir: `${dir}/ipam` },
    });
    await Deno.mkdir(`${dir}/net.d`);
    await Deno.writeTextFile(`${dir}/net.d/10-flannel.conflist`, JSON.stringify(conflist));
    await Deno.writeTextFile(
      env.CONTAINERS_CONF,
      [
        "[containers]",
        // nproc below the hard limit: this sandbox may not raise it (no CAP_SYS_RESOURCE).
        `default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]`,
        "[network]",
        `network_backend = "cni"`,
        `cni_plugin_dirs = ["${dir}/bin", "${REF_PLUGINS}"]`,
        `network_config_dir = "${dir}/net.d"`,
        "[engine]",
        `runtime = "runc"`,
        `cgroup_manager = "cgroupfs"`,
        `events_logger = "file"`,
        "",
      ].join("\n"),
    );
    const tar = await buildImageTar(dir);
    const imp = await sh([...podman, "import", tar, "twc-busybox"], undefined, env);
    assert.equal(imp.code, 0, imp.stderr);

    const run = await sh(
      [
        ...podman,
        "run",
        "--rm",
        "--network",
        "cbr0",
        "localhost/twc-busybox",
        "sh",
        "-c",
        "ip -4 addr show eth0; ping -c1 -W3 10.244.7.1",
      ],
      undefined,
      env,
    );
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
    await sh([...podman, "rm", "-af"], undefined, env);
    for (const line of (await Deno.readTextFile("/proc/mounts")).split("\n").reverse()) {
      const mnt = line.split(" ")[1];
      if (mnt?.startsWith(dir)) await sh(["umount", "-l", mnt]);
    }
    await netnsDel(NODE);
    await Deno.remove(dir, { recursive: true });
  }
});
