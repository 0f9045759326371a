// A plain client outlives every member it knew at join: it starts with members A, B, C, and
// they are replaced one by one (D, E, F join as learners; each of A, B, C is killed and replaced
// once --dead-voter-timeout passes). The client, with a node credential as an agent has, keeps
// its store client on the member table (lib/daemon/client_endpoints.ts), so it still creates,
// reads and watches subnet leases through D, E, F, and its peers.json names them for a restart.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  clusterTrust,
  post,
  type ProcessCluster,
  TOKEN,
  withCluster,
} from "../store/process_cluster.ts";
import { membersView, statusOf } from "../store/membership_admins.ts";
import { keepClientEndpoints } from "../../lib/daemon/client_endpoints.ts";
import { EtcdClient, EtcdClientError, text } from "../../lib/etcd/client.ts";
import { readPeers } from "../../lib/store/member/member.ts";
import { createCertificateRequest } from "../../lib/pki/member_cert.ts";
import type { Logger } from "../../lib/log.ts";

const SUBNETS = "/coreos.com/network/subnets/";

/** Watches the subnet leases from revision 1, resuming after a broken stream, until `signal`
 *  aborts. */
async function watchAll(kv: EtcdClient, seen: Set<string>, signal: AbortSignal) {
  let from = 1;
  while (!signal.aborted) {
    try {
      for await (const r of kv.watch(SUBNETS, { prefix: true, startRevision: from, signal })) {
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

/** Kills member `old` and waits until a learner has taken its vote and it is gone. */
async function replace(c: ProcessCluster, old: number) {
  await c.kill(c.members[old]);
  const gone = c.members[old].address;
  await c.waitFor(
    async () => {
      const v = await membersView(c);
      return v !== undefined && !v.members.some((m) => m.address === gone) &&
        v.members.filter((m) => m.kind === "voter").length === 3;
    },
    30_000,
    `${gone} to be replaced`,
  );
}

/** A subnet lease as an agent writes it, attached to the client's own store lease. */
function putSubnet(kv: EtcdClient, n: number, lease: string) {
  const value = JSON.stringify({ PublicIP: `10.0.0.${n}`, BackendType: "vxlan" });
  return kv.put(`${SUBNETS}10.5.${n}.0-24`, value, { lease });
}

/** Admits a plain client (every vote and standby place taken) and returns its credential. */
async function joinAsClient(c: ProcessCluster): Promise<string> {
  const r = await post(c.members[0].address, "/raft/join", {
    address: "127.0.7.129:8473",
    name: "client",
    wantMember: false,
    joinId: "client-refresh",
    secret: TOKEN,
    csrPem: (await createCertificateRequest("client")).csrPem,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.role, "client");
  return String(r.body.credential);
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
        for (const i of [3, 4]) {
          c.spawn(c.members[i], ["--join", c.members[0].address, "--token", TOKEN]);
        }
        for (const i of [3, 4]) await c.waitReady(c.members[i], 30_000);
        const credential = await joinAsClient(c);
        const dataDir = join(c.root, "client");
        await Deno.mkdir(dataDir);
        const first = c.members.slice(0, 3).map((m) => m.address);
        const tls = { caCerts: [clusterTrust().caPem] };
        const kv = new EtcdClient({ endpoints: first, token: credential, tls });
        const lines: string[] = [];
        const logger: Logger = (_l, event, f) => lines.push(`${event} ${JSON.stringify(f)}`);
        const stop = new AbortController();
        keepClientEndpoints(
          {
            dataDir,
            endpoints: first,
            token: credential,
            tls,
            client: kv,
            logger,
            intervalMs: 300,
          },
          stop.signal,
        );
        const seen = new Set<string>();
        const watching = watchAll(kv, seen, stop.signal);
        try {
          const lease = (await kv.leaseGrant(600)).id;
          await putSubnet(kv, 1, lease);
          await replace(c, 0);
          await replace(c, 1);
          c.spawn(c.members[5], ["--join", c.members[3].address, "--token", TOKEN]);
          // A's admin credential went with A's vote: ask as a voter that is left.
          await c.waitFor(
            async () => Number((await statusOf(c, c.members[5].address))?.leader ?? 0) > 0,
            30_000,
            "F to serve with a leader",
          );
          await replace(c, 2);
          await c.waitFor(
            () => putSubnet(kv, 99, lease).then(() => true, () => false),
            10_000,
            "a lease written through the refreshed endpoints",
          );
          const r = await kv.range(SUBNETS, { prefix: true });
          assert.ok(r.kvs.some((x) => text(x.key) === `${SUBNETS}10.5.99.0-24`));
          await c.waitFor(() => seen.has(`${SUBNETS}10.5.99.0-24`), 10_000, "the watch to see it");
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
