// Trust on a real 3-member cluster over TLS (shared/DESIGN.md "Trust"): credentials per node,
// least privilege on the etcd API and the peer routes, joins by the join secret, remove-node,
// and no secret in any log line.
import assert from "node:assert/strict";
import { b64, PREFIX, TrustCluster } from "./trust_cluster.ts";
import type { HttpClient } from "../../lib/http/client.ts";
import { CLUSTER_HEADER, FROM_HEADER } from "../../lib/store/member/transport.ts";
import { createCertificateRequest } from "../../lib/pki/member_cert.ts";

const DENIED = {
  error: "etcdserver: permission denied",
  code: 7,
  message: "etcdserver: permission denied",
};
const subnetKey = (n: number) => `${PREFIX}/subnets/10.5.${n}.0-24`;

async function post(h: HttpClient, addr: string, path: string, body: unknown) {
  const r = await h.postJson(addr, path, body, { timeoutMs: 5000 });
  return { status: r.status, body: r.text ? JSON.parse(r.text) : null };
}

async function grant(h: HttpClient, addr: string): Promise<string> {
  const r = await post(h, addr, "/v3/lease/grant", { TTL: "60" });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.ID;
}

async function valueOf(h: HttpClient, addr: string, key: string): Promise<string | null> {
  const r = await post(h, addr, "/v3/kv/range", { key: b64(key) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.kvs?.length ? atob(r.body.kvs[0].value) : null;
}

Deno.test("trust: node credentials are confined to their own leases; peers to their own id", async (t) => {
  const c = await TrustCluster.start();
  try {
    // A follower: what it forwards to the leader must keep the caller's identity.
    const addr = c.address(c.follower());
    const admin = c.client(c.adminCredential);
    const a = await c.join("node-a", false, "127.0.0.1:1");
    const b = await c.join("node-b", false, "127.0.0.1:2");
    assert.equal(a.response.role, "client");
    assert.equal(a.response.certPem, "");
    const ha = c.client(a.credential);
    const hb = c.client(b.credential);
    const leaseA = await grant(ha, addr);
    const leaseB = await grant(hb, addr);
    const put = (h: HttpClient, key: string, value: string, lease: string) =>
      post(h, addr, "/v3/kv/put", { key: b64(key), value: b64(value), lease });

    await t.step("a node creates and renews its own subnet lease", async () => {
      assert.equal((await put(ha, subnetKey(1), "a1", leaseA)).status, 200);
      assert.equal((await put(ha, subnetKey(1), "a2", leaseA)).status, 200);
      assert.equal((await put(hb, subnetKey(2), "b1", leaseB)).status, 200);
      const ka = await post(ha, addr, "/v3/lease/keepalive", { ID: leaseA });
      assert.equal(ka.status, 200);
      assert.equal(ka.body.result.TTL, "60");
      assert.equal(await valueOf(ha, addr, subnetKey(2)), "b1"); // every lease is readable
    });

    await t.step(
      "another node's lease, the config, compaction, raft: 403, store unchanged",
      async () => {
        const rev =
          (await post(admin, addr, "/v3/kv/range", { key: b64("x") })).body.header.revision;
        const refused = [
          await put(ha, subnetKey(2), "evil", leaseA),
          await put(ha, subnetKey(2), "evil", leaseB),
          await post(ha, addr, "/v3/kv/deleterange", { key: b64(subnetKey(2)) }),
          await put(ha, `${PREFIX}/config`, "{}", "0"),
          await post(ha, addr, "/v3/kv/compaction", { revision: "1" }),
          await post(ha, addr, "/v3/lease/revoke", { ID: leaseB }),
          await post(ha, addr, "/v3/lease/keepalive", { ID: leaseB }),
          await post(ha, addr, "/v3/kv/range", { key: b64("/twill/join-secret") }),
          await post(ha, addr, "/v3/kv/txn", {
            success: [{ request_put: { key: b64(subnetKey(2)), value: b64("e"), lease: leaseA } }],
          }),
        ];
        for (const r of refused) {
          assert.equal(r.status, 403, JSON.stringify(r.body));
          assert.deepEqual(r.body, DENIED);
        }
        const raft = await post(ha, addr, "/raft/msg", { msgs: [] });
        assert.equal(raft.status, 403);
        assert.equal(await valueOf(admin, addr, subnetKey(2)), "b1");
        const after = (await post(admin, addr, "/v3/kv/range", { key: b64("x") })).body.header;
        assert.equal(after.revision, rev);
      },
    );

    await t.step("no or unknown credential: 401", async () => {
      const none = await post(c.client(), addr, "/v3/kv/range", { key: b64(subnetKey(1)) });
      assert.equal(none.status, 401);
      assert.equal(none.body.code, 16);
      const forged = c.client("twn_" + "A".repeat(43));
      assert.equal((await post(forged, addr, "/raft/status", {})).status, 401);
    });

    await t.step("a member credential carrying another member's messages: 403", async () => {
      const m2 = c.client(c.credentials[1]);
      const other = c.members[2].id;
      const res = await m2.request(addr, "/raft/msg", {
        body: JSON.stringify({ msgs: [] }),
        headers: { [CLUSTER_HEADER]: c.members[0].clusterId(), [FROM_HEADER]: String(other) },
      });
      assert.equal(res.status, 403);
      await res.body?.cancel();
      const st = await post(ha, addr, "/raft/status", {});
      assert.equal(st.status, 200); // status and members: any credential
      assert.equal((await post(ha, addr, "/raft/members", {})).status, 200);
    });

    await t.step("the admin credential may do everything", async () => {
      assert.equal((await put(admin, `${PREFIX}/config`, "{}", "0")).status, 200);
      assert.equal((await put(admin, subnetKey(2), "b2", "0")).status, 200);
      assert.equal(await valueOf(admin, addr, "/twill/join-secret"), c.joinSecret);
      const rev = (await post(admin, addr, "/v3/kv/range", { key: b64("x") })).body.header.revision;
      assert.equal((await post(admin, addr, "/v3/kv/compaction", { revision: rev })).status, 200);
    });
  } finally {
    await c.stop();
  }
});

Deno.test("trust: joins need the secret, one live credential per name; remove-node locks out", async (t) => {
  const c = await TrustCluster.start();
  try {
    const addr = c.address(c.follower());
    const admin = c.client(c.adminCredential);
    const joiner = c.client();
    const { csrPem } = await createCertificateRequest("x");
    const joinBody = (name: string, secret: string) => ({
      address: "127.0.0.1:9",
      name,
      wantMember: true,
      joinId: crypto.randomUUID(),
      secret,
      csrPem,
    });
    const credentialCount = async () =>
      (await post(admin, addr, "/v3/kv/range", {
        key: b64("/twill/credentials/"),
        range_end: b64("/twill/credentials0"),
        count_only: true,
      })).body.count ?? "0";

    await t.step(
      "a wrong secret: 401 and nothing changes, whether or not the name exists",
      async () => {
        // Voters register their admin credentials on their own once promoted: count after that.
        let before = await credentialCount();
        for (let same = 0, i = 0; same < 3 && i < 50; i++) {
          await new Promise((r) => setTimeout(r, 300));
          const now = await credentialCount();
          same = now === before ? same + 1 : 0;
          before = now;
        }
        const members = c.leader().kv.members.all().length;
        for (const name of ["m2", "fresh-node"]) {
          const r = await post(joiner, addr, "/raft/join", joinBody(name, "wrong-secret"));
          assert.equal(r.status, 401);
          assert.equal(r.body.error, "join refused: wrong join secret");
        }
        assert.equal(await credentialCount(), before);
        assert.equal(c.leader().kv.members.all().length, members);
      },
    );

    await t.step("a name with a live credential: 409", async () => {
      const r = await post(joiner, addr, "/raft/join", joinBody("m3", c.joinSecret));
      assert.equal(r.status, 409);
      assert.match(
        r.body.error,
        /node m3 already has a live credential; run twill ctl remove-node m3/,
      );
    });

    await t.step("the same joinId gets the same answer", async () => {
      const body = { ...joinBody("client-z", c.joinSecret), wantMember: false };
      const first = await post(joiner, addr, "/raft/join", body);
      const again = await post(joiner, addr, "/raft/join", body);
      assert.equal(first.status, 200);
      assert.deepEqual(again.body, first.body);
    });

    await t.step("remove-node revokes within a second and closes the node's watch", async () => {
      const n = await c.join("node-r", false, "127.0.0.1:3");
      const hn = c.client(n.credential);
      const lease = await grant(hn, addr);
      const put = await post(hn, addr, "/v3/kv/put", {
        key: b64(subnetKey(9)),
        value: b64("r"),
        lease,
      });
      assert.equal(put.status, 200);
      const watch = await hn.request(addr, "/v3/watch", {
        body: JSON.stringify({
          create_request: { key: b64(`${PREFIX}/subnets/`), range_end: b64(`${PREFIX}/subnets0`) },
        }),
      });
      assert.equal(watch.status, 200);
      const reader = watch.body!.getReader();
      await reader.read(); // created
      const keepalive = await hn.request(addr, "/v3/lease/keepalive", {
        body: JSON.stringify({ ID: lease }),
      });
      assert.equal(keepalive.status, 200);
      const kaReader = keepalive.body!.getReader();
      await kaReader.read(); // the first answer
      const nonAdmin = await post(hn, c.address(0), "/raft/remove-node", { name: "node-a" });
      assert.equal(nonAdmin.status, 403);
      const started = Date.now();
      const removed = await post(admin, addr, "/raft/remove-node", { name: "node-r" });
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      assert.deepEqual(removed.body.removed, { credentials: 1, leases: 1, member: 0 });
      // The stream ends (after the deletion event, possibly) within a second.
      while (!(await reader.read()).done) { /* events until the end */ }
      while (!(await kaReader.read()).done) { /* until the end */ }
      assert.ok(Date.now() - started < 1000, `stream closed after ${Date.now() - started} ms`);
      for (const i of [0, 1, 2]) {
        const r = await post(hn, c.address(i), "/v3/kv/range", { key: b64(subnetKey(9)) });
        assert.equal(r.status, 401);
      }
      assert.equal(await valueOf(admin, addr, subnetKey(9)), null);
      const unknown = await post(admin, addr, "/raft/remove-node", { name: "never-was" });
      assert.equal(unknown.status, 404);
    });

    await t.step("no secret in any log line", () => {
      const secrets = [c.joinSecret, c.adminCredential, ...c.credentials];
      const text = c.logs.join("\n");
      assert.ok(c.logs.length > 10);
      for (const s of secrets) assert.ok(!text.includes(s), "a secret was logged");
      assert.ok(!/twn_|twa_|Bearer/.test(text), "a credential was logged");
    });
  } finally {
    await c.stop();
  }
});
