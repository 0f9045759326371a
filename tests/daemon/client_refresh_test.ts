// A plain client outlives every member it knew at join: members A, B, C are replaced one by one
// (D, E, F join as learners; each of A, B, C is killed and replaced once --dead-voter-timeout
// passes). The client's store client follows the member table (lib/daemon/client_endpoints.ts),
// so it still reads and watches through D, E, F, and its peers.json names them for a restart.
import assert from "node:assert/strict";
import { join } from "node:path";
import { clusterTrust, type ProcessCluster, TOKEN, withCluster } from "../store/process_cluster.ts";
import { keepClientEndpoints } from "../../lib/daemon/client_endpoints.ts";
import { EtcdClient, EtcdClientError, text } from "../../lib/etcd/client.ts";
import { readPeers } from "../../lib/store/member/member.ts";
import type { Logger } from "../../lib/log.ts";

/** Watches /c/ from `from`, resuming after a broken stream, until `signal` aborts. */
async function watchAll(kv: EtcdClient, seen: Set<string>, signal: AbortSignal) {
  let from = 1;
  while (!signal.aborted) {
    try {
      for await (const r of kv.watch("/c/", { prefix: true, startRevision: from, signal })) {
        for (const e of r.events) {
          seen.add(text(e.kv.key));
          from = Number(e.kv.modRevision) + 1;
        }
      }
    } catch (e) {
      if (!(e instanceof EtcdClientError) || e.grpcCode !== 14) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function replace(c: ProcessCluster, old: number, by: number) {
  const seed = c.members[by === 3 ? 0 : 3];
  c.spawn(c.members[by], ["--join", seed.address, "--token", TOKEN]);
  await c.waitReady(c.members[by], 30_000);
  await c.kill(c.members[old]);
  const gone = c.members[old].address;
  await c.waitFor(
    async () => {
      const v = await c.membersView();
      return v !== undefined && !v.members.some((m) => m.address === gone) &&
        v.members.filter((m) => m.kind === "voter").length === 3;
    },
    30_000,
    `${gone} to be replaced`,
  );
}

Deno.test({
  name: "a plain client keeps reading and watching after all its members are replaced",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withCluster(
      { base: 110, size: 6, initial: 3, extraArgs: ["--dead-voter-timeout", "2s"] },
      async (c) => {
        await c.start(3);
        const dataDir = join(c.root, "client");
        await Deno.mkdir(dataDir);
        const first = c.members.slice(0, 3).map((m) => m.address);
        // The cluster's admin credential over TLS verified by its CA (a node credential may
        // touch only its own leases, and this test writes keys of its own).
        const { admin, caPem } = clusterTrust();
        const tls = { caCerts: [caPem] };
        const kv = new EtcdClient({ endpoints: first, token: admin, tls });
        const lines: string[] = [];
        const logger: Logger = (_l, event, f) => lines.push(`${event} ${JSON.stringify(f)}`);
        const stop = new AbortController();
        keepClientEndpoints({
          dataDir,
          endpoints: first,
          token: admin,
          tls,
          client: kv,
          logger,
          intervalMs: 300,
        }, stop.signal);
        const seen = new Set<string>();
        const watching = watchAll(kv, seen, stop.signal);
        try {
          await kv.put("/c/0", "v");
          // D joins through A, E and F through D: each is a learner until it replaces a voter.
          for (const [old, by] of [[0, 3], [1, 4], [2, 5]]) {
            await replace(c, old, by);
            await kv.range("/c/", { prefix: true }).catch(() => {});
            await kv.put(`/c/${by}`, "v").catch(() => {});
          }
          const last = ["/c/last", "v"] as const;
          await c.waitFor(
            () => kv.put(...last).then(() => true, () => false),
            10_000,
            "a write through the refreshed endpoints",
          );
          const r = await kv.range("/c/", { prefix: true });
          assert.ok(r.kvs.some((x) => text(x.key) === "/c/last"));
          await c.waitFor(() => seen.has("/c/last"), 10_000, "the watch to see /c/last");
          const now = () => [...kv.endpoints].map((u) => u.replace(/^https?:\/\//, "")).sort();
          const want = c.members.slice(3).map((m) => m.address).sort();
          await c.waitFor(
            () => JSON.stringify(now()) === JSON.stringify(want),
            5000,
            "the client's endpoints to be D, E, F",
          );
          // peers.json names the new members, so a restarted client starts from them.
          const kept = async () => (await readPeers(dataDir)).map((m) => m.address).sort();
          await c.waitFor(
            async () => JSON.stringify(await kept()) === JSON.stringify(want),
            5000,
            "peers.json to name D, E, F",
          );
          assert.ok(lines.some((l) => l.startsWith("store_endpoints_refreshed")));
        } finally {
          stop.abort();
          await watching.catch(() => {});
        }
      },
    );
  },
});
