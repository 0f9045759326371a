// The agent's rtnetlink batch against ip(8)/bridge(8): the same plan lines, applied one way in
// one namespace and the other way in another, must leave identical routes, neighbours and FDB
// entries; refused lines are reported one by one while the rest apply. Namespaces twa-rb<tag>-*
// are created here and removed by exact name.
import assert from "node:assert/strict";
import { type Plan, planDataPlane, planLines } from "../../lib/backend/dataplane.ts";
import { eventLines } from "../../lib/backend/dataplane.ts";
import { vxlanDesired } from "../../lib/backend/vxlan.ts";
import { RtnlBatcher, type RtnlReader } from "../../lib/backend/rtnl_batch.ts";
import { parseCIDR } from "../../lib/net/cidr.ts";
import { Netns } from "../../lib/net/netns.ts";
import type { Lease } from "../../lib/subnet/lease.ts";
import { splitPeerEvents } from "../../lib/subnet/watcher.ts";
import { sh } from "../e2e/topology.ts";
import { requireTools } from "../support/tools.ts";

const TAG = crypto.getRandomValues(new Uint32Array(1))[0].toString(36).slice(0, 4);
const NS_RTNL = `twa-rb${TAG}-nl`;
const NS_IP = `twa-rb${TAG}-ip`;

function peer(n: number, mac = n): Lease {
  const hex = (x: number) => x.toString(16).padStart(2, "0");
  return {
    subnet: parseCIDR(`10.${60 + (n >> 8)}.${n & 255}.0/24`),
    ipv6Subnet: null,
    attrs: {
      publicIP: `192.0.${2 + (n >> 8)}.${n & 255}`,
      publicIPv6: null,
      backendType: "vxlan",
      backendData: { VNI: 1, VtepMAC: `02:00:00:00:${hex(mac >> 8)}:${hex(mac & 255)}` },
    },
    modRevision: 1n,
    storeLease: 0n,
    expiresAt: null,
  };
}

async function makeNs(ns: string) {
  requireTools(["ip", "bridge"]);
  await sh(["ip", "netns", "add", ns]);
  const ip = (...a: string[]) => sh(["ip", "-n", ns, ...a]);
  await ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1");
  await ip("addr", "add", "10.98.0.1/24", "dev", "eth0");
  await ip("link", "set", "eth0", "up");
  await ip("link", "set", "eth1", "up");
  await ip(
    ..."link add flannel.1 address 02:cc:00:00:00:01 type vxlan id 1 local 10.98.0.1 dev eth0 dstport 8472 nolearning"
      .split(" "),
  );
  await ip("link", "set", "flannel.1", "up");
}

/** What the kernel holds, without per-namespace details (ifindex), sorted. */
async function kernelState(ns: string): Promise<string[]> {
  const j = async (args: string[]) => JSON.parse((await sh(args)).out || "[]") as object[];
  const routes = [
    ...await j(["ip", "-n", ns, "-j", "route", "show", "dev", "flannel.1"]),
    ...await j(["ip", "-n", ns, "-j", "-6", "route", "show", "dev", "flannel.1"]),
    ...await j(["ip", "-n", ns, "-j", "route", "show", "dev", "eth0"]),
  ];
  const neighs = [
    ...await j(["ip", "-n", ns, "-j", "neigh", "show", "dev", "flannel.1"]),
    ...await j([
      "ip",
      "-n",
      ns,
      "-j",
      "-6",
      "neigh",
      "show",
      "dev",
      "flannel.1",
      "nud",
      "permanent",
    ]),
  ];
  const fdbs = await j([
    "ip",
    "netns",
    "exec",
    ns,
    "bridge",
    "-j",
    "fdb",
    "show",
    "dev",
    "flannel.1",
  ]);
  return [
    ...routes.map((r) => "route " + JSON.stringify(r)),
    ...neighs.map((n) => "neigh " + JSON.stringify(n)),
    ...fdbs.map((f) => "fdb " + JSON.stringify(f)),
  ].sort();
}

/** The reference: ip -batch and bridge -batch in order (deletions/neighbours, FDB, routes). */
async function applyWithIp(ns: string, plan: Plan): Promise<string> {
  const errs: string[] = [];
  const run = async (args: string[], lines: string[]) => {
    if (!lines.length) return;
    const r = await sh(args, { stdin: lines.join("\n") + "\n", allowFail: true });
    if (r.err.trim()) errs.push(r.err.trim());
  };
  await run(["ip", "-n", ns, "-force", "-batch", "-"], plan.ipFirst);
  await run(["ip", "netns", "exec", ns, "bridge", "-force", "-batch", "-"], plan.bridge);
  await run(["ip", "-n", ns, "-force", "-batch", "-"], plan.ipLast);
  return errs.join("\n");
}

/** The reader's view and ip/bridge -j's, in the same normal form. */
async function readBoth(ns: string, r: RtnlReader): Promise<[string[], string[]]> {
  const j = async (args: string[]) =>
    JSON.parse((await sh(["ip", "netns", "exec", ns, ...args])).out || "[]") as {
      dst?: string;
      gateway?: string;
      flags?: string[];
      lladdr?: string;
      state?: string[];
      mac?: string;
    }[];
  const route = (x: { dst?: string; gateway?: string; flags?: string[] }, dev: string) =>
    `route ${x.dst} via ${x.gateway ?? "-"} dev ${dev}${
      (x.flags ?? []).includes("onlink") ? " onlink" : ""
    }`;
  const neigh = (x: { dst?: string; lladdr?: string; state?: string[] }) =>
    `neigh ${x.dst} ${x.lladdr ?? "-"} ${(x.state ?? []).includes("PERMANENT")}`;
  const fdb = (x: { mac?: string; dst?: string }) => `fdb ${x.mac} ${x.dst ?? "-"}`;
  const mine: string[] = [];
  const theirs: string[] = [];
  for (const [fam, dev] of [[4, "flannel.1"], [6, "flannel.1"], [4, "eth0"]] as const) {
    mine.push(...r.routes(fam, dev)!.map((x) => route(x, dev)));
    theirs.push(
      ...(await j(["ip", `-${fam}`, "-j", "route", "show", "dev", dev])).map((x) => route(x, dev)),
    );
  }
  for (const fam of [4, 6] as const) {
    mine.push(...r.neighs(fam, "flannel.1")!.map(neigh));
    theirs.push(
      ...(await j(["ip", `-${fam}`, "-j", "neigh", "show", "dev", "flannel.1"])).map(neigh),
    );
  }
  mine.push(...r.fdbs("flannel.1")!.map(fdb));
  theirs.push(...(await j(["bridge", "-j", "fdb", "show", "dev", "flannel.1"])).map(fdb));
  assert.equal(r.routes(4, "nosuchdev"), null);
  return [mine.sort(), theirs.sort()];
}

function applyWithRtnl(b: RtnlBatcher, plan: Plan): string | null {
  return b.apply([...plan.ipFirst, ...plan.bridge, ...plan.ipLast]);
}

Deno.test("rtnetlink batch leaves exactly what ip/bridge -batch leave, reads back what ip -j reads, and reports refused lines", async () => {
  let ns: Netns | null = null;
  let b: RtnlBatcher | null = null;
  try {
    await makeNs(NS_RTNL);
    await makeNs(NS_IP);
    ns = Netns.open(`/var/run/netns/${NS_RTNL}`);
    b = ns.run(() => RtnlBatcher.open());
    assert.ok(b, "the batcher opens (FFI allowed)");

    // 1. 300 peers from nothing, plus a DirectRouting-style route and an IPv6 overlay peer
    const peers = Array.from({ length: 300 }, (_, i) => peer(i + 1));
    const first = planDataPlane(vxlanDesired(peers, "flannel.1", "10.98.0.1", null), {
      routes: [],
      neighs: [],
      fdbs: [],
    });
    first.ipLast.push(
      "route replace 10.97.5.0/24 via 10.98.0.5 dev eth0",
      "neigh replace fd70:0:0:2:: lladdr 02:00:00:00:06:02 dev flannel.1 nud permanent",
      "route replace fd70:0:0:2::/64 via fd70:0:0:2:: dev flannel.1 onlink",
    );
    assert.equal(applyWithRtnl(b, first), "");
    assert.equal(await applyWithIp(NS_IP, first), "");
    const after1 = await kernelState(NS_RTNL);
    assert.equal(
      after1.filter((l) => l.startsWith("route") && l.includes('"gateway"')).length,
      302,
    );
    assert.equal(after1.filter((l) => l.startsWith("fdb") && l.includes('"dst"')).length, 300);
    assert.deepEqual(after1, await kernelState(NS_IP));
    // reading back over rtnetlink sees what ip/bridge -j see
    const [mine1, theirs1] = await readBoth(NS_RTNL, b.reader());
    assert.ok(mine1.length > 900, `${mine1.length} entries read back`);
    assert.deepEqual(mine1, theirs1);

    // 2. events: 100 peers go, 50 change their VTEP MAC, 20 new ones; the IPv6 peer goes
    const events = [
      ...peers.slice(0, 100).map((l) => ({ type: "removed" as const, lease: l })),
      ...peers.slice(100, 150).map((l, i) => ({
        type: "added" as const,
        lease: peer(101 + i, 4000 + i),
        previous: l,
      })),
      ...Array.from({ length: 20 }, (_, i) => ({ type: "added" as const, lease: peer(400 + i) })),
    ];
    const s = splitPeerEvents(events);
    const d = (ls: Lease[]) => vxlanDesired(ls, "flannel.1", "10.98.0.1", null);
    const second = eventLines(d(s.add), d(s.remove), d(s.replaced));
    second.ipFirst.push(
      "route del fd70:0:0:2::/64 via fd70:0:0:2:: dev flannel.1",
      "neigh del fd70:0:0:2:: dev flannel.1",
      "route del 10.97.5.0/24 via 10.98.0.5 dev eth0",
    );
    assert.equal(applyWithRtnl(b, second), "");
    assert.equal(await applyWithIp(NS_IP, second), "");
    const after2 = await kernelState(NS_RTNL);
    assert.equal(
      after2.filter((l) => l.startsWith("route") && l.includes('"gateway"')).length,
      220,
    );
    assert.ok(after2.some((l) => l.includes("02:00:00:00:0f:a0")), "a changed MAC is in the FDB");
    assert.deepEqual(after2, await kernelState(NS_IP));
    const [mine2, theirs2] = await readBoth(NS_RTNL, b.reader());
    assert.deepEqual(mine2, theirs2);

    // 3. refused lines are named, one each, and the lines around them still apply
    const bad = {
      ...planLines(second),
      ipFirst: ["route del 10.61.250.0/24 via 10.61.250.0 dev flannel.1"], // not there
      bridge: [],
      ipLast: [
        "neigh replace 10.62.1.0 lladdr 02:00:00:00:09:01 dev flannel.1 nud permanent",
        "route replace 10.62.1.0/24 via 10.62.1.0 dev nosuchdev onlink",
        "route replace 10.62.1.0/24 via 10.62.1.0 dev flannel.1 onlink",
      ],
      added: 0,
      removed: 0,
    };
    const errs = applyWithRtnl(b, bad)!.split("\n");
    assert.equal(errs.length, 2, errs.join("\n"));
    assert.match(errs[0], /^route del 10\.61\.250\.0\/24 .*: No such process/);
    assert.match(errs[1], /dev nosuchdev onlink: Cannot find device "nosuchdev"/);
    const routes = (await sh(["ip", "-n", NS_RTNL, "route", "show", "10.62.1.0/24"])).out;
    assert.match(routes, /10\.62\.1\.0\/24 via 10\.62\.1\.0 dev flannel\.1 onlink/);

    // 4. a line outside the subset: nothing applied, the caller falls back to ip(8)
    assert.equal(b.apply(["route replace 10.63.0.0/24 dev flannel.1 metric 5"]), null);
  } finally {
    b?.close();
    ns?.close();
    await sh(["ip", "netns", "del", NS_RTNL], { allowFail: true });
    await sh(["ip", "netns", "del", NS_IP], { allowFail: true });
  }
});
