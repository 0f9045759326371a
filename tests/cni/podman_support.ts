// A podman 4.3 sandbox for the CNI tests: storage, run root, containers.conf and network config
// all under one temp dir; CNI backend; twill installed as "flannel" ahead of /usr/lib/cni; a
// busybox-static image. Every podman call runs inside the given node namespace.
import assert from "node:assert/strict";
import { installCni, must, type Out, REF_PLUGINS, sh } from "./support.ts";
import { requireTools } from "../support/tools.ts";

export interface Podman {
  dir: string;
  run(args: string[]): Promise<Out>;
  cleanup(): Promise<void>;
}

/**
 * Sets up podman under `dir` for the node namespace `node`, with the kube-flannel conflist whose
 * flannel entry is given `flannel` (subnetFile, dataDir, ipam.dataDir pointing at test state).
 */
export async function preparePodman(
  dir: string,
  node: string,
  flannel: Record<string, unknown>,
): Promise<Podman> {
  requireTools(["podman", "runc", "/bin/busybox", `${REF_PLUGINS}/portmap`]);
  const base = [
    "nsenter",
    `--net=/var/run/netns/${node}`,
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
  const run = (args: string[]) => sh([...base, ...args], undefined, env);
  // twill as "flannel", installed the way an operator would, into the test's own bin dir.
  const inst = await installCni(`${dir}/bin`, `${dir}/installed`);
  assert.equal(inst.code, 0, inst.stderr);
  const conflist = JSON.parse(await Deno.readTextFile(`${dir}/installed/10-flannel.conflist`));
  Object.assign(conflist.plugins[0], flannel);
  await Deno.mkdir(`${dir}/net.d`, { recursive: true });
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
  // A busybox-static rootfs imported as an image.
  const root = `${dir}/rootfs`;
  await Deno.mkdir(`${root}/bin`, { recursive: true });
  await Deno.copyFile("/bin/busybox", `${root}/bin/busybox`);
  await Deno.chmod(`${root}/bin/busybox`, 0o755);
  for (const tool of ["sh", "ip", "ping", "cat"]) {
    await Deno.symlink("busybox", `${root}/bin/${tool}`);
  }
  await must(["tar", "-C", root, "-cf", `${dir}/busybox.tar`, "."]);
  const imp = await run(["import", `${dir}/busybox.tar`, "twc-busybox"]);
  assert.equal(imp.code, 0, imp.stderr);
  return {
    dir,
    run,
    async cleanup() {
      await run(["rm", "-af"]);
      const mounts = (await Deno.readTextFile("/proc/mounts")).split("\n").reverse();
      for (const line of mounts) {
        const mnt = line.split(" ")[1];
        if (mnt?.startsWith(dir)) await sh(["umount", "-l", mnt]);
      }
    },
  };
}
