// History compaction on a replicated store: the leader proposes a compact whenever history grows
// to twice --auto-compaction-retention, every member applies it at the same log index, and a
// watch that starts before the compacted revision is canceled with compact_revision (etcd's
// answer), on the leader and on followers alike.
import assert from "node:assert/strict";
import { b64, type Member, post, ProcessCluster, storeFetch } from "./process_cluster.ts";

const RETAIN = 50;

/** The first answer to a watch from `startRevision` on `m` (created, then canceled or events). */
async function watchFrom(m: Member, startRevision: number): Promise<Record<string, unknown>[]> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 5000);
  const res = await storeFetch(m.address, "/v3/watch", {
    method: "POST",
    body: JSON.stringify({
      create_request: { key: b64("/c/"), range_end: b64("/c0"), start_revision: startRevision },
    }),
    signal: ac.signal,
  });
  const out: Record<string, unknown>[] = [];
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    while (out.length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line) out.push((JSON.parse(line) as { result: Record<string, unknown> }).result);
      }
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
    await reader.cancel().catch(() => {});
  }
  return out;
}

async function putMany(m: Member, n: number): Promise<number> {
  let rev = 0;
  for (let i = 0; i < n; i++) {
    const r = await post(m.address, "/v3/kv/put", {
      key: b64(`/c/k${i % 7}`),
      value: b64(`v${i}`),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    rev = Number((r.body.header as Record<string, string>).revision);
  }
  return rev;
}

Deno.test({
  name: "auto-compaction: the leader keeps every member's history bounded under puts",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const c = new ProcessCluster({
      base: 70,
      size: 3,
      extraArgs: ["--auto-compaction-retention", String(RETAIN)],
    });
    try {
      await c.start(3);
      const leader = await c.waitLeader();
      let rev = await putMany(leader, 3 * RETAIN);
      // Every member (the leader proposes; followers only apply) compacts within a few ticks.
      const compactedOn = async (m: Member): Promise<number> => {
        const answer = await watchFrom(m, 1);
        const last = answer[answer.length - 1];
        return last.canceled === true ? Number(last.compact_revision) : 0;
      };
      for (const m of c.members) {
        await c.waitFor(
          async () => (await compactedOn(m)) > 0,
          10_000,
          `member ${m.address} to compact its history`,
        );
      }
      // More puts: history stays within [retain, 2 * retain] revisions (plus a check interval).
      rev = await putMany(leader, 4 * RETAIN);
      await new Promise((r) => setTimeout(r, 1500)); // the leader looks every 5 ticks (500 ms)
      for (const m of c.members) {
        const compacted = await compactedOn(m);
        const kept = rev - compacted;
        assert.ok(
          kept >= RETAIN && kept <= 2 * RETAIN,
          `member ${m.address} keeps ${kept} revisions (compacted to ${compacted} at ${rev})`,
        );
        // The compacted answer: canceled, with the revision history now starts after.
        const answer = await watchFrom(m, compacted - 1);
        assert.equal(answer[0].created, true, JSON.stringify(answer));
        assert.equal(answer[1].canceled, true, JSON.stringify(answer));
        assert.equal(answer[1].compact_revision, String(compacted), JSON.stringify(answer));
        // History from the compaction point on is still watchable.
        const live = await watchFrom(m, compacted + 1);
        assert.ok(Array.isArray(live[1]?.events), JSON.stringify(live));
        assert.equal(
          (live[1].events as { kv: { mod_revision: string } }[])[0].kv.mod_revision,
          String(compacted + 1),
        );
      }
    } finally {
      await c.teardown();
    }
  },
});
