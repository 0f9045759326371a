// The daemon's data dir: the cluster token's sources in order, the facts read before a start, and
// the lock that keeps a second agent off a data dir in use.
import assert from "node:assert/strict";
import { join } from "node:path";
import { resolveToken } from "../../lib/daemon/token.ts";
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

Deno.test("the token comes from --token, else --token-file, else the data dir", async () => {
  await withDir(async (dir) => {
    const file = join(dir, "given");
    await Deno.writeTextFile(file, "  from-file\n");
    await writeToken(dir, "kept");
    assert.equal(await resolveToken({ token: "flag", tokenFile: file, dataDir: dir }), "flag");
    assert.equal(await resolveToken({ tokenFile: file, dataDir: dir }), "from-file");
    assert.equal(await resolveToken({ dataDir: dir }), "kept");
    assert.equal(await resolveToken({}), undefined);
    assert.equal(await resolveToken({ dataDir: join(dir, "none") }), undefined);
    assert.equal((await Deno.stat(join(dir, "token"))).mode! & 0o777, 0o600);
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

Deno.test("start facts: a restart reads the identity, the kept token and a client's peers", async () => {
  await withDir(async (dir) => {
    const id = { clusterId: "7", nodeId: 0, name: "n", advertise: "10.0.0.1:1" };
    await writeIdentity(dir, id);
    await writeToken(dir, "kept");
    await Deno.writeTextFile(join(dir, "peers.json"), JSON.stringify([{ id: 1, address: "a:1" }]));
    const facts = await readStartFacts(parseAgentFlags(["--data-dir", dir], {}));
    assert.deepEqual(facts, {
      identity: id,
      hasRaftLog: false,
      keptToken: "kept",
      peerAddresses: ["a:1"],
      givenToken: undefined,
    });
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
