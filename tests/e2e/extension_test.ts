// The extension backend end to end (namespaces twbx*): the four commands run without a shell
// with Flannel's variables and stdin, observed through the files a hook script writes (keyed by
// the namespace it ran in). PreStartupCommand's stdout becomes BackendData; a failing
// SubnetAddCommand is logged with its stderr and retried on a later reconcile; a leaving node's
// lease runs SubnetRemoveCommand everywhere. Run under flock /tmp/twill-kernel.lock.
import assert from "node:assert/strict";
import { backendScenario } from "./backend_scenario.ts";
import { waitFor } from "./topology.ts";

// $1 = the verb; a file named `fail` in the output directory makes it fail with "boom".
const HOOK = (out: string) =>
  `#!/bin/sh
ns=$(ip netns identify $$)
if [ "$1" = pre ]; then echo "data-$2"; exit 0; fi
if [ -e "${out}/fail" ] && [ "$1" = add ]; then echo boom >&2; exit 3; fi
stdin=$(cat)
echo "$1 arg2=$2 NETWORK=$NETWORK SUBNET=$SUBNET IPV6SUBNET=$IPV6SUBNET PUBLIC_IP=$PUBLIC_IP PUBLIC_IPV6=$PUBLIC_IPV6 stdin=$stdin" >> "${out}/$ns.log"
`;

Deno.test({
  name: "e2e extension: commands with Flannel's env and stdin, retries, removal",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const hookDir = await Deno.makeTempDir({ prefix: "twbx-hook-" });
    const out = `${hookDir}/out`;
    Deno.env.set("TWBX_MARK", "mark1");
    try {
      await Deno.mkdir(out);
      await Deno.writeTextFile(`${hookDir}/hook`, HOOK(out), { mode: 0o755 });
      await Deno.writeTextFile(`${out}/fail`, "");
      const hook = `${hookDir}/hook`;
      await backendScenario(t, {
        prefix: "twbx",
        backend: {
          Type: "extension",
          PreStartupCommand: `${hook} pre $TWBX_MARK`,
          PostStartupCommand: `${hook} post`,
          SubnetAddCommand: `${hook}   add \${SUBNET}`,
          SubnetRemoveCommand: `${hook} remove $SUBNET`,
        },
        expectMtu: 1500,
        pings: false,
        checkLease: (v) => {
          assert.equal(v.BackendType, "extension");
          assert.equal(v.BackendData, "data-mark1", "PreStartupCommand's stdout");
          return Promise.resolve();
        },
      }, async (c) => {
        // the hook writes into `out`, not the cluster's dir
        const read = async (n: number) =>
          (await Deno.readTextFile(`${out}/${c.topo.node(n)}.log`).catch(() => "")).split("\n")
            .filter((l) => l);
        await t.step("PostStartupCommand ran once with the node's lease", async () => {
          for (let n = 1; n <= c.n; n++) {
            const post = (await read(n)).filter((l) => l.startsWith("post "));
            assert.deepEqual(post, [
              `post arg2= NETWORK=10.50.0.0/16 SUBNET=${c.subnet(n)} IPV6SUBNET= ` +
              `PUBLIC_IP=${c.topo.nodeIp(n)} PUBLIC_IPV6= stdin=`,
            ]);
          }
        });
        await t.step("a failing SubnetAddCommand is logged with stderr, then retried", async () => {
          await waitFor(
            "a logged failure",
            () =>
              Promise.resolve(
                /extension_command_failed .*stderr=boom/.test(c.agents.get(1)!.log()),
              ),
          );
          await Deno.remove(`${out}/fail`);
          for (let n = 1; n <= c.n; n++) {
            await waitFor(
              `node ${n} ran add for both peers`,
              async () => (await read(n)).filter((l) => l.startsWith("add ")).length === 2,
              15_000,
            );
            for (const m of [1, 2, 3].filter((m) => m !== n)) {
              const want = `add arg2=${c.subnet(m)} NETWORK= SUBNET=${c.subnet(m)} IPV6SUBNET= ` +
                `PUBLIC_IP=${c.topo.nodeIp(m)} PUBLIC_IPV6= stdin=data-mark1`;
              assert.ok((await read(n)).includes(want), `node ${n}: ${want}`);
            }
          }
          assert.equal(c.agents.get(1)!.child.pid > 0, true);
        });
        await t.step("a leaving node runs SubnetRemoveCommand on the others", async () => {
          const sub3 = c.subnet(3);
          await c.removeNode(3);
          for (const n of [1, 2]) {
            const want = `remove arg2=${sub3} NETWORK= SUBNET=${sub3} IPV6SUBNET= ` +
              `PUBLIC_IP=${c.topo.nodeIp(3)} PUBLIC_IPV6= stdin=data-mark1`;
            await waitFor(`node ${n}: ${want}`, async () => (await read(n)).includes(want), 10_000);
          }
        });
      });
    } finally {
      Deno.env.delete("TWBX_MARK");
      await Deno.remove(hookDir, { recursive: true }).catch(() => {});
    }
  },
});
