// decideStart: every way a `twill agent` can start, and every refusal, from the config and the
// facts read from the data dir (no sockets, no files).
import assert from "node:assert/strict";
import type { DaemonConfig } from "../../lib/daemon/config.ts";
import {
  decideStart,
  ignoresJoin,
  type Refusal,
  type StartDecision,
  type StartFacts,
} from "../../lib/daemon/start.ts";
import type { MemberIdentity } from "../../lib/store/member/identity.ts";
import { parseAgentFlags } from "../../cmd/agent.ts";

const BASE: DaemonConfig = parseAgentFlags(["--data-dir", "/d", "--name", "n1"], {});
const cfg = (over: Partial<DaemonConfig>): DaemonConfig => ({ ...BASE, ...over });
const MEMBER: MemberIdentity = { clusterId: "42", nodeId: 3, name: "n1", advertise: "10.0.0.1:1" };
const CLIENT: MemberIdentity = { ...MEMBER, nodeId: 0 };
const EMPTY: StartFacts = { hasRaftLog: false };
/** A 0.2.0 data dir: CA and credential present. */
const KEPT: StartFacts = { hasRaftLog: true, hasCa: true, hasCredential: true };
const HASH = "ab".repeat(32);
const JOIN_TOKEN = `K10${HASH}::s3cret-secret-secret`;

function refusal(d: StartDecision): Refusal | undefined {
  return d.kind === "refuse" ? d.refusal : undefined;
}

function assertRefused(d: StartDecision, want: Refusal, says: RegExp): void {
  assert.equal(refusal(d), want);
  assert.ok(d.kind === "refuse");
  assert.match(d.message, says);
  assert.ok(!d.message.includes("\n"), "one line");
}

Deno.test("external etcd: no embedded store, the given token (if any) goes to the etcd client", () => {
  const c = cfg({ etcdEndpoints: ["http://e:2379"] });
  assert.deepEqual(decideStart(c, { ...EMPTY, givenToken: "t" }), {
    kind: "external",
    endpoints: ["http://e:2379"],
    token: "t",
  });
  assert.deepEqual(decideStart(c, EMPTY), {
    kind: "external",
    endpoints: ["http://e:2379"],
    token: undefined,
  });
});

Deno.test("init: the given secret (a warning when short), or none (generated later)", () => {
  const long = "a-long-enough-secret-1234";
  assert.deepEqual(decideStart(cfg({ init: true }), { ...EMPTY, givenToken: ` ${long}\n` }), {
    kind: "init",
    secret: long,
  });
  const short = decideStart(cfg({ init: true }), { ...EMPTY, givenToken: "tiny" });
  assert.ok(short.kind === "init");
  assert.equal(short.secret, "tiny");
  assert.match(short.warning ?? "", /shorter than 16 characters/);
  assert.deepEqual(decideStart(cfg({ init: true }), EMPTY), { kind: "init" });
});

Deno.test("refused: --init with a join token, or a secret that cannot be one", () => {
  const d = decideStart(cfg({ init: true }), { ...EMPTY, givenToken: JOIN_TOKEN });
  assertRefused(d, "bad-init-secret", /--init takes a secret, not a join token/);
  assert.ok(d.kind === "refuse" && !d.message.includes("s3cret"), "the secret is not echoed");
  const ws = decideStart(cfg({ init: true }), { ...EMPTY, givenToken: "two words" });
  assertRefused(ws, "bad-init-secret", /whitespace/);
});

Deno.test("join on an empty data dir: the seeds and the parsed join token", () => {
  const d = decideStart(cfg({ join: ["a:1", "b:2"] }), { ...EMPTY, givenToken: JOIN_TOKEN });
  assert.deepEqual(d, {
    kind: "join",
    seeds: ["a:1", "b:2"],
    joinToken: { caSha256: HASH, secret: "s3cret-secret-secret" },
  });
});

Deno.test("refused: --join with a bare secret says to run twill ctl join-token", () => {
  const d = decideStart(cfg({ join: ["a:1"] }), { ...EMPTY, givenToken: "just-a-secret" });
  assertRefused(d, "bad-join-token", /run `twill ctl join-token` on a member/);
  assert.ok(d.kind === "refuse" && !d.message.includes("just-a-secret"));
  const short = decideStart(cfg({ join: ["a:1"] }), { ...EMPTY, givenToken: "K10abc::s" });
  assertRefused(short, "bad-join-token", /64 hex digits, got 3/);
});

Deno.test("restart of a member needs no token; one given is ignored (and said so)", () => {
  assert.deepEqual(decideStart(BASE, { ...KEPT, identity: MEMBER }), {
    kind: "restart",
    identity: MEMBER,
    tokenIgnored: false,
  });
  assert.deepEqual(decideStart(BASE, { ...KEPT, identity: MEMBER, givenToken: "anything" }), {
    kind: "restart",
    identity: MEMBER,
    tokenIgnored: true,
  });
});

Deno.test("restart with --join: the data dir wins and the join is ignored (and said so)", () => {
  const c = cfg({ join: ["a:1"] });
  const facts: StartFacts = { ...KEPT, identity: MEMBER };
  assert.deepEqual(decideStart(c, facts), {
    kind: "restart",
    identity: MEMBER,
    tokenIgnored: false,
  });
  assert.equal(ignoresJoin(c, facts), true);
  assert.equal(ignoresJoin(BASE, facts), false);
  assert.equal(ignoresJoin(c, { hasRaftLog: false }), false, "an empty data dir joins");
});

Deno.test("restart of a plain client: the members it was given, empty addresses dropped", () => {
  const d = decideStart(BASE, {
    ...KEPT,
    identity: CLIENT,
    peerAddresses: ["a:1", "", "b:2"],
  });
  assert.deepEqual(d, {
    kind: "client",
    identity: CLIENT,
    endpoints: ["a:1", "b:2"],
    tokenIgnored: false,
  });
});

Deno.test("refused: --init on a data dir that holds a cluster", () => {
  const d = decideStart(cfg({ init: true }), {
    identity: MEMBER,
    hasRaftLog: true,
    givenToken: "t",
  });
  assertRefused(
    d,
    "init-on-cluster",
    /\/d already holds cluster 42 .*member 3.*run without --init/,
  );
});

Deno.test("refused: --init on a data dir with a Raft log but no member.json", () => {
  const d = decideStart(cfg({ init: true }), { hasRaftLog: true });
  assertRefused(d, "raft-log-without-identity", /holds a Raft log but no member.json/);
});

Deno.test("refused: a 0.1.0 data dir (plain token, no pki/) says to re-join", () => {
  const d = decideStart(BASE, { identity: MEMBER, hasRaftLog: true, hasLegacyToken: true });
  assertRefused(
    d,
    "legacy-data-dir",
    /^\/d was made by twill 0\.1\.0 \(plain token, no pki\/\); remove it and join again with a join token from 'twill ctl join-token' on a member$/,
  );
  const withJoin = decideStart(cfg({ join: ["a:1"] }), {
    identity: MEMBER,
    hasRaftLog: true,
    hasLegacyToken: true,
    givenToken: JOIN_TOKEN,
  });
  assertRefused(withJoin, "legacy-data-dir", /twill 0\.1\.0/);
});

Deno.test("refused: a restart whose credential or CA is gone", () => {
  const noCred = decideStart(BASE, { ...KEPT, identity: MEMBER, hasCredential: false });
  assertRefused(noCred, "no-credential", /\/d\/credential is missing; .*remove-node n1/);
  const noCa = decideStart(BASE, { identity: MEMBER, hasRaftLog: true, hasCredential: true });
  assertRefused(noCa, "no-credential", /\/d\/pki\/ca\.crt is missing/);
});

Deno.test("refused: a client's data dir that lists no members", () => {
  const d = decideStart(BASE, { ...KEPT, identity: CLIENT, peerAddresses: [""] });
  assertRefused(d, "client-without-members", /says this node is a client but lists no members/);
});

Deno.test("refused: --join without a token", () => {
  const d = decideStart(cfg({ join: ["a:1"] }), EMPTY);
  assertRefused(d, "join-without-token", /--join needs the join token: run `twill ctl join-token`/);
});

Deno.test("refused: neither --init nor --join on an empty data dir", () => {
  assertRefused(decideStart(BASE, EMPTY), "no-cluster", /\/d holds no cluster: run with --init/);
});
