// A randomized, seeded chaos run of the Raft core over the test harness: message loss,
// duplication and reordering, partitions, crash/restart, compaction (snapshots), membership
// changes, leadership transfers and ReadIndex, with safety checked after every delivery and
// convergence checked after healing. Deterministic per seed.
import { enc, Network, seededRand } from "./harness.ts";
import type { Message, NodeId } from "../../lib/raft/types.ts";

export interface ChaosResult {
  violation?: string;
  events: string[];
  committed: number;
}

export function runChaos(
  seed: number,
  opts: { steps?: number; trace?: boolean } = {},
): ChaosResult {
  const rand = seededRand(seed * 2654435761);
  const events: string[] = [];
  const trace = opts.trace ?? false;
  const logger = trace
    ? (ev: string, f: Record<string, unknown>) => events.push(`${ev} ${JSON.stringify(f)}`)
    : undefined;
  const voters = [1, 2, 3, 4, 5].slice(0, [1, 3, 5][rand(3)]);
  const learners = rand(2) ? [voters.length + 1] : [];
  const net = new Network(voters, {
    learners,
    config: { maxSizePerMsg: rand(2) ? 0 : 200, maxInflightMsgs: 1 + rand(4), logger },
  });
  let nextId = voters.length + learners.length + 1;
  const leaderOfTerm = new Map<number, NodeId>();
  const committed = new Map<number, string>();
  const down = new Set<NodeId>();
  let parts: Set<NodeId> | undefined;
  let propN = 0;
  const state = () =>
    [...net.nodes.values()].map((n) => {
      const r = n.rn.raft;
      return `${n.id}:${r.state}/t${r.term}/c${r.raftLog.committed}/l${r.raftLog.lastIndex()}/v${r.prs.voterIds()}`;
    }).join(" ");

  /** For each read request: the highest commit index any node knew when it was issued. */
  const readFloor = new Map<string, number>();
  const lastCommit = new Map<NodeId, number>();
  const check = (): string | undefined => {
    for (const n of net.nodes.values()) {
      const r = n.rn.raft;
      const prevCommit = lastCommit.get(n.id) ?? 0;
      if (r.raftLog.committed < prevCommit) {
        return `node ${n.id} commit index went back from ${prevCommit} to ${r.raftLog.committed}`;
      }
      lastCommit.set(n.id, r.raftLog.committed);
      for (const rs of n.readStates) {
        const key = new TextDecoder().decode(rs.requestCtx);
        const floor = readFloor.get(key);
        if (floor === undefined) return `read state for unknown request ${key}`;
        if (rs.index < floor) {
          return `stale read ${key} at node ${n.id}: index ${rs.index} < commit ${floor} known when issued`;
        }
      }
      n.readStates = [];
      if (r.state === "leader") {
        const p = leaderOfTerm.get(r.term);
        if (p !== undefined && p !== n.id) return `two leaders in term ${r.term}: ${p} and ${n.id}`;
        leaderOfTerm.set(r.term, n.id);
      }
      for (const e of n.committedLog) {
        const k = `${e.term}:${e.type}:${new TextDecoder().decode(e.data)}`;
        const prev = committed.get(e.index);
        if (prev !== undefined && prev !== k) {
          return `index ${e.index} applied as ${prev} and as ${k} (node ${n.id})`;
        }
        committed.set(e.index, k);
      }
      n.committedLog = [];
    }
  };

  const deliver = (chaos: boolean): string | undefined => {
    for (let steps = 0; steps < 5000; steps++) {
      let progressed = false;
      for (const n of net.nodes.values()) {
        if (down.has(n.id)) continue;
        // Sometimes deliver one queued message to the node between ready() and advance().
        const i = chaos && rand(4) === 0 ? net.queue.findIndex((m) => m.to === n.id) : -1;
        const between = i < 0 ? undefined : () => {
          const m = net.queue.splice(i, 1)[0];
          if (parts && parts.has(m.from) !== parts.has(m.to)) return;
          if (trace) events.push(`(while persisting) ${describe(m)}`);
          try {
            n.rn.step(m);
          } catch (e) {
            if (!(e instanceof Error && e.name === "RaftError")) throw e;
          }
        };
        progressed = net.processReady(n, between) || progressed;
      }
      if (net.queue.length === 0) {
        if (!progressed) return;
        continue;
      }
      const m = net.queue.splice(chaos ? rand(Math.min(net.queue.length, 4)) : 0, 1)[0];
      if (chaos && rand(100) < 10) continue; // lost
      if (chaos && rand(100) < 5) net.queue.push(structuredClone(m)); // duplicated
      if (down.has(m.to) || !net.nodes.has(m.to)) continue;
      if (parts && parts.has(m.from) !== parts.has(m.to)) continue;
      if (m.type === "MsgSnap" && !down.has(m.from)) {
        net.node(m.from).rn.reportSnapshot(m.to, "finish");
      }
      if (trace) events.push(describe(m));
      try {
        net.node(m.to).rn.step(m);
      } catch (e) {
        if (!(e instanceof Error && e.name === "RaftError")) throw e;
      }
      const v = check();
      if (v) return v;
    }
  };

  const tickAll = () => {
    for (const id of net.nodes.keys()) if (!down.has(id)) net.node(id).rn.tick();
  };

  try {
    for (let step = 0; step < (opts.steps ?? 400); step++) {
      const r = rand(100);
      const ids = [...net.nodes.keys()];
      const alive = ids.filter((id) => !down.has(id));
      if (trace) events.push(`--- step ${step} r=${r} down=[${[...down]}] ${state()}`);
      if (r < 5) parts = new Set(ids.filter(() => rand(2) === 0));
      else if (r < 9) parts = undefined;
      else if (alive.length === 0) { /* everyone is down */ }
      else if (r < 12) down.add(alive[rand(alive.length)]);
      else if (r < 16 && down.size > 0) {
        const id = [...down][rand(down.size)];
        down.delete(id);
        net.queue = net.queue.filter((m) => m.to !== id);
        net.restart(id);
      } else if (r < 20) {
        const n = net.node(alive[rand(alive.length)]);
        if (n.appliedIndex > n.storage.snapshot().metadata.index + 2) net.compact(n.id);
      } else if (r < 23) {
        const ls = net.leaders().filter((id) => !down.has(id));
        if (ls.length > 0) {
          const l = net.node(ls[0]);
          const c = rand(3);
          try {
            if (c === 0) {
              const id = nextId++;
              net.addEmptyNode(id);
              l.rn.proposeConfChange({ type: "addLearner", nodeId: id });
            } else if (c === 1 && l.confState.learners.length > 0) {
              l.rn.proposeConfChange({ type: "addNode", nodeId: l.confState.learners[0] });
            } else if (c === 2 && l.confState.voters.length > 1) {
              const vs = l.confState.voters;
              l.rn.proposeConfChange({ type: "removeNode", nodeId: vs[rand(vs.length)] });
            }
          } catch { /* dropped: retried by a later step */ }
        }
      } else if (r < 25) {
        const ls = net.leaders().filter((id) => !down.has(id));
        if (ls.length > 0) {
          const vs = net.node(ls[0]).confState.voters;
          net.node(ls[0]).rn.transferLeadership(vs[rand(vs.length)]);
        }
      } else if (r < 30) {
        const key = `read-${seed}-${step}`;
        readFloor.set(
          key,
          Math.max(...[...net.nodes.values()].map((n) => n.rn.raft.raftLog.committed)),
        );
        net.node(alive[rand(alive.length)]).rn.readIndex(enc(key));
      } else if (r < 60) {
        try {
          net.node(alive[rand(alive.length)]).rn.propose(enc(`p${propN++}`));
        } catch { /* dropped */ }
      }
      tickAll();
      const v = deliver(true);
      if (v) return { violation: `step ${step}: ${v}`, events, committed: committed.size };
    }
    // Heal everything: a leader must emerge and every member must converge.
    parts = undefined;
    for (const id of [...down]) {
      down.delete(id);
      net.restart(id);
    }
    if (trace) events.push(`=== heal ${state()}`);
    for (let t = 0; t < 200; t++) {
      tickAll();
      const v = deliver(false);
      if (v) return { violation: `heal: ${v}`, events, committed: committed.size };
    }
    const ls = net.leaders();
    if (ls.length !== 1) {
      return { violation: `after healing, leaders [${ls}]`, events, committed: committed.size };
    }
    const leader = net.node(ls[0]);
    leader.rn.propose(enc("final"));
    for (let t = 0; t < 50; t++) {
      tickAll();
      deliver(false);
    }
    if (leader.applied.at(-1) !== "final") {
      return { violation: "the final proposal was not applied", events, committed: committed.size };
    }
    for (const id of [...leader.confState.voters, ...leader.confState.learners]) {
      const n = net.node(id);
      if (JSON.stringify(n.applied) !== JSON.stringify(leader.applied)) {
        return {
          violation:
            `member ${id} did not converge (${n.applied.length} vs ${leader.applied.length} applied)`,
          events,
          committed: committed.size,
        };
      }
    }
    return { events, committed: committed.size };
  } catch (e) {
    return { violation: `exception: ${(e as Error).stack}`, events, committed: committed.size };
  }
}

function describe(m: Message): string {
  const ents = m.entries.map((e) => `${e.index}:${e.term}`).join(",");
  const snap = m.snapshot ? ` snap@${m.snapshot.metadata.index}` : "";
  return `deliver ${m.type} ${m.from}->${m.to} t${m.term} i${m.index} lt${m.logTerm} c${m.commit}` +
    `${m.reject ? ` reject hint ${m.rejectHint}` : ""} [${ents}]${snap}`;
}

// `deno run -A tests/raft/chaos.ts FROM COUNT` runs seeds; with COUNT 1 prints the trace on failure.
if (import.meta.main) {
  const from = Number(Deno.args[0] ?? 1);
  const count = Number(Deno.args[1] ?? 100);
  let bad = 0;
  for (let s = from; s < from + count; s++) {
    const r = runChaos(s, { trace: count === 1 });
    if (r.violation) {
      bad++;
      console.log(`seed ${s}: ${r.violation}`);
      if (count === 1) console.log(r.events.join("\n"));
    }
    if ((s - from + 1) % 1000 === 0) console.log(`... ${s - from + 1} seeds, ${bad} violations`);
  }
  console.log(`seeds: ${count}, violations: ${bad}`);
}
