// The trust proof in network namespaces (prefix twa-t): 1 voter + 2 learners + 1 plain client
// (`--voters 1`). A capture on the underlay bridge, running through the joins, lease traffic and
// ctl calls, never holds the join secret, any credential, "Bearer" or a lease key in clear; every
// member's certificate verifies against pki/ca.crt with openssl; the client's credential is
// refused for another node's lease but renews its own; remove-node locks the client out (its
// agent logs credential_revoked, exits 1 and leaves its VXLAN device in place).
import assert from "node:assert/strict";
import { requireTools } from "../support/tools.ts";
import {
  type AgentMode,
  type AgentProc,
  b64,
  httpStatus,
  inNs,
  sh,
  startAgent,
  type StoreAccess,
  storeCall,
  Topology,
  waitFor,
} from "./topology.ts";

const P = "/coreos.com/network";
const NET_CONF = '{"Network":"10.51.0.0/16","Backend":{"Type":"vxlan"}}';
const SECRET = "twa-trust-secret-7f3c9a51d2";
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** `twill ctl` run inside a node's namespace with only --data-dir (no secret on the line). */
async function ctl(topo: Topology, n: number, ...args: string[]) {
  const deno = [Deno.execPath(), "run", "-A", "--no-check", "--config", CONFIG, MAIN];
  const data = `${topo.dir}/n${n}/data`;
  return await sh(inNs(topo.node(n), [...deno, "ctl", "--data-dir", data, ...args]), {
    allowFail: true,
  });
}

/** A node's own access to the store: its credential, through `via`'s member. */
function access(topo: Topology, n: number, via: number): StoreAccess {
  return {
    ns: topo.node(n),
    endpoint: `https://${topo.nodeIp(via)}:8473`,
    token: Deno.readTextFileSync(`${topo.dir}/n${n}/data/credential`).trim(),
    caFile: `${topo.dir}/n1/data/pki/ca.crt`,
  };
}

/** Starts tcpdump on the underlay bridge; stop() ends it and returns the capture's bytes. */
async function capture(topo: Topology) {
  const file = `${topo.dir}/underlay.pcap`;
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", topo.ul, "tcpdump", "-i", "br0", "-U", "-s", "0", "-w", file],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  await waitFor("tcpdump to listen", async () => {
    try {
      return (await Deno.stat(file)).size > 0;
    } catch {
      return false;
    }
  }, 10_000);
  return {
    async stop(): Promise<Uint8Array> {
      child.kill("SIGINT");
      await child.output();
      return await Deno.readFile(file);
    },
  };
}

function contains(hay: Uint8Array, needle: string): boolean {
  const n = new TextEncoder().encode(needle);
  outer: for (let i = 0; i + n.length <= hay.length; i++) {
    for (let j = 0; j < n.length; j++) if (hay[i + j] !== n[j]) continue outer;
    return true;
  }
  return false;
}

async function startNode(
  topo: Topology,
  agents: Map<number, AgentProc>,
  n: number,
): Promise<void> {
  const mode: AgentMode = {
    kind: "main-embedded",
    token: SECRET,
    role: n === 1 ? "init" : "join",
    netConf: `${topo.dir}/net-conf.json`,
  };
  agents.set(n, startAgent(topo, n, ["--voters", "1"], mode));
  await waitFor(
    `n${n} /readyz`,
    async () => (await httpStatus(topo.node(n), "/readyz")) === 200,
    60_000,
  )
    .catch((e) => {
      throw new Error(`${e.message}\n${agents.get(n)!.log()}`);
    });
}

Deno.test({
  name: "e2e trust: TLS on the underlay, pinned joins, least privilege, remove-node",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    requireTools(["tcpdump", "openssl"]);
    const dir = await Deno.makeTempDir({ prefix: "twa-t-e2e-" });
    const topo = new Topology("twa-t", 4, dir);
    const agents = new Map<number, AgentProc>();
    try {
      await topo.create();
      await Deno.writeTextFile(`${dir}/net-conf.json`, NET_CONF);
      const pcap = await capture(topo);
      for (let n = 1; n <= 4; n++) await startNode(topo, agents, n);
      const leaseOf = await checkRoles(t, topo);
      await checkCertificates(t, topo);
      await checkLeastPrivilege(t, topo, leaseOf);
      await checkCapture(t, topo, await pcap.stop());
      await checkRemoveNode(t, topo, agents, leaseOf);
    } catch (e) {
      for (const [n, a] of agents) console.error(`--- agent n${n} log ---\n${a.log()}`);
      throw e;
    } finally {
      for (const a of agents.values()) await a.stop("SIGKILL");
      await topo.destroy();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

/** 1 voter, 2 learners, 1 client; returns each node's lease key by node number. */
async function checkRoles(t: Deno.TestContext, topo: Topology): Promise<Map<number, string>> {
  const leaseOf = new Map<number, string>();
  await t.step("1 voter, 2 learners and a plain client, each with its lease", async () => {
    const members = await ctl(topo, 1, "--json", "members");
    assert.equal(members.code, 0, members.err);
    const rows = JSON.parse(members.out) as { name: string; role: string }[];
    assert.deepEqual(rows.map((r) => [r.name, r.role]).sort(), [
      ["n1", "leader"],
      ["n2", "learner"],
      ["n3", "learner"],
    ]);
    const id = JSON.parse(await Deno.readTextFile(`${topo.dir}/n4/data/member.json`));
    assert.equal(id.nodeId, 0, "n4 is a plain client");
    const leases = await ctl(topo, 4, "--json", "leases");
    assert.equal(leases.code, 0, leases.err);
    for (const l of JSON.parse(leases.out) as { publicIp: string; subnet: string }[]) {
      const n = Number(l.publicIp.split(".").pop());
      leaseOf.set(n, `${P}/subnets/${l.subnet.replace("/", "-")}`);
    }
    assert.equal(leaseOf.size, 4, "one lease per node");
    for (const n of [1, 2, 3, 4]) {
      const mode = (await Deno.stat(`${topo.dir}/n${n}/data/credential`)).mode! & 0o777;
      assert.equal(mode, 0o600, `n${n}/credential is 0600`);
    }
    assert.ok(!(await exists(`${topo.dir}/n4/data/admin-credential`)), "a client has no admin");
    assert.ok(!(await exists(`${topo.dir}/n2/data/admin-credential`)), "a learner has no admin");
    assert.ok(!(await exists(`${topo.dir}/n2/data/pki/ca.key`)), "a learner keeps no CA key");
    assert.ok(await exists(`${topo.dir}/n1/data/pki/ca.key`), "the voter keeps the CA key");
  });
  return leaseOf;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function checkCertificates(t: Deno.TestContext, topo: Topology): Promise<void> {
  await t.step("openssl verifies every member against pki/ca.crt", async () => {
    for (const n of [1, 2, 3]) {
      const r = await sh(
        inNs(topo.node(4), [
          "openssl",
          "s_client",
          "-connect",
          `${topo.nodeIp(n)}:8473`,
          "-CAfile",
          `${topo.dir}/n4/data/pki/ca.crt`,
          "-verify_return_error",
          "-verify_ip",
          topo.nodeIp(n),
        ]),
        { allowFail: true, stdin: "" },
      );
      assert.equal(r.code, 0, `n${n}: ${r.err}`);
      assert.match(r.out, /Verify return code: 0 \(ok\)/);
    }
    // No plain-HTTP answer on the store port.
    const plain = await sh(
      inNs(topo.node(4), ["curl", "-s", "-m", "3", `http://${topo.nodeIp(1)}:8473/v3/kv/range`]),
      { allowFail: true },
    );
    assert.notEqual(plain.code, 0, "plain HTTP gets no answer");
  });
}

async function checkLeastPrivilege(
  t: Deno.TestContext,
  topo: Topology,
  leaseOf: Map<number, string>,
): Promise<void> {
  await t.step(
    "the client's credential: another node's lease refused, its own renewed",
    async () => {
      const mine = access(topo, 4, 2);
      const others = leaseOf.get(3)!;
      const before = await storeCall(mine, "/v3/kv/range", { key: b64(others) }) as Range;
      const put = await storeCall(mine, "/v3/kv/put", { key: b64(others), value: b64("rogue") });
      assert.match(JSON.stringify(put), /etcdserver: permission denied/);
      const del = await storeCall(mine, "/v3/kv/deleterange", { key: b64(others) });
      assert.match(JSON.stringify(del), /etcdserver: permission denied/);
      const after = await storeCall(mine, "/v3/kv/range", { key: b64(others) }) as Range;
      assert.deepEqual(after.kvs, before.kvs, "the other node's lease is unchanged");

      const own = await storeCall(mine, "/v3/kv/range", { key: b64(leaseOf.get(4)!) }) as Range;
      const kv = own.kvs![0];
      const renewed = await storeCall(mine, "/v3/lease/keepalive", { ID: kv.lease }) as {
        result?: { TTL?: string };
      };
      assert.ok(Number(renewed.result?.TTL) > 0, `own lease renewed: ${JSON.stringify(renewed)}`);
      const rewrite = await storeCall(mine, "/v3/kv/put", {
        key: kv.key,
        value: kv.value,
        lease: kv.lease,
      }) as { header?: unknown };
      assert.ok(rewrite.header, `own lease rewritten: ${JSON.stringify(rewrite)}`);
      const cfg = await storeCall(mine, "/v3/kv/put", {
        key: b64(`${P}/config`),
        value: b64("{}"),
      });
      assert.match(JSON.stringify(cfg), /etcdserver: permission denied/);
    },
  );
}

interface Range {
  kvs?: { key: string; value: string; lease: string; mod_revision: string }[];
}

async function checkCapture(t: Deno.TestContext, topo: Topology, pcap: Uint8Array) {
  await t.step(
    "the underlay capture holds no secret, credential, Bearer or lease key",
    async () => {
      assert.ok(pcap.length > 20_000, `the capture saw the traffic (${pcap.length} bytes)`);
      const secrets: [string, string][] = [["the join secret", SECRET], ["Bearer", "Bearer"]];
      for (const n of [1, 2, 3, 4]) {
        const cred = (await Deno.readTextFile(`${topo.dir}/n${n}/data/credential`)).trim();
        secrets.push([`n${n}'s credential`, cred]);
      }
      const admin = (await Deno.readTextFile(`${topo.dir}/n1/data/admin-credential`)).trim();
      secrets.push(["the admin credential", admin]);
      secrets.push(["a lease key", `${P}/subnets/`], [
        "a lease key (base64)",
        b64(`${P}/subnets/`),
      ]);
      secrets.push(["a lease key (base64)", b64(`${P}/subnets`).slice(0, 24)]);
      for (const [what, s] of secrets) assert.ok(!contains(pcap, s), `${what} is not in clear`);
    },
  );
}

async function checkRemoveNode(
  t: Deno.TestContext,
  topo: Topology,
  agents: Map<number, AgentProc>,
  leaseOf: Map<number, string>,
): Promise<void> {
  await t.step("remove-node locks the client out; its data plane stays", async () => {
    const r = await ctl(topo, 1, "remove-node", "n4");
    assert.equal(r.code, 0, r.err);
    const code = await Promise.race([
      agents.get(4)!.child.status.then((s) => s.code),
      new Promise<number>((res) => setTimeout(() => res(-1), 20_000)),
    ]);
    assert.equal(code, 1, "the client's agent exits 1");
    assert.match(agents.get(4)!.log(), /credential_revoked/);
    const link = await sh(["ip", "-n", topo.node(4), "link", "show", "flannel.1"], {
      allowFail: true,
    });
    assert.equal(link.code, 0, "flannel.1 is left in place");
    const refused = await ctl(topo, 4, "leases");
    assert.equal(refused.code, 3, refused.err);
    const leases = await ctl(topo, 1, "--json", "leases");
    const keys = (JSON.parse(leases.out) as { subnet: string }[]).map((l) =>
      `${P}/subnets/${l.subnet.replace("/", "-")}`
    );
    assert.ok(!keys.includes(leaseOf.get(4)!), "the client's lease is gone");
  });
}
