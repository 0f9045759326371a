// The registries (over EtcdClient, over the agent's own JSON calls) against a real etcd 3.4 on
// loopback (agent-net's ports 22379-22382) and against twill's own store API (in process).
import assert from "node:assert/strict";
import { LeaseLostError, LeaseManager } from "../../lib/subnet/manager.ts";
import { startEtcd } from "./etcd_helper.ts";
import { backendConfigParser } from "../../lib/backend/registry.ts";
import { EtcdClientRegistry } from "../../lib/subnet/etcd_client_registry.ts";
import { EtcdClient } from "../../lib/etcd/client.ts";
import type { SubnetRegistry } from "../../lib/subnet/registry.ts";
import { LocalKv } from "../../lib/store/local_kv.ts";
import { createApiApp } from "../../lib/store/api/app.ts";

/** twill's etcd-shaped API over a single-process backend, on an ephemeral loopback port. */
function startTwill(token: string): { endpoint: string; stop(): Promise<void> } {
  const backend = new LocalKv({ expiryCheckMs: 500 });
  const app = createApiApp(backend, { token });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    async stop() {
      backend.close();
      await server.shutdown();
    },
  };
}

const P = "/coreos.com/network";

const KINDS = [
  ["EtcdClient", "etcd 3.4"],
  ["EtcdClient", "twill"],
] as const;

for (const [kind, server] of KINDS) {
  Deno.test(`registry over ${kind} against ${server}: acquire, fenced renew, watch, compaction`, async () => {
    const port = 22379;
    const token = server === "twill" ? "twa-registry-token" : undefined;
    const etcd = server === "twill"
      ? startTwill(token!)
      : await startEtcd(`127.0.0.1:${port}`, `127.0.0.1:${port + 1}`);
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const ac = new AbortController();
    try {
      const reg: SubnetRegistry = new EtcdClientRegistry(
        new EtcdClient({ endpoints: [etcd.endpoint], token }),
      );
      const put = (k: string, v: string) =>
        fetch(`${etcd.endpoint}/v3/kv/put`, {
          method: "POST",
          headers,
          body: JSON.stringify({ key: btoa(k), value: btoa(v) }),
        }).then((r) => r.json());
      await put(`${P}/config`, '{"Network":"10.7.0.0/16","Backend":{"Type":"vxlan"}}');
      const m = new LeaseManager(reg, {
        prefix: P,
        ttlSeconds: 60,
        now: () => Date.now(),
        randomInt: () => 0,
      });
      const cfg = await m.getNetworkConfig(backendConfigParser);
      const attrs = {
        publicIP: "192.0.2.1",
        publicIPv6: null,
        backendType: "vxlan",
        backendData: { VNI: 1, VtepMAC: "02:00:00:00:00:01" },
      };
      const lease = await m.acquire(cfg, attrs, null);
      assert.equal(lease.subnet && `${lease.subnet.prefix}`, "24");
      const kv = await reg.get(`${P}/subnets/10.7.1.0-24`);
      assert.equal(
        kv!.value,
        '{"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}}',
      );
      assert.equal(kv!.lease, lease.storeLease);
      const { revision } = await reg.list(`${P}/subnets/`);

      // watch from the listed revision sees a new peer and a delete
      const seen: string[] = [];
      const watching = (async () => {
        for await (const item of reg.watch(`${P}/subnets/`, revision + 1n, ac.signal)) {
          if (item.kind !== "events") continue;
          for (const e of item.events) {
            seen.push(e.type === "put" ? `put ${e.kv.key}` : `del ${e.key}`);
          }
          if (seen.length >= 2) return;
        }
      })();
      await put(`${P}/subnets/10.7.9.0-24`, '{"PublicIP":"192.0.2.9","PublicIPv6":null}');
      await reg.delete(`${P}/subnets/10.7.9.0-24`);
      await watching;
      assert.deepEqual(seen, [`put ${P}/subnets/10.7.9.0-24`, `del ${P}/subnets/10.7.9.0-24`]);

      const renewed = await m.renew(lease);
      assert.ok(renewed.modRevision > lease.modRevision);
      await assert.rejects(m.renew(lease), LeaseLostError); // stale revision: fenced out

      // compaction is reported so the watcher can re-list
      const st = await reg.list(`${P}/`);
      await fetch(`${etcd.endpoint}/v3/kv/compaction`, {
        method: "POST",
        headers,
        body: JSON.stringify({ revision: st.revision.toString() }),
      }).then((r) => r.json());
      const it = reg.watch(`${P}/subnets/`, 2n, ac.signal)[Symbol.asyncIterator]();
      const first = await it.next();
      assert.equal((first.value as { kind: string }).kind, "compacted");
    } finally {
      ac.abort();
      await etcd.stop();
    }
  });
}
