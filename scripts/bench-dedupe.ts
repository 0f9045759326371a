// At-most-once under load: three store members (the Raft driver and state machine, in process,
// over an in-memory network) take writes through every member, above 2,000 writes/s, while the
// leader is transferred again and again and followers are starved of the log long enough to
// forward their pending writes again (for 0.3 to 4 s, within the 5 s write deadline). Every
// re-sent copy that reaches the log must be answered from memory or refused; the script counts
// request ids applied more than once (must be 0), the copies that reached the log, and how many
// of them came more than 4,096 entries after the first (what a FIFO of the last 4,096 request
// ids would have applied a second time).
//
//   deno run -A scripts/bench-dedupe.ts [--seconds 20] [--clients 400] [--window N]
//
// The window defaults to the members' own (DEFAULT_DEDUPE_WINDOW); `--window 8` shows the
// other branch of the rule (most copies refused late rather than answered from memory).
import { parseArgs } from "node:util";
import { decodeCommand } from "../lib/store/kv.ts";
import { DEFAULT_DEDUPE_WINDOW } from "../lib/store/state_machine.ts";
import { InprocCluster, type InprocNode, put } from "../tests/store/inproc_cluster.ts";

const args = parseArgs({
  options: {
    seconds: { type: "string", default: "20" },
    clients: { type: "string", default: "400" },
    window: { type: "string", default: String(DEFAULT_DEDUPE_WINDOW) },
  },
});
const seconds = Number(args.values.seconds);
const clients = Number(args.values.clients);
const window = Number(args.values.window);

const ids = [1, 2, 3];
const c = InprocCluster.bootstrap(ids, 10, 1_000_000_000, {
  dedupeWindow: window,
  writeTimeoutMs: 5000,
});
const acked = new Set<string>();
let failed = 0;
let stop = false;

async function client(n: number): Promise<void> {
  for (let i = 0; !stop; i++) {
    const node = c.nodes.get(ids[n % ids.length])!;
    const requestId = `c${n}-${i}`;
    try {
      await node.kv.write(put(`k/${n}`, String(i), requestId));
      acked.add(requestId);
    } catch {
      failed++;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/** Alternately starves a follower of the log for 300 ms and moves leadership elsewhere. */
async function disturb(): Promise<number> {
  let starved = 0;
  let until = 0;
  let transfers = 0;
  c.drop = (_from, m) => m.type === "MsgApp" && m.to === starved && Date.now() < until;
  while (!stop) {
    const leader = c.leader();
    if (leader) {
      starved = ids.find((id) => id !== leader.id && Math.random() < 0.5) ??
        ids.find((id) => id !== leader.id)!;
      until = Date.now() + 300 + Math.random() * 3700;
    }
    await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now()) + 100));
    const now = c.leader();
    if (now) {
      now.kv.transferLeadership(ids.find((id) => id !== now.id && id !== starved)!);
      transfers++;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return transfers;
}

/** Copies of a request id in the log after its first, and those more than 4,096 entries later. */
function copiesInLog(node: InprocNode): { copies: number; late: number } {
  const first = new Map<string, number>();
  let copies = 0;
  let late = 0;
  const s = node.storage;
  for (const e of s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity)) {
    if (e.type !== "normal" || e.data.length === 0) continue;
    const id = decodeCommand(e.data).requestId;
    const at = first.get(id);
    if (at === undefined) first.set(id, e.index);
    else {
      copies++;
      if (e.index - at > 4096) late++;
    }
  }
  return { copies, late };
}

try {
  await c.waitLeader();
  const started = performance.now();
  const work = Array.from({ length: clients }, (_, n) => client(n));
  const disturber = disturb();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  stop = true;
  await Promise.all(work);
  const transfers = await disturber;
  const elapsed = (performance.now() - started) / 1000;
  const leader = await c.waitLeader();
  await leader.kv.write(put("done", "1"));
  const last = leader.kv.appliedIndex;
  await c.waitFor(() => [...c.nodes.values()].every((n) => n.kv.appliedIndex >= last), 10_000);
  let duplicates = 0;
  for (const node of c.nodes.values()) {
    const seen = new Set<string>();
    for (const { requestId } of node.sm.appliedLog) {
      if (seen.has(requestId)) duplicates++;
      seen.add(requestId);
    }
  }
  const applied = new Set(leader.sm.appliedLog.map((x) => x.requestId));
  const missing = [...acked].filter((id) => !applied.has(id)).length;
  const { copies, late } = copiesInLog(leader);
  const report = {
    seconds: Number(elapsed.toFixed(1)),
    window,
    acknowledged: acked.size,
    writes_per_s: Math.round(acked.size / elapsed),
    not_acknowledged: failed,
    leader_transfers: transfers,
    copies_in_log: copies,
    copies_after_4096_entries: late,
    remembered_ids: leader.sm.rememberedRequests(),
    duplicates_applied: duplicates,
    acknowledged_missing: missing,
  };
  console.log(JSON.stringify(report));
  if (duplicates > 0 || missing > 0) Deno.exitCode = 1;
} finally {
  stop = true;
  c.stopAll();
}
