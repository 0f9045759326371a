// `twill ctl check` on a wireguard node (namespaces twcw*): 3 nodes with real agents and
// wireguard-go; on node 1 check is ok (device, route, probes through the tunnel, every peer read
// over UAPI). Then node 1's agent is stopped (its wireguard-go stays, as across a restart; nobody
// re-adds what the test removes), node 3's peer is removed through UAPI, and check must print
// exactly the missing-peer line and exit 1, the store reached through node 2.
// Run under flock /tmp/twill-kernel.lock.
import assert from "node:assert/strict";
import { keyFromBase64, keyToBase64, publicKeyOf } from "../../lib/net/wireguard/keys.ts";
import { UapiClient } from "../../lib/net/wireguard/uapi.ts";
import { uapiSocketPath } from "../../lib/net/wireguard/userspace.ts";
import { requireTools } from "../support/tools.ts";
import { type BackendCluster, withCluster } from "./backend_scenario.ts";
import { inNs, sh, waitFor } from "./topology.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

async function publicKeyOfNode(c: BackendCluster, n: number): Promise<string> {
  const priv = keyFromBase64(await Deno.readTextFile(`${c.dataDir(n)}/wireguard-key`));
  return keyToBase64(await publicKeyOf(priv));
}

async function ctlCheck(c: BackendCluster, server?: string) {
  const r = await sh(
    inNs(c.topo.node(1), [
      Deno.execPath(),
      "run",
      "-A",
      "--no-check",
      "--config",
      CONFIG,
      MAIN,
      "ctl",
      "--data-dir",
      c.dataDir(1),
      ...(server ? ["--server", server] : []),
      "check",
      `${c.dir}/n1/subnet.env`,
    ]),
    { allowFail: true },
  );
  if (r.code > 1) throw new Error(`ctl check failed (${r.code}): ${r.out}`);
  return { code: r.code, lines: r.out.trim().split("\n") };
}

Deno.test({
  name:
    "e2e ctl check wireguard: ok on a healthy node, exactly the missing-peer line when one goes",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    requireTools(["wireguard-go"]);
    await withCluster({ prefix: "twcw", backend: { Type: "wireguard" } }, async (c) => {
      await c.startAll();
      const wg = new UapiClient(uapiSocketPath(c.dataDir(1), "flannel-wg"));
      await waitFor("node 1 has both peers", async () => (await wg.get()).peers.length === 2);
      const ok = await ctlCheck(c);
      assert.equal(ok.code, 0, ok.lines.join("\n"));
      assert.match(ok.lines[0], /^ok: flannel-wg 10\.50\.\d+\.0\/32 MTU 1420, /);
      assert.match(ok.lines[0], /WireGuard peers of flannel-wg: 2 wanted, read from /);

      await c.agents.get(1)!.stop();
      const k3 = await publicKeyOfNode(c, 3);
      await wg.removePeer(keyFromBase64(k3));
      const bad = await ctlCheck(c, `${c.topo.nodeIp(2)}:8473`);
      assert.equal(bad.code, 1, bad.lines.join("\n"));
      assert.equal(bad.lines.length, 1, bad.lines.join("\n"));
      const ip3 = c.topo.nodeIp(3).replaceAll(".", "\\.");
      assert.match(
        bad.lines[0],
        new RegExp(
          `^wireguard: flannel-wg lacks peer 10\\.50\\.\\d+\\.0/24 \\(${ip3}, key ` +
            `${k3.replace(/[+/]/g, "\\$&")}\\); fix: wg set flannel-wg peer `,
        ),
      );
    });
  },
});
