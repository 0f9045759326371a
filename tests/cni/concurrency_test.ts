// 50 ADDs at once, as kubelet does when a node comes up full of pods, then 50 DELs at once:
// every pod gets its own address, none is lost, and nothing is left behind.
import assert from "node:assert/strict";
import {
  flannelConf,
  ipj,
  listDir,
  netnsAdd,
  netnsDel,
  ns,
  podEnv,
  runTwill,
  subnetEnvText,
} from "./support.ts";

const N = 50;

Deno.test(`${N} parallel ADDs get ${N} distinct addresses; ${N} parallel DELs leave nothing`, async () => {
  const node = ns("cn");
  const pods = Array.from({ length: N }, (_, i) => ns(`c${i}`));
  const dir = await Deno.makeTempDir({ prefix: "twc-conc" });
  try {
    await netnsAdd(node);
    await Promise.all(pods.map((p) => netnsAdd(p)));
    await Deno.writeTextFile(`${dir}/subnet.env`, subnetEnvText());
    const conf = flannelConf(dir);
    const adds = await Promise.all(
      pods.map((p, i) => runTwill(node, "ADD", conf, podEnv(`c${i}`, p))),
    );
    for (const [i, r] of adds.entries()) {
      assert.equal(r.code, 0, `ADD ${i}: ${r.stdout}${r.stderr}`);
    }
    const addrs = adds.map((r) => r.json.ips[0].address as string);
    assert.equal(new Set(addrs).size, N, "addresses are distinct");
    // Exactly .2 .. .51: no address skipped or lost.
    const hosts = addrs.map((a) => Number(a.split("/")[0].split(".")[3])).sort((a, b) => a - b);
    assert.deepEqual(hosts, Array.from({ length: N }, (_, i) => i + 2));
    const files = (await listDir(`${dir}/ipam/cbr0`)).filter((f) => f.startsWith("10."));
    assert.equal(files.length, N);
    for (const [i, r] of adds.entries()) {
      const text = await Deno.readTextFile(
        `${dir}/ipam/cbr0/${r.json.ips[0].address.split("/")[0]}`,
      );
      assert.equal(text, `c${i}\r\neth0`);
    }
    // Each pod really has its address; the bridge has one port per pod.
    const [sample] = await ipj(pods[17], "addr", "show", "eth0");
    assert.equal(
      `${sample.addr_info.find((a: { family: string }) => a.family === "inet").local}/24`,
      addrs[17],
    );
    const ports = (await ipj(node, "link", "show")).filter((l: { master?: string }) =>
      l.master === "cni0"
    );
    assert.equal(ports.length, N);

    const dels = await Promise.all(
      pods.map((p, i) => runTwill(node, "DEL", conf, podEnv(`c${i}`, p))),
    );
    for (const [i, r] of dels.entries()) {
      assert.equal(r.code, 0, `DEL ${i}: ${r.stdout}${r.stderr}`);
    }
    assert.deepEqual(await listDir(`${dir}/ipam/cbr0`), ["last_reserved_ip.0", "lock"]);
    assert.deepEqual(await listDir(`${dir}/flannel`), []);
    const left = (await ipj(node, "link", "show")).filter((l: { master?: string }) =>
      l.master === "cni0"
    );
    assert.equal(left.length, 0, "no leftover bridge ports");
  } finally {
    await netnsDel(node, ...pods);
    await Deno.remove(dir, { recursive: true });
  }
});
