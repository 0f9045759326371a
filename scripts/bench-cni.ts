// CNI latency: ADD and DEL p50/p99 over N cycles for twill and for the reference chain (Debian's
// bridge + host-local, given the delegate config Flannel would build), in the same run, next to
// the floor: `deno run` of an empty file. Every process starts through `nsenter --net=<node>`, so
// each row pays the same entry cost. Needs root; uses namespaces twc-bench-* and a temp dir.
//
//   deno run -A scripts/bench-cni.ts [--cycles 50]
import { parseArgs } from "node:util";

const { values } = parseArgs({ args: Deno.args, options: { cycles: { type: "string", default: "50" } } });
const CYCLES = Number(values.cycles);
const DENO = Deno.execPath();
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const NS = { twNode: "twc-bench-tn", twPod: "twc-bench-tp", refNode: "twc-bench-rn", refPod: "twc-bench-rp" };

async function run(argv: string[], env: Record<string, string> = {}, stdin = ""): Promise<number> {
  const t0 = performance.now();
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin));
  await w.close();
  const out = await child.output();
  const ms = performance.now() - t0;
  if (!out.success) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stdout)}${new TextDecoder().decode(out.stderr)}`);
  }
  return ms;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

async function sh(...argv: string[]): Promise<void> {
  await new Deno.Command(argv[0], { args: argv.slice(1), stdout: "null", stderr: "null" }).output();
}

const dir = await Deno.makeTempDir({ prefix: "twc-bench" });
try {
  for (const n of Object.values(NS)) {
    await sh("ip", "netns", "del", n);
    await sh("ip", "netns", "add", n);
  }
  await Deno.writeTextFile(`${dir}/empty.ts`, "");
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
  const ref = ["/usr/lib/cni/bridge"];
  const floor: number[] = [], twAdd: number[] = [], twDel: number[] = [], refAdd: number[] = [], refDel: number[] = [];
  // Warm-up: deno's module cache, the bridges.
  await run([...enter(NS.twNode), DENO, "run", "-A", `${dir}/empty.ts`]);
  await run([...enter(NS.twNode), ...twill], cni("ADD", NS.twPod, "warm"), twConf);
  await run([...enter(NS.twNode), ...twill], cni("DEL", NS.twPod, "warm"), twConf);
  await run([...enter(NS.refNode), ...ref], cni("ADD", NS.refPod, "warm"), refConf);
  await run([...enter(NS.refNode), ...ref], cni("DEL", NS.refPod, "warm"), refConf);
  for (let i = 0; i < CYCLES; i++) {
    const id = `bench${i}`;
    floor.push(await run([...enter(NS.twNode), DENO, "run", "-A", "--quiet", `${dir}/empty.ts`]));
    twAdd.push(await run([...enter(NS.twNode), ...twill], cni("ADD", NS.twPod, id), twConf));
    twDel.push(await run([...enter(NS.twNode), ...twill], cni("DEL", NS.twPod, id), twConf));
    refAdd.push(await run([...enter(NS.refNode), ...ref], cni("ADD", NS.refPod, id), refConf));
    refDel.push(await run([...enter(NS.refNode), ...ref], cni("DEL", NS.refPod, id), refConf));
  }
  const rows: [string, number[]][] = [
    ["floor: deno run empty.ts", floor],
    ["twill ADD", twAdd],
    ["twill DEL", twDel],
    ["bridge+host-local ADD", refAdd],
    ["bridge+host-local DEL", refDel],
  ];
  const f = (x: number) => x.toFixed(1).padStart(8);
  console.log(`CNI latency, ${CYCLES} cycles, wall time per plugin process (ms)`);
  console.log(`${"".padEnd(28)}${"p50".padStart(8)}${"p99".padStart(8)}${"mean".padStart(8)}`);
  for (const [name, xs] of rows) {
    console.log(`${name.padEnd(28)}${f(pct(xs, 50))}${f(pct(xs, 99))}${f(xs.reduce((a, b) => a + b, 0) / xs.length)}`);
  }
  const over = pct(twAdd, 50) - pct(floor, 50);
  console.log(`twill ADD p50 - floor p50 = ${over.toFixed(1)} ms (goal: within 10 ms)`);
  console.log(`twill / reference ADD p50 = ${(pct(twAdd, 50) / pct(refAdd, 50)).toFixed(2)}x, DEL p50 = ${(pct(twDel, 50) / pct(refDel, 50)).toFixed(2)}x`);
} finally {
  for (const n of Object.values(NS)) await sh("ip", "netns", "del", n);
  await Deno.remove(dir, { recursive: true });
}
