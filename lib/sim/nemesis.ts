// The nemesis: the faults injected during the chaos phase, each drawn by per-seed weights —
// partitions (one node, random halves, one-way, asymmetric, bridges), crashes, frozen processes,
// link faults, membership changes, leadership transfers, forced campaigns, stalled clocks.
import type { ConfChange, ConfState, NodeId } from "../raft/mod.ts";
import { RaftError } from "../raft/mod.ts";
import { CALM, type LinkFaults, type SimNetwork } from "./network.ts";
import type { Prng } from "./prng.ts";
import type { SimNode } from "./sim_node.ts";
import type { SimStats } from "./simulation.ts";
import type { Trace } from "./trace.ts";

/** What the nemesis acts on: the simulation's world and its scheduling. */
export interface FaultTarget {
  readonly now: number;
  readonly prng: Prng;
  readonly trace: Trace;
  readonly network: SimNetwork;
  readonly stats: SimStats;
  readonly electionMs: number;
  /** The latest applied configuration. */
  readonly conf: ConfState;
  /** Members of `conf` that were not stopped. */
  memberIds(): NodeId[];
  node(id: NodeId): SimNode;
  /** The up node that leads in the highest term, if any. */
  currentLeader(): SimNode | null;
  crash(node: SimNode, restartAfter: number): void;
  /** Schedules the release of a frozen node's held events at its frozenUntil. */
  thawAt(node: SimNode): void;
  /** Schedules healing the current cuts (unless newer cuts replace them first). */
  healLinksAfter(ms: number): void;
  /** The id the next new member gets (ids are never reused). */
  nextNodeId(): NodeId;
  /** Creates and starts an empty node with that id (consuming it). */
  addMember(id: NodeId): void;
}

export class Nemesis {
  constructor(
    readonly weights: number[],
    private readonly w: FaultTarget,
    private readonly removeLeaderOfTwo = true,
  ) {}

  /** One fault, drawn by the weights. */
  act(): void {
    const w = this.w;
    const p = w.prng;
    const total = this.weights.reduce((a, b) => a + b, 0);
    if (total === 0) return;
    let r = p.int(total);
    let action = 0;
    while (r >= this.weights[action]) r -= this.weights[action++];
    w.trace.mix(10, action);
    const up = w.memberIds().filter((id) => w.node(id)!.isUp);
    const leader = w.currentLeader();
    switch (action) {
      case 0:
        this.#partition(leader);
        break;
      case 1: {
        if (up.length === 0) break;
        const victim = leader !== null && p.chance(0.4) ? leader.id : p.pick(up);
        w.crash(w.node(victim)!, p.range(5, 400));
        break;
      }
      case 2: {
        if (up.length === 0) break;
        const victim = leader !== null && p.chance(0.4) ? leader.id : p.pick(up);
        const node = w.node(victim)!;
        node.frozenUntil = Math.max(node.frozenUntil, w.now + p.range(10, 4 * w.electionMs));
        w.stats.freezes++;
        w.thawAt(node);
        w.trace.log(w.now, () => `freeze node ${victim} until ${node.frozenUntil}`);
        break;
      }
      case 3:
        this.#linkFaults();
        break;
      case 4:
        this.#membership(leader);
        break;
      case 5:
        this.#transfer(leader);
        break;
      case 6: {
        const cand = up.filter((id) => w.conf.voters.includes(id));
        if (cand.length === 0) break;
        const node = w.node(p.pick(cand))!;
        if (node.frozenUntil > w.now || node.held !== null) break;
        w.trace.log(w.now, () => `node ${node.id} campaigns`);
        node.raw!.campaign();
        node.pump();
        break;
      }
      case 7:
        this.#stallClock(up, leader);
        break;
      case 8:
        w.network.healAll();
        w.network.faults = CALM;
        w.trace.log(w.now, () => `links healed and calm`);
        break;
    }
  }

  /** New fault settings for every link, from calm to lossy and slow. */
  #linkFaults(): void {
    const w = this.w;
    const p = w.prng;
    const f: LinkFaults = p.pick([
      CALM,
      { ...CALM, dropRate: 0.05 + 0.25 * p.float() },
      { ...CALM, duplicateRate: 0.1 + 0.3 * p.float() },
      { ...CALM, maxDelay: 30, spikeRate: 0.1, spikeMax: 3 * w.electionMs },
      {
        dropRate: 0.1,
        duplicateRate: 0.1,
        minDelay: 1,
        maxDelay: 20,
        spikeRate: 0.05,
        spikeMax: 200,
      },
    ]);
    w.network.faults = f;
    w.trace.log(w.now, () => `link faults ${JSON.stringify(f)}`);
  }

  #transfer(leader: SimNode | null): void {
    const w = this.w;
    const p = w.prng;
    if (leader === null) return;
    const others = w.conf.voters.filter((v) => v !== leader.id);
    if (others.length === 0) return;
    const to = p.pick(others);
    w.stats.transfers++;
    w.trace.log(w.now, () => `transfer leadership ${leader.id} -> ${to}`);
    if (leader.frozenUntil <= w.now && leader.held === null) {
      leader.raw!.transferLeadership(to);
      leader.pump();
    }
  }

  #stallClock(up: NodeId[], leader: SimNode | null): void {
    const w = this.w;
    const p = w.prng;
    // A stalled clock: the node keeps handling messages but its ticks stop, so timeouts
    // (CheckQuorum, elections) do not fire. Often the leader, often also cut off: a leader
    // that cannot notice it was deposed — safe Raft must not rely on its clock.
    if (up.length === 0) return;
    const victim = leader !== null && p.chance(0.6) ? leader.id : p.pick(up);
    const node = w.node(victim)!;
    const stall = p.range(50, 10 * w.electionMs);
    w.stats.clockStalls++;
    node.clockStalledUntil = Math.max(node.clockStalledUntil, w.now + stall);
    w.trace.log(
      w.now,
      () => `clock of node ${victim} stalls until ${node.clockStalledUntil}`,
    );
    const r = p.int(3);
    if (r === 0) this.isolate(node, p.range(stall >> 1, stall));
    else if (r === 1) this.minority(node, p.range(stall >> 1, stall));
  }

  /** Cuts `node` off from every other member for `healAfter` ms. */
  isolate(node: SimNode, healAfter: number): void {
    const w = this.w;
    w.network.healAll();
    w.network.partition([[node.id], w.memberIds().filter((id) => id !== node.id)]);
    w.stats.partitions++;
    w.trace.log(w.now, () => `isolate node ${node.id} for ${healAfter} ms`);
    w.healLinksAfter(healAfter);
  }

  /** Cuts `node` and a minority of the others away from the majority. */
  minority(node: SimNode, healAfter: number): void {
    const w = this.w;
    const others = w.memberIds().filter((id) => id !== node.id);
    const max = Math.max(1, Math.floor((w.conf.voters.length - 1) / 2));
    const side = [node.id];
    for (const id of others) if (side.length < max && w.prng.chance(0.5)) side.push(id);
    w.network.healAll();
    w.network.partition([side, others.filter((id) => !side.includes(id))]);
    w.stats.partitions++;
    w.trace.log(w.now, () => `partition: minority ${side} for ${healAfter} ms`);
    w.healLinksAfter(healAfter);
  }

  #partition(leader: SimNode | null): void {
    const w = this.w;
    const p = w.prng;
    const ids = w.memberIds();
    if (ids.length < 2) return;
    w.network.healAll();
    const kind = p.int(5);
    const focus = leader !== null && p.chance(0.5) ? leader.id : p.pick(ids);
    const others = ids.filter((id) => id !== focus);
    switch (kind) {
      case 0: // isolate one node (often the leader)
        w.network.partition([[focus], others]);
        break;
      case 1: { // split into two random groups
        const a: NodeId[] = [], b: NodeId[] = [];
        for (const id of ids) (p.chance(0.5) ? a : b).push(id);
        w.network.partition([a, b]);
        break;
      }
      case 2: // one way: the focus node can hear but not speak (or the reverse)
        for (const o of others) {
          p.chance(0.5) ? w.network.cut(focus, o) : w.network.cut(o, focus);
        }
        break;
      case 3: // asymmetric: random directed links cut
        for (const a of ids) {
          for (const b of ids) if (a !== b && p.chance(0.3)) w.network.cut(a, b);
        }
        break;
      case 4: { // a bridge: the focus node sees both halves, the halves do not see each other
        const a: NodeId[] = [], b: NodeId[] = [];
        for (const id of others) (p.chance(0.5) ? a : b).push(id);
        for (const x of a) {
          for (const y of b) {
            w.network.cut(x, y);
            w.network.cut(y, x);
          }
        }
        break;
      }
    }
    w.stats.partitions++;
    w.trace.log(
      w.now,
      () => `partition kind ${kind} focus ${focus}: cut ${w.network.describeCuts()}`,
    );
    w.healLinksAfter(p.range(20, 6 * w.electionMs));
  }

  #membership(leader: SimNode | null): void {
    const w = this.w;
    if (leader === null || leader.frozenUntil > w.now || leader.held !== null) return;
    const p = w.prng;
    const { voters, learners } = w.conf;
    const options: ConfChange[] = [];
    const nextId = w.nextNodeId();
    const size = voters.length + learners.length;
    if (size < 7) {
      options.push({ type: "addLearner", nodeId: nextId });
      options.push({ type: "addNode", nodeId: nextId });
    }
    for (const l of learners) {
      options.push({ type: "addNode", nodeId: l }, { type: "removeNode", nodeId: l });
    }
    // Any voter may be removed, down to one voter, including the leader of a two-voter cluster:
    // the survivor can miss that the removal committed (it crashed first), so the removed leader
    // must keep leading the new configuration until the survivor takes over (lib/raft/README.md).
    // `removeLeaderOfTwo: false` leaves that case out, to tell it apart when bisecting a failure.
    for (const v of voters) {
      if (
        voters.length > 2 || (voters.length === 2 && (v !== leader.id || this.removeLeaderOfTwo))
      ) {
        options.push({ type: "removeNode", nodeId: v });
      }
    }
    if (voters.length > 3) options.push({ type: "removeNode", nodeId: p.pick(voters) });
    const cc = p.pick(options);
    if (cc.nodeId === nextId) w.addMember(nextId);
    w.trace.log(
      w.now,
      () => `propose conf change ${cc.type} ${cc.nodeId} at leader ${leader.id}`,
    );
    try {
      leader.raw!.proposeConfChange(cc);
    } catch (e) {
      if (!(e instanceof RaftError)) throw e;
    }
    leader.pump();
  }
}
