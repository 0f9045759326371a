// The agent end to end on the ipsec backend (tests/e2e/backend_scenario.ts): 3 namespace nodes,
// real agents, each with its own charon. With and without UDPEncap: pods ping across all pairs
// and the underlay carries only IKE/ESP (in libipsec mode both end up inside UDP 4500), never a
// pod address in clear; a DF ping at the announced MTU passes; an agent restart reuses its charon
// and loses no ping for longer than 1 s; a node leaving takes its SAs off the others. Namespaces
// twipsec*, removed in finally. Run under flock /tmp/twill-kernel.lock.
import assert from "node:assert/strict";
import { kernelHasEsp } from "../../lib/net/vici/charon.ts";
import { ViciClient } from "../../lib/net/vici/client.ts";
import type { ViciSection } from "../../lib/net/vici/message.ts";
import {
  type BackendCluster,
  backendScenario,
  noPodAddressInClear,
  withCluster,
} from "./backend_scenario.ts";
import { inNs, sh, waitFor } from "./topology.ts";

const PSK = "twill-e2e-ipsec-psk-".repeat(6);

/** IKE (UDP 500/4500) and ESP, bare or inside UDP 4500: the only IPv4 non-TCP traffic allowed. */
function onlyIkeAndEsp(encapExpected: boolean) {
  const clear = noPodAddressInClear();
  return (lines: string[]): string | null => {
    const bad = clear(lines);
    if (bad) return bad;
    let esp = 0;
    for (const l of lines) {
      if (!/ IP /.test(l) || /Flags \[/.test(l)) continue; // not IPv4, or the store's TCP
      if (/\.4500 > [\d.]+\.4500: UDP-encap: ESP/.test(l)) esp++;
      else if (/ ESP\(spi=/.test(l)) {
        if (encapExpected) return `bare ESP although UDP encapsulation is in effect: ${l}`;
        esp++;
      } else if (!/\.(500|4500) > [\d.]+\.(500|4500): /.test(l)) {
        return `neither IKE nor ESP on the underlay: ${l}`;
      }
    }
    return esp > 0 ? null : "no ESP packet seen while pods pinged";
  };
}

async function sasOn(c: BackendCluster, n: number): Promise<string[]> {
  const v = await ViciClient.connect(`${c.dataDir(n)}/run/charon.vici`, 10_000);
  try {
    return (await v.listSas()).flatMap((ev) =>
      Object.entries(ev).filter(([, sa]) => (sa as ViciSection).state === "ESTABLISHED")
        .map(([name]) => name)
    );
  } finally {
    v.close();
  }
}

/** Pings pod a → pod b at 10/s while fn runs; the longest run of lost replies, in packets. */
async function longestLoss(c: BackendCluster, a: number, b: number, fn: () => Promise<void>) {
  const child = new Deno.Command("ip", {
    args: inNs(c.topo.pod(a), ["ping", "-i", "0.1", "-W", "1", c.podIp.get(b)!]).slice(1),
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const out = new Response(child.stdout).text();
  await new Promise((r) => setTimeout(r, 500));
  await fn();
  await new Promise((r) => setTimeout(r, 2000));
  child.kill("SIGINT");
  await child.status;
  const text = await out;
  const got = [...text.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
  const sent = Number(/(\d+) packets transmitted/.exec(text)?.[1] ?? 0);
  const have = new Set(got);
  let run = 0, worst = 0;
  for (let i = 1; i <= sent; i++) {
    run = have.has(i) ? 0 : run + 1;
    worst = Math.max(worst, run);
  }
  return { sent, worst };
}

async function ipsecScenario(t: Deno.TestContext, udpEncap: boolean): Promise<void> {
  const libipsec = !(await kernelHasEsp()).esp;
  const encap = udpEncap || libipsec;
  const underlay = 1500;
  const expectMtu = libipsec ? 1400 : underlay - 77 - (encap ? 8 : 0);
  const backend: Record<string, unknown> = { Type: "ipsec", PSK };
  if (udpEncap) backend.UDPEncap = true;
  await backendScenario(t, {
    prefix: udpEncap ? "twipsecu" : "twipsec",
    backend,
    expectMtu,
    checkLease: (value) => {
      assert.equal(value.BackendType, "ipsec");
      assert.equal("BackendData" in value, false, "Flannel's ipsec lease has no BackendData");
      return Promise.resolve();
    },
    checkCapture: onlyIkeAndEsp(encap),
  }, async (c) => {
    await t.step("the agents log the mode, UDP encapsulation and the MTU's limit", () => {
      const log = c.agents.get(1)!.log();
      assert.match(log, new RegExp(`event=ipsec_mode mode=${libipsec ? "libipsec" : "kernel"}`));
      if (encap) assert.match(log, /event=ipsec_udp_encap /);
      if (libipsec) assert.match(log, /event=ipsec_mtu_capped mtu=1400 /);
      assert.ok(!log.includes(PSK), "the PSK is never logged");
    });
    await t.step("one IKE_SA per peer on every node", async () => {
      for (let n = 1; n <= c.n; n++) {
        await waitFor(`two SAs on node ${n}`, async () => (await sasOn(c, n)).length === 2, 20_000);
      }
    });
    await t.step(
      "an agent restart reuses charon and loses no ping for longer than 1 s",
      async () => {
        const r = await longestLoss(c, 1, 2, () => c.restart(2));
        assert.ok(r.sent > 20, `sent ${r.sent}`);
        assert.ok(r.worst <= 10, `${r.worst} pings in a row lost (at 10/s)`);
        assert.match(c.agents.get(2)!.log(), /event=ipsec_mode .*charon=reused/);
        await c.pingAllPairs();
      },
    );
    await t.step("a node leaving takes its SAs off the others", async () => {
      await c.removeNode(3);
      for (const n of [1, 2]) {
        await waitFor(
          `node ${n} without an SA to node 3`,
          async () => !(await sasOn(c, n)).some((name) => name.endsWith("-10.99.0.3")),
          20_000,
        );
        assert.equal((await sasOn(c, n)).length, 1, `node ${n} keeps its SA to the other`);
      }
      await c.pingAllPairs(15_000, [1, 2]);
    });
  });
}

Deno.test("ipsec e2e: Flannel's defaults (UDPEncap false)", (t) => ipsecScenario(t, false));
Deno.test("ipsec e2e: UDPEncap true", (t) => ipsecScenario(t, true));

/** The agent's lines from the twill process itself (its own log lines and its exit line). */
function exitLines(log: string): string[] {
  return log.split("\n").filter((l) => l.startsWith("twill agent: "));
}

async function refusedAtStart(
  prefix: string,
  backend: Record<string, unknown>,
  expect: RegExp,
): Promise<void> {
  await withCluster({ prefix, backend, nodes: 1 }, async (c) => {
    const r = await c.startExpectingExit(1);
    assert.notEqual(r.code, 0);
    const lines = exitLines(r.log);
    assert.equal(lines.length, 1, r.log);
    assert.match(lines[0], expect);
    const pids = (await sh(["ip", "netns", "pids", c.topo.node(1)], { allowFail: true })).out;
    assert.equal(pids.trim(), "", "no charon (nor anything else) left running in the node");
    const pidFile = await Deno.readTextFile(`${c.dataDir(1)}/run/charon.pid`).catch(() => "");
    assert.equal(pidFile, "", "charon removed its pid file as it stopped");
  });
}

Deno.test("ipsec e2e: a short PSK is Flannel's one line and a non-zero exit", async () => {
  await refusedAtStart(
    "twipsecb",
    { Type: "ipsec", PSK: "short" },
    /^twill agent: .*config error, password is too short$/,
  );
});

Deno.test("ipsec e2e: charon refusing the ESP proposal at start stops it and exits", async () => {
  await refusedAtStart(
    "twipsecv",
    { Type: "ipsec", PSK, ESPProposal: "aes999-sha256" },
    /^twill agent: ipsec: charon refused load-conn: .*charon\.log\)$/,
  );
});
