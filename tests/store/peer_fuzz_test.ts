// Hostile peer input against a live 3-member cluster of real processes: the reported crash (an
// empty MsgProp posted to a follower stopped the leader), then thousands of mutated and random
// peer batches, snapshot bodies and join bodies sent with the cluster's peer credential and a
// member's own id as sender. No member stops, and every acknowledged write is still there.
import assert from "node:assert/strict";
import {
  b64,
  type Member,
  post,
  type ProcessCluster,
  unb64,
  withCluster,
} from "./process_cluster.ts";
import { CLUSTER_HEADER, FROM_HEADER } from "../../lib/store/member/transport.ts";
import { WIRE_TYPES } from "../../lib/store/member/message_codec.ts";
import { storeFetch } from "./process_cluster.ts";

/** Each member's own credential by member id: a peer message is sent as the member it names. */
const credentialOf = new Map<number, string>();

const OPTS = { base: 100, size: 3 };

interface Ids {
  byMember: Map<Member, number>;
  clusterId: string;
}

async function ids(c: ProcessCluster): Promise<Ids> {
  const byMember = new Map<Member, number>();
  let clusterId = "";
  for (const m of c.members) {
    // A joiner answers once it has joined and started serving (a loaded machine takes a while).
    let s = await c.status(m);
    for (let i = 0; !s && i < 150; i++) {
      await new Promise((r) => setTimeout(r, 100));
      s = await c.status(m);
    }
    assert.ok(s, `${m.address} answers its status`);
    byMember.set(m, Number(s.id));
    clusterId = String(s.clusterId);
    credentialOf.set(Number(s.id), (await Deno.readTextFile(`${m.dataDir}/credential`)).trim());
  }
  return { byMember, clusterId };
}

/** Raw POST with the peer headers (the body may be anything, even invalid JSON). */
async function peerPost(
  m: Member,
  path: string,
  body: string,
  from: number,
  clusterId: string,
): Promise<number> {
  try {
    const r = await storeFetch(m.address, path, {
      method: "POST",
      body,
      headers: {
        authorization: `Bearer ${credentialOf.get(from) ?? ""}`,
        "content-type": "application/json",
        [CLUSTER_HEADER]: clusterId,
        [FROM_HEADER]: String(from),
      },
      signal: AbortSignal.timeout(3000),
    });
    await r.body?.cancel();
    return r.status;
  } catch {
    return 0;
  }
}

function alive(c: ProcessCluster): void {
  for (const m of c.members) {
    const failed = m.log.find((l) => l.includes("raft_member_failed") || l.includes("invariant"));
    assert.equal(failed, undefined, `${m.address} stopped: ${failed}`);
    assert.equal(m.stopped, false, `${m.address} exited`);
  }
}

Deno.test("an empty MsgProp posted to a follower is refused and no member stops", async () => {
  await withCluster(OPTS, async (c) => {
    await c.start();
    const leader = await c.waitLeader();
    const { byMember, clusterId } = await ids(c);
    const follower = c.members.find((m) => m !== leader)!;
    const from = byMember.get(follower)!;
    const prop = {
      type: "MsgProp",
      to: byMember.get(leader)!,
      from,
      term: 0,
      logTerm: 0,
      index: 0,
      commit: 0,
      e: [],
    };
    const status = await peerPost(
      follower,
      "/raft/msg",
      JSON.stringify({ msgs: [prop] }),
      from,
      clusterId,
    );
    assert.equal(status, 400);
    await new Promise((r) => setTimeout(r, 500));
    alive(c);
    const r = await post(leader.address, "/v3/kv/put", { key: b64("/fz/a"), value: b64("1") });
    assert.equal(r.status, 200);
  });
});

/** xorshift32, seeded: a failure can be replayed. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

// Every wire type, plus local-only and unknown types a hostile peer might send anyway.
const TYPES = [...WIRE_TYPES, "MsgHup", "MsgBeat", "Bogus"];

const WEIRD: unknown[] = [
  -1,
  1.5,
  2 ** 53,
  1e308,
  "7",
  null,
  true,
  [],
  {},
  "%%%",
  "AAAA",
  "AA=A",
  0,
];

/** A batch shaped like the real thing with random numbers, then a few fields made wrong. */
function fuzzBatch(r: (n: number) => number, from: number, to: number, near: number): unknown {
  const n = () => Math.max(0, near + r(40) - 20);
  const msgs: Record<string, unknown>[] = [];
  for (let k = 1 + r(3); k > 0; k--) {
    const m: Record<string, unknown> = {
      type: TYPES[r(TYPES.length)],
      to,
      from,
      term: r(4) === 0 ? 0 : r(6) + 1,
      logTerm: r(6),
      index: n(),
      commit: r(2) ? n() : n() + 1000,
    };
    const ents = r(3);
    if (ents > 0 || r(2)) {
      const start = Number(m.index) + 1;
      m.e = Array.from({ length: ents }, (_, i) => ({
        t: Number(m.term) || 1,
        i: start + i,
        ...(r(4) === 0 ? { c: 1 } : {}),
        ...(r(2) ? { d: b64(`v${r(1000)}`) } : {}),
      }));
    }
    if (r(5) === 0) {
      m.snap = {
        d: r(2) ? b64("TWS1junk") : "",
        i: n() + r(50),
        t: r(6),
        v: r(2) ? [1, 2, 3] : [from],
        l: r(3) ? [] : [1],
      };
    }
    if (r(4) === 0) m.reject = 1;
    if (r(4) === 0) m.ctx = b64(`c${r(100)}`);
    for (let j = r(3); j > 0; j--) {
      const keys = ["type", "to", "term", "logTerm", "index", "commit", "e", "snap", "hint", "ctx"];
      m[keys[r(keys.length)]] = WEIRD[r(WEIRD.length)];
    }
    msgs.push(m);
  }
  return r(30) === 0 ? WEIRD[r(WEIRD.length)] : { msgs };
}

function fuzzJoin(r: (n: number) => number): string {
  const shapes = [
    () => "{",
    () => JSON.stringify(WEIRD[r(WEIRD.length)]),
    () => JSON.stringify({ address: WEIRD[r(WEIRD.length)], joinId: "x" }),
    () => JSON.stringify({ address: "127.0.7.250:1", joinId: WEIRD[r(WEIRD.length)] }),
    () => JSON.stringify({ address: "x".repeat(r(3000)), name: [], joinId: String(r(9)) }),
  ];
  return shapes[r(shapes.length)]();
}

/** Puts numbered keys until `stop` says so; returns the keys the cluster acknowledged. */
async function writer(c: ProcessCluster, stop: () => boolean): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  for (let i = 0; !stop(); i++) {
    const m = c.members[i % c.members.length];
    const key = `/fz/k${i}`;
    try {
      const res = await post(m.address, "/v3/kv/put", { key: b64(key), value: b64(`v${i}`) }, 6000);
      if (res.status === 200) acked.set(key, `v${i}`);
    } catch { /* unknown outcome: not counted */ }
  }
  return acked;
}

async function fuzzer(c: ProcessCluster, who: Ids, seed: number, stop: () => boolean) {
  const r = rng(seed);
  const targets = c.members;
  let sent = 0;
  while (!stop()) {
    const target = targets[r(targets.length)];
    const others = targets.filter((m) => m !== target);
    const from = who.byMember.get(others[r(others.length)])!;
    const to = who.byMember.get(target)!;
    const pick = r(10);
    const path = pick < 6 ? "/raft/msg" : pick < 9 ? "/raft/snapshot" : "/raft/join";
    const body = path === "/raft/join"
      ? fuzzJoin(r)
      : JSON.stringify(fuzzBatch(r, from, to, 5 + r(60)));
    await peerPost(target, path, body, from, who.clusterId);
    sent++;
  }
  return sent;
}

Deno.test("thousands of hostile peer batches stop no member and lose no acknowledged write", async () => {
  await withCluster(OPTS, async (c) => {
    await c.start();
    await c.waitLeader();
    const who = await ids(c);
    const until = Date.now() + 20_000;
    const stop = () => Date.now() > until;
    const [acked, ...sent] = await Promise.all([
      writer(c, stop),
      ...[1, 2, 3, 4].map((s) => fuzzer(c, who, s * 7919, stop)),
    ]);
    const total = sent.reduce((a, b) => a + b, 0);
    console.log(`sent ${total} hostile bodies, ${acked.size} writes acknowledged`);
    assert.ok(total >= 2000, `only ${total} hostile bodies sent`);
    alive(c);
    const leader = await c.waitLeader(10_000);
    alive(c);
    for (const [key, value] of acked) {
      const res = await post(leader.address, "/v3/kv/range", { key: b64(key) }, 6000);
      const kvs = res.body.kvs as { value: string }[] | undefined;
      assert.equal(unb64(kvs?.[0]?.value), value, `acknowledged ${key} is gone`);
    }
  });
});
