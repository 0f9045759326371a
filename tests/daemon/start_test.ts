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

Deno.test("init on an empty data dir: the given token, or none (generated later)", () => {
  assert.deepEqual(decideStart(cfg({ init: true }), { ...EMPTY, givenToken: "t" }), {
    kind: "init",
    token: "t",
  });
  assert.deepEqual(decideStart(cfg({ init: true }), EMPTY), { kind: "init", token: undefined });
});

Deno.test("join on an empty data dir goes through the seeds with the given token", () => {
  const d = decideStart(cfg({ join: ["a:1", "b:2"] }), { ...EMPTY, givenToken: "t" });
  assert.deepEqual(d, { kind: "join", seeds: ["a:1", "b:2"], token: "t" });
});

Deno.test("restart of a member: the kept token, or the given one when none is kept", () => {
  const kept = decideStart(BASE, { identity: MEMBER, hasRaftLog: true, keptToken: "k" });
  assert.deepEqual(kept, { kind: "restart", identity: MEMBER, token: "k" });
  const same = decideStart(BASE, {
    identity: MEMBER,
    hasRaftLog: false,
    keptToken: "k",
    givenToken: "k",
  });
  assert.deepEqual(same, kept);
  const given = decideStart(BASE, { identity: MEMBER, hasRaftLog: false, givenToken: "g" });
  assert.deepEqual(given, { kind: "restart", identity: MEMBER, token: "g" });
});

Deno.test("restart with --join: the data dir wins and the join is ignored (and said so)", () => {
  const c = cfg({ join: ["a:1"] });
  const facts: StartFacts = { identity: MEMBER, hasRaftLog: true, keptToken: "k" };
  assert.deepEqual(decideStart(c, facts), { kind: "restart", identity: MEMBER, token: "k" });
  assert.equal(ignoresJoin(c, facts), true);
  assert.equal(ignoresJoin(BASE, facts), false);
  assert.equal(ignoresJoin(c, { hasRaftLog: false }), false, "an empty data dir joins");
});

Deno.test("restart of a plain client: the members it was given, empty addresses dropped", () => {
  const d = decideStart(BASE, {
    identity: CLIENT,
    hasRaftLog: false,
    keptToken: "k",
    peerAddresses: ["a:1", "", "b:2"],
  });
  assert.deepEqual(d, { kind: "client", identity: CLIENT, token: "k", endpoints: ["a:1", "b:2"] });
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

Deno.test("refused: a restart whose given token differs from the kept one", () => {
  const d = decideStart(BASE, {
    identity: MEMBER,
    hasRaftLog: true,
    keptToken: "k",
    givenToken: "g",
  });
  assertRefused(d, "token-differs", /differs from the one kept in \/d\/token; drop --token/);
});

Deno.test("refused: a restart with no kept token and none given", () => {
  const d = decideStart(BASE, { identity: MEMBER, hasRaftLog: true });
  assertRefused(d, "no-kept-token", /no token in \/d\/token; give the cluster token with --token/);
});

Deno.test("refused: a client's data dir that lists no members", () => {
  const d = decideStart(BASE, {
    identity: CLIENT,
    hasRaftLog: false,
    keptToken: "k",
    peerAddresses: [""],
  });
  assertRefused(d, "client-without-members", /says this node is a client but lists no members/);
});

Deno.test("refused: --join without a token", () => {
  const d = decideStart(cfg({ join: ["a:1"] }), EMPTY);
  assertRefused(d, "join-without-token", /--join needs the cluster token/);
});

Deno.test("refused: neither --init nor --join on an empty data dir", () => {
  assertRefused(decideStart(BASE, EMPTY), "no-cluster", /\/d holds no cluster: run with --init/);
});
