// CNI latency: ADD and DEL p50/p99 over N cycles for twill and for the reference chain (Debian's
// bridge + host-local, given the delegate config Flannel would build), in the same run, next to
// the floor: `deno run` of an empty file. Every process starts through `nsenter --net=<node>`, so
// each row pays the same entry cost. Wall time is what a runtime waits; CPU time (user+sys of the
// process tree, from bash's `times`) is what the plugin itself costs and is steadier on a loaded
// machine.
// Needs root; uses namespaces twc-bench-* and a temp dir.
//
//   deno run -A scripts/bench-cni.ts [--cycles 50]
import { parseArgs } from "node:util";
import { run } from "./lib/run.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { cycles: { type: "string", default: "50" } },
});
const CYCLES = Number(values.cycles);
const DENO = Deno.execPath();
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const NS = {
  twNode: "twc-bench-tn",
  twPod: "twc-bench-tp",
  refNode: "twc-bench-rn",
  refPod: "twc-bench-rp",
};

interface Sample {
  wall: number;
  cpu: number;
}

async function sample(
  argv: string[],
  env: Record<string, string> = {},
  stdin = "",
): Promise<Sample> {
  const t0 = performance.now();
  // bash runs the command, then `times` prints the children's user and system time on fd 3.
  const out = await run("bash", ["-c", '"$@"; rc=$?; times >&2; exit $rc', "bench", ...argv], {
    env,
    stdin,
  });
  const wall = performance.now() - t0;
  if (out.code !== 0) throw new Error(`${argv.join(" ")} failed: ${out.stdout}${out.stderr}`);
  // The last line of `times` is the children's: "0m0.012s 0m0.004s".
  const last = out.stderr.trim().split("\n").pop() ?? "";
  const secs = [...last.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  return { wall, cpu: (secs[0] + secs[1]) * 1000 };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Runs a setup command whose failure is expected or harmless (e.g. deleting a namespace). */
async function sh(...argv: string[]): Promise<void> {
  await run(argv[0], argv.slice(1));
}

const dir = await Deno.makeTempDir({ prefix: "twc-bench" });
try {
  for (const n of Object.values(NS)) {
    await sh("ip", "netns", "del", n);
    await sh("ip", "netns", "add", n);
  }
  await Deno.writeTextFile(`${dir}/empty.ts`, "");
  // The CNI face entered directly, without main.ts -> cmd/dispatch.ts: Deno walks every module
  // that dispatch.ts can dynamically import (agent, store, raft...) before running anything.
  const cniModule = new URL("../cmd/cni.ts", import.meta.url).href;
  await Deno.writeTextFile(
    `${dir}/cni_entry.ts`,
    `import { runCni } from "${cniModule}";\nDeno.exit(await runCni(Deno.env.toObject()));\n`,
  );
  await Deno.writeTextFile(
    `${dir}/subnet.env`,
    "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
  );
  const twConf = JSON.stringify({
    cniVersion: "0.3.1",
    name: "cbr0",
    type: "flannel",
    subnetFile: `${dir}/subnet.env`,
    dataDir: `${dir}/flannel`,
    ipam: { dataDir: `${dir}/ipam` },
    delegate: { hairpinMode: true, isDefaultGateway: true },
  });
  const refConf = JSON.stringify({
    cniVersion: "0.3.1",
    name: "cbr0",
    type: "bridge",
    hairpinMode: true,
    isDefaultGateway: true,
    ipMasq: false,
    mtu: 1450,
    isGateway: true,
    ipam: {
      type: "host-local",
      dataDir: `${dir}/ref-ipam`,
      ranges: [[{ subnet: "10.244.1.0/24" }]],
      routes: [{ dst: "10.244.0.0/16" }],
    },
  });
  const enter = (node: string) => ["nsenter", `--net=/var/run/netns/${node}`];
  const cni = (cmd: string, pod: string, id: string) => ({
    CNI_COMMAND: cmd,
    CNI_CONTAINERID: id,
    CNI_NETNS: `/var/run/netns/${pod}`,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/usr/lib/cni",
  });
  const twill = [DENO, "run", "-A", "--quiet", MAIN];
  const direct = [DENO, "run", "-A", "--quiet", `${dir}/cni_entry.ts`];
  const ref = ["/usr/lib/cni/bridge"];
  const floorArgv = [...enter(NS.twNode), DENO, "run", "-A", "--quiet", `${dir}/empty.ts`];
  const rows: [string, Sample[]][] = [
    ["floor: deno run empty.ts", []],
    ["twill ADD", []],
    ["twill DEL", []],
    ["twill ADD, direct entry", []],
    ["bridge+host-local ADD", []],
    ["bridge+host-local DEL", []],
  ];
  const [floor, twAdd, twDel, dirAdd, refAdd, refDel] = rows.map(([, xs]) => xs);
  // Warm-up: deno's module cache, the bridges.
  await sample(floorArgv);
  await sample([...enter(NS.twNode), ...twill], cni("ADD", NS.twPod, "warm"), twConf);
  await sample([...enter(NS.twNode), ...twill], cni("DEL", NS.twPod, "warm"), twConf);
  await sample([...enter(NS.refNode), ...ref], cni("ADD", NS.refPod, "warm"), refConf);
  await sample([...enter(NS.refNode), ...ref], cni("DEL", NS.refPod, "warm"), refConf);
  // Interleaved, so load changes on the machine hit every row alike.
  for (let i = 0; i < CYCLES; i++) {
    const id = `bench${i}`;
    floor.push(await sample(floorArgv));
    twAdd.push(
      await sample([...enter(NS.twNode), ...twill], cni("ADD", NS.twPod, id), twConf),
    );
    twDel.push(
      await sample([...enter(NS.twNode), ...twill], cni("DEL", NS.twPod, id), twConf),
    );
    dirAdd.push(
      await sample([...enter(NS.twNode), ...direct], cni("ADD", NS.twPod, `d${id}`), twConf),
    );
    await sample([...enter(NS.twNode), ...direct], cni("DEL", NS.twPod, `d${id}`), twConf);
    refAdd.push(
      await sample([...enter(NS.refNode), ...ref], cni("ADD", NS.refPod, id), refConf),
    );
    refDel.push(
      await sample([...enter(NS.refNode), ...ref], cni("DEL", NS.refPod, id), refConf),
    );
  }
  const wall = (xs: Sample[]) => xs.map((x) => x.wall);
  const cpu = (xs: Sample[]) => xs.map((x) => x.cpu);
  const f = (x: number) => x.toFixed(1).padStart(9);
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  console.log(`CNI latency, ${CYCLES} cycles, ms per plugin process (load average ${load})`);
  console.log(
    "".padEnd(26) +
      ["wall p50", "wall p99", "cpu p50", "cpu p99"].map((h) => h.padStart(9)).join(""),
  );
  for (const [name, xs] of rows) {
    const cells = [pct(wall(xs), 50), pct(wall(xs), 99), pct(cpu(xs), 50), pct(cpu(xs), 99)];
    console.log(name.padEnd(26) + cells.map(f).join(""));
  }
  const overWall = pct(wall(twAdd), 50) - pct(wall(floor), 50);
  const overCpu = pct(cpu(twAdd), 50) - pct(cpu(floor), 50);
  console.log(
    `twill ADD p50 above the floor: ${overWall.toFixed(1)} ms wall, ${overCpu.toFixed(1)} ms cpu ` +
      `(goal: within 10 ms)`,
  );
  const ratio = (a: number[], b: number[]) => (pct(a, 50) / pct(b, 50)).toFixed(2);
  console.log(
    `twill / reference p50: ADD ${ratio(wall(twAdd), wall(refAdd))}x wall, ` +
      `${ratio(cpu(twAdd), cpu(refAdd))}x cpu; DEL ${ratio(wall(twDel), wall(refDel))}x wall, ` +
      `${ratio(cpu(twDel), cpu(refDel))}x cpu`,
  );
} finally {
  for (const n of Object.values(NS)) await sh("ip", "netns", "del", n);
  await Deno.remove(dir, { recursive: true });
}
