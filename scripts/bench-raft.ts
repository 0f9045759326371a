// `deno task bench`: throughput of the Raft core alone — a 3-node cluster in one process, no
// disk and no sockets (messages are handed over in memory) — committing 256-byte proposals with
// 1 and with 64 concurrent proposers (each waits until its entry is applied before proposing the
// next), and the simulator's speed in events per second.
import { parseArgs } from "node:util";
import { bootstrap, MemoryStorage, type Message, RawNode, type Ready } from "../lib/raft/mod.ts";
import { Prng, runSimulation } from "../lib/sim/mod.ts";

interface Member {
  id: number;
  raw: RawNode;
  storage: MemoryStorage;
  applied: number;
}

function makeCluster(): Member[] {
  const prng = new Prng(1);
  const conf = { voters: [1, 2, 3], learners: [] };
  return conf.voters.map((id) => {
    const storage = new MemoryStorage();
    bootstrap(storage, conf);
    const raw = new RawNode({
      id,
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      applied: 1,
      rand: (n) => prng.int(n),
    });
    return { id, raw, storage, applied: 1 };
  });
}

/** Handles every Ready of every member once; returns messages to deliver and applied payloads. */
function drain(members: Member[], onApply: (m: Member, data: Uint8Array) => void): Message[] {
  const out: Message[] = [];
  for (const m of members) {
    while (m.raw.hasReady()) {
      const rd: Ready = m.raw.ready();
      if (rd.snapshot) m.storage.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) m.storage.append(rd.entries);
      if (rd.hardState) m.storage.setHardState(rd.hardState);
      for (const msg of rd.messages) out.push(msg);
      for (const e of rd.committedEntries) {
        m.applied = e.index;
        if (e.type === "normal" && e.data.length > 0) onApply(m, e.data);
      }
      m.raw.advance(rd);
      // Keep memory bounded: compact every 10k applied entries.
      const snapIndex = m.storage.snapshot().metadata.index;
      if (m.applied - snapIndex >= 10_000) {
        m.storage.createSnapshot(m.applied, { voters: [1, 2, 3], learners: [] }, new Uint8Array());
        m.storage.compact(m.applied - 1000);
      }
    }
  }
  return out;
}

function deliver(members: Member[], msgs: Message[]): void {
  for (const msg of msgs) members[msg.to - 1].raw.step(msg);
}

function electLeader(members: Member[]): Member {
  members[0].raw.campaign();
  for (let i = 0; i < 100; i++) {
    deliver(members, drain(members, () => {}));
    if (members[0].raw.basicStatus().softState.role === "leader") {
      // Let the leader's empty entry commit everywhere.
      for (let j = 0; j < 10; j++) deliver(members, drain(members, () => {}));
      return members[0];
    }
  }
  throw new Error("bench: node 1 did not become leader");
}

function proposalThroughput(
  proposers: number,
  seconds: number,
): { perSecond: number; entries: number } {
  const members = makeCluster();
  const leader = electLeader(members);
  const idle: number[] = [];
  for (let p = 0; p < proposers; p++) idle.push(p);
  let committed = 0;
  const onApply = (m: Member, data: Uint8Array) => {
    if (m !== leader) return;
    committed++;
    idle.push(data[0] | (data[1] << 8));
  };
  const began = performance.now();
  const deadline = began + seconds * 1000;
  let loops = 0;
  while ((loops++ & 63) !== 0 || performance.now() < deadline) {
    while (idle.length > 0) {
      const p = idle.pop()!;
      const data = new Uint8Array(256);
      data[0] = p & 0xff;
      data[1] = p >> 8;
      leader.raw.propose(data);
    }
    deliver(members, drain(members, onApply));
  }
  const secs = (performance.now() - began) / 1000;
  return { perSecond: committed / secs, entries: committed };
}

function simulatorSpeed(seeds: number): { eventsPerSecond: number; seedsPerSecond: number } {
  for (let seed = 1; seed <= 20; seed++) runSimulation({ seed }); // warm up the JIT
  let events = 0;
  const began = performance.now();
  for (let seed = 1; seed <= seeds; seed++) events += runSimulation({ seed }).stats.events;
  const secs = (performance.now() - began) / 1000;
  return { eventsPerSecond: events / secs, seedsPerSecond: seeds / secs };
}

const { values } = parseArgs({
  args: Deno.args,
  options: { seconds: { type: "string", default: "3" }, seeds: { type: "string", default: "300" } },
});
const seconds = Number(values.seconds), seeds = Number(values.seeds);
if (!(seconds > 0) || !(seeds >= 1)) {
  console.error("bench: --seconds must be > 0 and --seeds >= 1");
  Deno.exit(2);
}
const one = proposalThroughput(1, seconds);
const many = proposalThroughput(64, seconds);
const sim = simulatorSpeed(seeds);
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
console.log("| Raft core, 3 nodes in memory, 256-byte entries | result |");
console.log("|---|---|");
console.log(`| 1 proposer (waits for apply) | ${fmt(one.perSecond)} entries/s |`);
console.log(`| 64 concurrent proposers | ${fmt(many.perSecond)} entries/s |`);
console.log(
  `| simulator (${seeds} seeds) | ${fmt(sim.eventsPerSecond)} events/s, ${
    sim.seedsPerSecond.toFixed(0)
  } seeds/s |`,
);
