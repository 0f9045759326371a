// The daemon's data dir: the cluster token's sources in order, the facts read before a start, and
// the lock that keeps a second agent off a data dir in use.
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveCredential, resolveToken } from "../../lib/daemon/credentials.ts";
import { createCredential } from "../../lib/pki/credential.ts";
import { lockDataDir, readStartFacts } from "../../lib/daemon/data_dir.ts";
import { writeIdentity, writeToken } from "../../lib/store/member/identity.ts";
import { parseAgentFlags } from "../../cmd/agent.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "twill-daemon-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the agent's --token comes from --token, else --token-file", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "given");
    await Deno.writeTextFile(file, "  from-file\n");
    assert.equal(await resolveToken({ token: "flag", tokenFile: file }), "flag");
    assert.equal(await resolveToken({ tokenFile: file }), "from-file");
    assert.equal(await resolveToken({}), undefined);
  });
});

Deno.test("credential lookup: --token, else admin-credential (ctl), else credential", async () => {
  await withDir(async (dir) => {
    const node = createCredential();
    const admin = createCredential(true);
    assert.equal(await resolveCredential({ dataDir: dir, preferAdmin: true }), undefined);
    await Deno.writeTextFile(join(dir, "credential"), node + "\n", { mode: 0o600 });
    assert.deepEqual(await resolveCredential({ dataDir: dir, preferAdmin: true }), {
      credential: node,
      source: join(dir, "credential"),
    });
    await Deno.writeTextFile(join(dir, "admin-credential"), admin + "\n", { mode: 0o600 });
    assert.equal((await resolveCredential({ dataDir: dir, preferAdmin: true }))?.credential, admin);
    assert.equal((await resolveCredential({ dataDir: dir, preferAdmin: false }))?.credential, node);
    const flag = createCredential();
    const given = await resolveCredential({ token: flag, dataDir: dir, preferAdmin: true });
    assert.deepEqual(given, { credential: flag, source: "--token" });
    await assert.rejects(
      resolveCredential({ token: `K10${"a".repeat(64)}::secret`, preferAdmin: true }),
      /--token is not a twill credential/,
    );
  });
});

Deno.test("an unreadable or empty --token-file is one line naming the file", async () => {
  await withDir(async (dir) => {
    const empty = join(dir, "empty");
    await Deno.writeTextFile(empty, "\n");
    await assert.rejects(
      resolveToken({ tokenFile: empty }),
      /cannot read the token from .*empty: it is empty/,
    );
    await assert.rejects(
      resolveToken({ tokenFile: join(dir, "missing") }),
      /cannot read the token from/,
    );
  });
});

Deno.test("start facts: an external-etcd agent never reads its data dir", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "member.json"), "{damaged");
    const f = parseAgentFlags([
      "--data-dir",
      dir,
      "--etcd-endpoints",
      "http://e:2379",
      "--token",
      "t",
    ], {});
    assert.deepEqual(await readStartFacts(f), { hasRaftLog: false, givenToken: "t" });
  });
});

Deno.test("start facts: a restart reads the identity, what trust files exist, a client's peers", async () => {
  await withDir(async (dir) => {
    const id = { clusterId: "7", nodeId: 0, name: "n", advertise: "10.0.0.1:1" };
    await writeIdentity(dir, id);
    await writeToken(dir, "a 0.1.0 token");
    await Deno.writeTextFile(join(dir, "peers.json"), JSON.stringify([{ id: 1, address: "a:1" }]));
    const flags = parseAgentFlags(["--data-dir", dir], {});
    assert.deepEqual(await readStartFacts(flags), {
      identity: id,
      hasRaftLog: false,
      hasCa: false,
      hasCredential: false,
      hasLegacyToken: true,
      peerAddresses: ["a:1"],
      givenToken: undefined,
    });
    await Deno.mkdir(join(dir, "pki"));
    await Deno.writeTextFile(join(dir, "pki", "ca.crt"), "pem");
    await Deno.writeTextFile(join(dir, "credential"), "c");
    const facts = await readStartFacts(flags);
    assert.equal(facts.hasCa, true);
    assert.equal(facts.hasCredential, true);
  });
});

Deno.test("start facts: --init on an empty data dir notices a Raft log", async () => {
  await withDir(async (dir) => {
    const f = parseAgentFlags(["--data-dir", dir, "--init"], {});
    assert.equal((await readStartFacts(f)).hasRaftLog, false);
    await Deno.mkdir(join(dir, "raft", "wal"), { recursive: true });
    await Deno.writeTextFile(join(dir, "raft", "wal", "0.wal"), "x");
    assert.equal((await readStartFacts(f)).hasRaftLog, true);
  });
});

Deno.test("the data-dir lock is a value: a second holder is refused until release()", async () => {
  await withDir(async (dir) => {
    const data = join(dir, "data");
    const first = await lockDataDir(data);
    assert.equal((await Deno.stat(data)).mode! & 0o777, 0o700);
    await assert.rejects(lockDataDir(data), /is in use by another twill agent/);
    first.release();
    first.release(); // a second release is harmless
    const again = await lockDataDir(data);
    again.release();
  });
});
