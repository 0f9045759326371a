// Parity with the reference plugins: the same ADD through Debian's bridge + host-local (the
// delegate config Flannel's plugin would build) in one namespace pair and through twill in
// another must leave the same pod-side interface, addresses, routes and MTU, the same node-side
// bridge, and the same result JSON apart from interface names and MACs.
import assert from "node:assert/strict";
import {
  flannelConf,
  ipj,
  must,
  netnsAdd,
  netnsDel,
  ns,
  podEnv,
  REF_PLUGINS,
  runPlugin,
  runTwill,
  subnetEnvText,
} from "./support.ts";
import { requireTools } from "../support/tools.ts";
import { inNetns } from "../../scripts/lib/run.ts";

// deno-lint-ignore no-explicit-any
type J = any;

/** What Flannel's plugin hands to bridge for this subnet.env and network config. */
function delegateConf(dir: string, version: string, v6: boolean): Record<string, unknown> {
  const ranges = [[{ subnet: "10.244.1.0/24" }]];
  const routes = [{ dst: "10.244.0.0/16" }];
  if (v6) {
    ranges.push([{ subnet: "fd00:10:0:1::/64" }]);
    routes.push({ dst: "fd00:10::/56" });
  }
  return {
    cniVersion: version,
    name: "cbr0",
    type: "bridge",
    hairpinMode: true,
    isDefaultGateway: true,
    ipMasq: false,
    mtu: 1450,
    isGateway: true,
    ipam: { type: "host-local", dataDir: `${dir}/ref-ipam`, ranges, routes },
  };
}

function maskResult(r: J): J {
  const copy = structuredClone(r);
  for (const [i, itf] of copy.interfaces.entries()) {
    itf.mac = "<mac>";
    if (i === 1) itf.name = "<host-veth>";
    if (itf.sandbox) itf.sandbox = "<netns>";
  }
  return copy;
}

/** Pod-side state that must match: everything but MACs, indexes and link-local addresses. */
async function podState(ns: string): Promise<J> {
  const [eth0] = await ipj(ns, "addr", "show", "eth0");
  const routes = [...await ipj(ns, "route", "show"), ...await ipj(ns, "-6", "route", "show")]
    .filter((r: J) => !String(r.dst).startsWith("fe80"))
    .map((r: J) => ({
      dst: r.dst,
      gateway: r.gateway,
      dev: r.dev,
      scope: r.scope,
      protocol: r.protocol,
      flags: r.flags,
    }))
    .sort((a: J, b: J) => JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
  return {
    mtu: eth0.mtu,
    operstate: eth0.operstate,
    kind: eth0.linkinfo?.info_kind,
    addrs: eth0.addr_info.filter((a: J) => a.scope === "global")
      .map((a: J) => `${a.local}/${a.prefixlen}`).sort(),
    routes,
  };
}

async function nodeState(ns: string): Promise<J> {
  const [br] = await ipj(ns, "addr", "show", "cni0");
  const ports = (await ipj(ns, "link", "show")).filter((l: J) => l.master === "cni0");
  return {
    bridge: {
      mtu: br.mtu,
      operstate: br.operstate,
      addrs: br.addr_info.filter((a: J) => a.scope === "global").map((a: J) =>
        `${a.local}/${a.prefixlen}`
      ).sort(),
    },
    ports: ports.map((p: J) => ({
      mtu: p.mtu,
      kind: p.linkinfo.info_kind,
      hairpin: p.linkinfo.info_slave_data.hairpin,
      state: p.linkinfo.info_slave_data.state,
    })),
    forwarding: (await must(inNetns(ns, ["cat", "/proc/sys/net/ipv4/ip_forward"])))
      .trim(),
  };
}

for (const [version, v6] of [["0.3.1", false], ["1.0.0", false], ["1.0.0", true]] as const) {
  Deno.test(`parity with bridge + host-local: cniVersion ${version}${v6 ? ", dual stack" : ""}`, async () => {
    requireTools([`${REF_PLUGINS}/bridge`, `${REF_PLUGINS}/host-local`]);
    const tag = `${version.replaceAll(".", "")}${v6 ? "6" : ""}`;
    const refNode = ns(`r${tag}n`),
      refPod = ns(`r${tag}p`),
      twNode = ns(`t${tag}n`),
      twPod = ns(`t${tag}p`);
    const dir = await Deno.makeTempDir({ prefix: "twc-parity" });
    try {
      for (const n of [refNode, refPod, twNode, twPod]) await netnsAdd(n);
      await Deno.writeTextFile(
        `${dir}/subnet.env`,
        subnetEnvText(v6 ? { ipv6Network: "fd00:10::/56", ipv6Subnet: "fd00:10:0:1::1/64" } : {}),
      );
      const ref = await runPlugin(
        refNode,
        [`${REF_PLUGINS}/bridge`],
        "ADD",
        delegateConf(dir, version, v6),
        podEnv("parity", refPod),
      );
      assert.equal(ref.code, 0, ref.stdout + ref.stderr);
      const tw = await runTwill(
        twNode,
        "ADD",
        flannelConf(dir, { cniVersion: version }),
        podEnv("parity", twPod),
      );
      assert.equal(tw.code, 0, tw.stdout + tw.stderr);

      assert.deepEqual(maskResult(tw.json), maskResult(ref.json));
      const [tp, rp] = [await podState(twPod), await podState(refPod)];
      if (Deno.env.get("TWC_DEBUG")) console.log(JSON.stringify([tp, rp, tw.json, ref.json]));
      assert.deepEqual(tp, rp);
      assert.deepEqual(await nodeState(twNode), await nodeState(refNode));
      // The same on-disk reservations, byte for byte.
      for (const f of ["10.244.1.2", "last_reserved_ip.0"]) {
        assert.equal(
          await Deno.readTextFile(`${dir}/ipam/cbr0/${f}`),
          await Deno.readTextFile(`${dir}/ref-ipam/cbr0/${f}`),
          f,
        );
      }
    } finally {
      await netnsDel(refNode, refPod, twNode, twPod);
      await Deno.remove(dir, { recursive: true });
    }
  });
}
