// The deterministic cluster simulation: one seeded PRNG drives the network, the faults, the
// nodes' randomized timeouts and the clients. Phases: chaos (faults + workload), heal (all
// faults removed, crashed nodes restarted), then the liveness checks (a leader within three
// election timeouts, every client operation finished, all replicas converged) and finally the
// linearizability check of the client history. Invariants are checked as events happen.
import {
  bootstrap,
  type ConfChange,
  type ConfState,
  type Message,
  type NodeId,
} from "../raft/mod.ts";
import { checkLinearizable } from "../linearizability/checker.ts";
import { kvModel, type KvOutput } from "../linearizability/kv_model.ts";
import { EventQueue } from "./event_queue.ts";
import { encodeCommand } from "./kv_state_machine.ts";
import { CALM, SimNetwork } from "./network.ts";
import { type FaultTarget, Nemesis } from "./nemesis.ts";
import { Prng } from "./prng.ts";
import { SafetyMonitor, SimViolation } from "./safety.ts";
import { type AppBug, type NodeHost, type NodeTuning, SimNode } from "./sim_node.ts";
import { hashBytes, Trace } from "./trace.ts";
import { type KvHistory, nextInput, observe, SimClient, type WorkloadMix } from "./workload.ts";

export interface SimOptions {
  seed: number;
  verbose?: boolean;
  /** Length of the chaos phase in simulated ms (default: 1500–3000, from the seed). */
  chaosMs?: number;
  /** Inject a deliberate application bug (to test the checks themselves). */
  appBug?: AppBug;
  /** "all" (default) or only the end-to-end checks (no white-box checks of the leader). */
  checks?: "all" | "end-to-end";
  /** Pin scenario parameters instead of drawing them from the seed (the draws still happen). */
  overrides?: Partial<SimOverrides>;
  /**
   * Run every node with asyncStorageWrites: writes complete in the background, in order, after
   * a random delay, and a crash loses the ones not yet complete (but a random prefix of them).
   */
  asyncWrites?: boolean;
}

export interface SimOverrides {
  voters: number;
  learners: number;
  maxSizePerMsg: number;
  maxInflightMsgs: number;
  leaderHazard: number;
  /** Also remove the leader of a two-voter cluster (on by default; see nemesis.ts). */
  removeLeaderOfTwo: boolean;
}

export interface SimStats {
  events: number;
  simulatedMs: number;
  voters: number;
  learners: number;
  messagesSent: number;
  messagesDropped: number;
  messagesDuplicated: number;
  messagesCut: number;
  messagesDelayed: number;
  crashes: number;
  freezes: number;
  clockStalls: number;
  leaderStrikes: number;
  partitions: number;
  confChangesApplied: number;
  snapshotsInstalled: number;
  transfers: number;
  leaderTerms: number;
  operations: number;
  retries: number;
  finalCommit: number;
  /** Asynchronous writes: writes issued but not yet synced that a crash lost. */
  unsyncedWritesLost: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violation?: { check: string; message: string; time: number };
  traceHash: string;
  stats: SimStats;
  /** The full trace (only when verbose). */
  trace?: string[];
  /** One line describing the scenario drawn for this seed. */
  scenario: string;
}

type SimEvent =
  | { k: "tick"; node: NodeId; inc: number }
  | { k: "msg"; m: Message }
  | { k: "sync"; node: NodeId; inc: number }
  | { k: "snapReport"; node: NodeId; inc: number; to: NodeId; ok: boolean }
  | { k: "req"; node: NodeId; client: number; seq: number; attempt: number }
  | { k: "resp"; client: number; seq: number; output: KvOutput | null; from: NodeId }
  | { k: "timeout"; client: number; seq: number; attempt: number }
  | { k: "issue"; client: number }
  | { k: "nemesis" }
  | { k: "restart"; node: NodeId; inc: number }
  | { k: "healLinks"; epoch: number }
  | { k: "heal" }
  | { k: "leaderDeadline" }
  | { k: "probe" }
  | { k: "thaw"; node: NodeId }
  | { k: "strike"; node: NodeId; inc: number };

const TICK_MS = 10;
/** The chain hash of the bootstrap snapshot's index 1, shared by all initial members. */
const BOOTSTRAP_CHAIN = 0x5eed;

export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

class Simulation implements NodeHost, FaultTarget {
  now = 0;
  readonly prng: Prng;
  readonly monitor = new SafetyMonitor();
  readonly trace: Trace;
  readonly tuning: NodeTuning;
  readonly appBug: AppBug | undefined;
  readonly whiteBox: boolean;
  readonly asyncWrites: boolean;
  readonly network: SimNetwork;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly clients: SimClient[] = [];
  readonly history: KvHistory = [];
  readonly acks: { index: number; chain: number }[] = [];
  readonly #events = new EventQueue<SimEvent>();
  /** Events held for frozen nodes, released in order when they thaw. */
  readonly #thawQueue = new Map<NodeId, SimEvent[]>();
  #nextId: number;
  #confIndex = 0;
  conf: ConfState;
  #chaosEnd: number;
  #healed = false;
  #linkEpoch = 0;
  /** Removed nodes keep running until every remaining member has durably committed and applied their removal. */
  #removals: { id: NodeId; index: number }[] = [];
  readonly mix: WorkloadMix;
  readonly nemesis: Nemesis;
  readonly scenario: string;
  readonly stats: SimStats;
  readonly attemptTimeout: number;
  readonly electionMs: number;
  /** Chance that a new leader is crashed or isolated right after winning (per seed). */
  readonly leaderHazard: number;
  #pendingOps = 0;

  constructor(readonly options: SimOptions) {
    this.prng = new Prng(options.seed);
    this.trace = new Trace(options.verbose ?? false);
    this.appBug = options.appBug;
    this.whiteBox = (options.checks ?? "all") === "all";
    this.asyncWrites = options.asyncWrites ?? false;
    this.network = new SimNetwork(this.prng);
    const p = this.prng;
    const o = options.overrides ?? {};
    const voters = pin(o.voters, p.pick([1, 3, 3, 3, 5, 5]));
    const learners = pin(o.learners, p.pick([0, 0, 1, 2]));
    this.tuning = {
      electionTick: 10,
      heartbeatTick: p.pick([1, 1, 2, 3]),
      maxSizePerMsg: pin(o.maxSizePerMsg, p.pick([0, 64, 256, 1 << 20])),
      maxInflightMsgs: pin(o.maxInflightMsgs, p.pick([1, 2, 4, 256])),
      compactEvery: p.range(2, 12),
      maxSyncDelay: p.range(0, 6),
    };
    this.electionMs = this.tuning.electionTick * TICK_MS;
    this.attemptTimeout = p.range(2, 4) * this.electionMs;
    this.mix = { keys: p.range(1, 3), put: 3, cas: 3, del: 1, get: p.pick([3, 6, 12]) };
    // Nemesis weights: partition, crash, freeze, link faults, membership, transfer, campaign,
    // clock stall, heal.
    const weights = [
      p.range(0, 6),
      p.range(0, 4),
      p.range(0, 4),
      p.range(0, 4),
      p.range(0, 4),
      p.range(0, 3),
      p.range(0, 1),
      p.range(0, 3),
      2,
    ];
    this.nemesis = new Nemesis(weights, this, o.removeLeaderOfTwo ?? true);
    this.#chaosEnd = options.chaosMs ?? p.range(1500, 3000);
    this.leaderHazard = pin(o.leaderHazard, p.pick([0, 0, 0.2, 0.5]));
    const initial: ConfState = { voters: [], learners: [] };
    for (let i = 1; i <= voters; i++) initial.voters.push(i);
    for (let i = 1; i <= learners; i++) initial.learners.push(voters + i);
    this.conf = initial;
    this.#nextId = voters + learners + 1;
    const clients = p.range(2, 5);
    this.scenario =
      `voters=${voters} learners=${learners} clients=${clients} keys=${this.mix.keys} chaos=${this.#chaosEnd}ms ` +
      `heartbeatTick=${this.tuning.heartbeatTick} maxSizePerMsg=${this.tuning.maxSizePerMsg} ` +
      `maxInflight=${this.tuning.maxInflightMsgs} compactEvery=${this.tuning.compactEvery} ` +
      `maxSync=${this.tuning.maxSyncDelay}ms nemesis=[${weights.join(",")}] ` +
      `leaderHazard=${this.leaderHazard} gets=${this.mix.get}/${this.mix.get + 7}` +
      (this.asyncWrites ? " asyncWrites" : "");
    this.stats = zeroStats(voters, learners);
    this.#boot(initial, clients);
    this.#events.schedule(p.range(50, 200), { k: "nemesis" });
    this.#events.schedule(this.#chaosEnd, { k: "heal" });
    this.trace.log(0, () => `scenario ${this.scenario}`);
  }

  /** Starts the initial members from one bootstrapped log, and the clients. */
  #boot(initial: ConfState, clients: number): void {
    const p = this.prng;
    this.monitor.committed.set(1, BOOTSTRAP_CHAIN);
    for (const id of [...initial.voters, ...initial.learners]) {
      const node = new SimNode(id, this);
      bootstrap(node.storage, initial);
      node.chain.set(1, BOOTSTRAP_CHAIN);
      node.chainBase = 1;
      node.chainLast = 1;
      node.durable = { ...node.storage.initialState().hardState };
      this.nodes.set(id, node);
      node.start();
      this.#events.schedule(p.range(1, TICK_MS), { k: "tick", node: id, inc: node.incarnation });
    }
    for (let c = 1; c <= clients; c++) {
      this.clients.push(new SimClient(c));
      this.#events.schedule(p.range(0, 50), { k: "issue", client: c });
    }
  }

  run(): SimResult {
    let violation: SimResult["violation"];
    const hardEnd = this.#chaosEnd + 200 * this.electionMs;
    try {
      for (;;) {
        const next = this.#events.pop();
        if (next === undefined) {
          throw new SimViolation("liveness", "the simulation ran out of events (bug)");
        }
        if (next.time > hardEnd) {
          throw new SimViolation("liveness", this.#stuckReport());
        }
        this.now = next.time;
        this.stats.events++;
        if (this.#handle(next.event)) break;
        if (this.#removals.length > 0) this.#applyRemovals();
      }
      this.#finalChecks();
    } catch (e) {
      if (!(e instanceof SimViolation)) {
        const msg = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e);
        violation = { check: "exception", message: msg, time: this.now };
      } else violation = { check: e.check, message: e.message, time: this.now };
      this.trace.log(this.now, () => `VIOLATION ${violation!.message}`);
    }
    const ns = this.network.stats;
    Object.assign(this.stats, {
      simulatedMs: this.now,
      messagesSent: ns.sent,
      messagesDropped: ns.dropped,
      messagesDuplicated: ns.duplicated,
      messagesCut: ns.cut,
      messagesDelayed: ns.delayed,
      leaderTerms: this.monitor.leaderOfTerm.size,
      finalCommit: this.monitor.maxCommitted,
      unsyncedWritesLost: [...this.nodes.values()].reduce((n, x) => n + x.writesLost, 0),
    });
    return {
      seed: this.options.seed,
      ok: violation === undefined,
      violation,
      traceHash: this.trace.hash(),
      stats: this.stats,
      trace: this.trace.lines ?? undefined,
      scenario: this.scenario,
    };
  }

  // ---- NodeHost ----

  send(m: Message): void {
    const delays = this.network.plan();
    if (delays.length === 0 && m.type === "MsgSnap") {
      const from = this.nodes.get(m.from)!;
      this.#events.schedule(this.now + 50, {
        k: "snapReport",
        node: m.from,
        inc: from.incarnation,
        to: m.to,
        ok: false,
      });
    }
    // Every copy is cloned: the core keeps references to entry objects it sends.
    for (const d of delays) this.#events.schedule(this.now + d, { k: "msg", m: cloneMessage(m) });
  }

  respond(from: NodeId, client: number, seq: number, output: KvOutput | null, ackIndex = 0): void {
    if (ackIndex > 0) {
      const node = this.nodes.get(from)!;
      this.acks.push({ index: ackIndex, chain: node.chain.get(ackIndex)! });
    }
    this.#events.schedule(this.now + this.prng.range(1, 5), {
      k: "resp",
      client,
      seq,
      output,
      from,
    });
  }

  scheduleSync(node: SimNode, delay: number): void {
    this.#events.schedule(this.now + delay, { k: "sync", node: node.id, inc: node.incarnation });
  }

  peer(id: NodeId): SimNode | undefined {
    return this.nodes.get(id);
  }

  becameLeader(node: SimNode, term: number): void {
    // Leader hazard: strike some new leaders soon after they win, before their first entries are
    // replicated — this is what makes old-term entries linger on minorities (Figure 8 shapes).
    if (this.#healed || !this.prng.chance(this.leaderHazard)) return;
    this.trace.log(this.now, () => `leader hazard armed for node ${node.id} (term ${term})`);
    this.#events.schedule(this.now + this.prng.range(0, 25), {
      k: "strike",
      node: node.id,
      inc: node.incarnation,
    });
  }

  confChangeApplied(node: SimNode, index: number, cc: ConfChange, cs: ConfState): void {
    if (index > this.#confIndex) {
      this.#confIndex = index;
      this.conf = cs;
      this.stats.confChangesApplied++;
      this.trace.log(
        this.now,
        () =>
          `conf change ${cc.type} ${cc.nodeId} applied at ${index} -> voters ${cs.voters} learners ${cs.learners}`,
      );
      if (cc.type === "removeNode") this.#removals.push({ id: cc.nodeId, index });
    }
    void node;
  }

  // ---- events ----

  /** Returns true when the run is complete. */
  #handle(ev: SimEvent): boolean {
    const t = this.trace;
    switch (ev.k) {
      case "tick":
        this.#onTick(ev);
        return false;
      case "msg":
        this.#onMessage(ev);
        return false;
      case "sync":
        this.#onSync(ev);
        return false;
      case "snapReport":
        this.#onSnapReport(ev);
        return false;
      case "req":
        return this.#request(ev);
      case "resp":
        return this.#response(ev.client, ev.seq, ev.output, ev.from);
      case "timeout":
        this.#onTimeout(ev);
        return false;
      case "issue":
        this.#issue(this.clients[ev.client - 1]);
        return false;
      case "nemesis":
        if (!this.#healed) {
          this.nemesis.act();
          this.#events.schedule(this.now + this.prng.range(10, 150), ev);
        }
        return false;
      case "restart": {
        const node = this.nodes.get(ev.node)!;
        if (node.incarnation !== ev.inc || node.state !== "crashed") return false;
        this.#restart(node);
        return false;
      }
      case "healLinks":
        if (ev.epoch === this.#linkEpoch && !this.#healed) {
          t.mix(9, ev.epoch);
          t.log(this.now, () => `partition healed`);
          this.network.healAll();
        }
        return false;
      case "heal":
        this.#heal();
        return false;
      case "leaderDeadline": {
        if (this.currentLeader() === null) {
          throw new SimViolation(
            "liveness",
            `no leader within 3 election timeouts (${
              3 * 2 * this.electionMs
            } ms) after healing; ${this.#stuckReport()}`,
          );
        }
        return false;
      }
      case "strike":
        this.#onStrike(ev);
        return false;
      case "thaw":
        this.#onThaw(ev);
        return false;
      case "probe":
        if (this.#pendingOps === 0 && this.#converged()) return true;
        this.#events.schedule(this.now + 20, ev);
        return false;
    }
  }

  #onTimeout(ev: Extract<SimEvent, { k: "timeout" }>): void {
    const t = this.trace;
    const c = this.clients[ev.client - 1];
    if (c.current === null || c.current.seq !== ev.seq || c.current.attempt !== ev.attempt) {
      return;
    }
    t.mix(7, ev.client, ev.seq, ev.attempt);
    t.log(this.now, () => `client ${ev.client} op ${ev.seq} attempt ${ev.attempt} timed out`);
    this.#retry(c, 0);
  }

  #onTick(ev: Extract<SimEvent, { k: "tick" }>): void {
    const t = this.trace;
    const node = this.nodes.get(ev.node)!;
    if (node.incarnation !== ev.inc || !node.isUp) return;
    this.#events.schedule(this.now + TICK_MS, ev);
    if (
      node.frozenUntil > this.now || node.held !== null || node.clockStalledUntil > this.now
    ) {
      return;
    }
    t.mix(1, ev.node);
    node.tick();
  }

  #onMessage(ev: Extract<SimEvent, { k: "msg" }>): void {
    const t = this.trace;
    const m = ev.m;
    const to = this.nodes.get(m.to);
    t.mix(2, m.from, m.to, msgCode(m.type), m.term, m.index, m.entries.length);
    if (to === undefined || !to.isUp || this.network.isCut(m.from, m.to)) {
      if (this.network.isCut(m.from, m.to)) this.network.stats.cut++;
      if (m.type === "MsgSnap") this.#snapReport(m.from, m.to, false);
      t.log(this.now, () => `drop ${describeMessage(m)}`);
      return;
    }
    if (this.#deferIfBusy(to, ev)) return;
    t.log(this.now, () => `deliver ${describeMessage(m)}`);
    this.network.stats.delivered++;
    if (m.type === "MsgSnap") this.stats.snapshotsInstalled++;
    to.step(m);
    if (m.type === "MsgSnap") this.#snapReport(m.from, m.to, true);
  }

  #onSync(ev: Extract<SimEvent, { k: "sync" }>): void {
    const t = this.trace;
    const node = this.nodes.get(ev.node)!;
    if (node.incarnation !== ev.inc || !node.writing) return;
    if (node.frozenUntil > this.now) {
      this.#queueUntilThaw(node, ev);
      return;
    }
    t.mix(3, ev.node);
    t.log(this.now, () => `node ${ev.node} synced ${describeReady(node)}`);
    node.synced();
  }

  #onSnapReport(ev: Extract<SimEvent, { k: "snapReport" }>): void {
    const t = this.trace;
    const node = this.nodes.get(ev.node)!;
    if (node.incarnation !== ev.inc || !node.isUp) return;
    if (this.#deferIfBusy(node, ev)) return;
    t.mix(4, ev.node, ev.to, ev.ok ? 1 : 0);
    node.raw!.reportSnapshot(ev.to, ev.ok ? "finish" : "failure");
    node.pump();
  }

  #onStrike(ev: Extract<SimEvent, { k: "strike" }>): void {
    const node = this.nodes.get(ev.node)!;
    if (this.#healed || node.incarnation !== ev.inc || !node.isUp) return;
    this.trace.mix(12, ev.node);
    this.stats.leaderStrikes++;
    if (this.prng.chance(0.5)) this.crash(node, this.prng.range(20, 300));
    else this.nemesis.isolate(node, this.prng.range(30, 300));
  }

  #onThaw(ev: Extract<SimEvent, { k: "thaw" }>): void {
    const node = this.nodes.get(ev.node)!;
    const held = this.#thawQueue.get(ev.node);
    if (node.frozenUntil > this.now || held === undefined) return;
    this.#thawQueue.delete(ev.node);
    for (const e of held) this.#events.schedule(this.now, e);
  }

  /** Holds an event for a frozen node until it thaws, or retries it while the node is syncing. */
  #deferIfBusy(node: SimNode, ev: SimEvent): boolean {
    if (node.frozenUntil > this.now) {
      this.#queueUntilThaw(node, ev);
      return true;
    }
    if (node.held !== null) {
      this.#events.schedule(this.now + 1, ev);
      return true;
    }
    return false;
  }

  #queueUntilThaw(node: SimNode, ev: SimEvent): void {
    let q = this.#thawQueue.get(node.id);
    if (q === undefined) this.#thawQueue.set(node.id, q = []);
    q.push(ev);
  }

  #snapReport(from: NodeId, to: NodeId, ok: boolean): void {
    const sender = this.nodes.get(from);
    if (sender === undefined || !sender.isUp) return;
    this.#events.schedule(this.now + 1, {
      k: "snapReport",
      node: from,
      inc: sender.incarnation,
      to,
      ok,
    });
  }

  // ---- clients ----

  #issue(c: SimClient): void {
    if (this.#healed) return;
    const seq = ++c.seq;
    const input = nextInput(this.prng, c, this.mix, seq);
    const historyIndex = this.history.length;
    this.history.push({
      clientId: c.id,
      input,
      call: this.now,
      return: Infinity,
      output: undefined,
    });
    this.#pendingOps++;
    this.stats.operations++;
    c.current = { seq, input, historyIndex, attempt: 0, target: 0 };
    this.trace.mix(5, c.id, seq);
    this.#send(c);
  }

  #send(c: SimClient): void {
    const op = c.current!;
    op.attempt++;
    const members = this.memberIds();
    // A first attempt usually goes to the node that answered last (clients stick to an
    // endpoint, so one attached to a deposed leader keeps asking it); retries go elsewhere.
    let target = this.prng.pick(members);
    if (op.attempt === 1 && members.includes(c.preferred) && this.prng.chance(0.8)) {
      target = c.preferred;
    } else if (target === op.target && members.length > 1) target = this.prng.pick(members);
    op.target = target;
    this.trace.log(
      this.now,
      () =>
        `client ${c.id} op ${op.seq} attempt ${op.attempt} ${
          kvModel.describe(op.input, undefined)
        } -> node ${target}`,
    );
    this.#events.schedule(this.now + this.prng.range(1, 5), {
      k: "req",
      node: target,
      client: c.id,
      seq: op.seq,
      attempt: op.attempt,
    });
    this.#events.schedule(this.now + this.attemptTimeout, {
      k: "timeout",
      client: c.id,
      seq: op.seq,
      attempt: op.attempt,
    });
  }

  /** Re-sends the current operation through a node picked after `backoff` ms. */
  #retry(c: SimClient, backoff: number): void {
    c.retries++;
    this.stats.retries++;
    const op = c.current!;
    op.attempt++; // the running attempt's timeout no longer matches
    this.#events.schedule(this.now + backoff, {
      k: "req",
      node: 0,
      client: c.id,
      seq: op.seq,
      attempt: op.attempt,
    });
  }

  #request(ev: { node: NodeId; client: number; seq: number; attempt: number }): boolean {
    const c = this.clients[ev.client - 1];
    if (c.current === null || c.current.seq !== ev.seq) return false;
    if (ev.node === 0) {
      // A backed-off retry: pick a node now.
      if (c.current.attempt !== ev.attempt) return false;
      this.#send(c);
      return false;
    }
    const node = this.nodes.get(ev.node);
    if (node === undefined || !node.isUp) return false; // lost; the client will time out
    if (this.#deferIfBusy(node, { k: "req", ...ev })) return false;
    this.trace.mix(6, ev.node, ev.client, ev.seq, ev.attempt);
    const input = c.current.input;
    if (input.op === "get") node.submitRead(ev.client, ev.seq, ev.attempt, input.key);
    else {node.submitWrite(
        ev.client,
        ev.seq,
        encodeCommand({ client: ev.client, seq: ev.seq, input }),
      );}
    return false;
  }

  #response(client: number, seq: number, output: KvOutput | null, from: NodeId): boolean {
    const c = this.clients[client - 1];
    const op = c.current;
    if (op === null || op.seq !== seq) return false;
    this.trace.mix(8, client, seq, output === null ? 0 : 1);
    if (output === null) {
      this.trace.log(this.now, () => `client ${client} op ${seq} refused; retrying`);
      this.#retry(c, this.prng.range(5, 30));
      return false;
    }
    const h = this.history[op.historyIndex];
    h.return = this.now;
    h.output = output;
    this.trace.log(
      this.now,
      () => `client ${client} op ${seq} done: ${kvModel.describe(op.input, output)}`,
    );
    observe(c, op.input, output);
    c.preferred = from;
    c.current = null;
    this.#pendingOps--;
    if (!this.#healed) {
      this.#events.schedule(this.now + this.prng.range(0, 20), { k: "issue", client });
    }
    return false;
  }

  // ---- faults ----

  node(id: NodeId): SimNode {
    return this.nodes.get(id)!;
  }

  thawAt(node: SimNode): void {
    this.#events.schedule(node.frozenUntil, { k: "thaw", node: node.id });
  }

  healLinksAfter(ms: number): void {
    const epoch = ++this.#linkEpoch;
    this.#events.schedule(this.now + ms, { k: "healLinks", epoch });
  }

  nextNodeId(): NodeId {
    return this.#nextId;
  }

  addMember(id: NodeId): void {
    this.#nextId = id + 1;
    const node = new SimNode(id, this);
    this.nodes.set(id, node);
    node.start();
    this.#events.schedule(this.now + this.prng.range(1, TICK_MS), {
      k: "tick",
      node: id,
      inc: node.incarnation,
    });
  }

  crash(node: SimNode, restartAfter: number): void {
    node.crash();
    this.stats.crashes++;
    this.trace.log(
      this.now,
      () => `crash node ${node.id} (${node.role}); restart in ${restartAfter} ms`,
    );
    this.#events.schedule(this.now + restartAfter, {
      k: "restart",
      node: node.id,
      inc: node.incarnation,
    });
  }

  #restart(node: SimNode): void {
    this.trace.mix(11, node.id);
    this.trace.log(
      this.now,
      () =>
        `restart node ${node.id} (durable term ${node.durable.term} vote ${node.durable.vote} commit ${node.durable.commit})`,
    );
    node.start();
    this.#events.schedule(this.now + this.prng.range(1, TICK_MS), {
      k: "tick",
      node: node.id,
      inc: node.incarnation,
    });
    node.pump();
  }

  #applyRemovals(): void {
    const members = this.memberIds();
    this.#removals = this.#removals.filter(({ id, index }) => {
      // Durably: a member that restarts with an older commit would still count the removed node.
      for (const m of members) {
        const n = this.nodes.get(m)!;
        if (n.applied < index || n.durable.commit < index) return true;
      }
      const node = this.nodes.get(id);
      if (node === undefined || node.state === "removed") return false;
      this.trace.log(this.now, () => `node ${id} removed and stopped`);
      node.remove();
      return false;
    });
  }

  #heal(): void {
    this.#healed = true;
    this.network.healAll();
    this.network.faults = CALM;
    for (const node of this.nodes.values()) {
      node.frozenUntil = Math.min(node.frozenUntil, this.now);
      node.clockStalledUntil = Math.min(node.clockStalledUntil, this.now);
      this.#events.schedule(this.now, { k: "thaw", node: node.id });
      if (node.state === "crashed") this.#restart(node);
    }
    this.trace.log(
      this.now,
      () => `HEAL: all faults removed; pending client ops ${this.#pendingOps}`,
    );
    this.#events.schedule(this.now + 3 * 2 * this.electionMs, { k: "leaderDeadline" });
    this.#events.schedule(this.now + 20, { k: "probe" });
  }

  // ---- views ----

  memberIds(): NodeId[] {
    const ids = [...this.conf.voters, ...this.conf.learners];
    return ids.filter((id) => this.nodes.get(id)?.state !== "removed");
  }

  /** The up node that is leader in the highest term, if any. */
  currentLeader(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.nodes.values()) {
      if (node.isUp && node.role === "leader" && (best === null || node.hs.term > best.hs.term)) {
        best = node;
      }
    }
    if (best === null) return null;
    for (const node of this.nodes.values()) {
      if (node.isUp && node.hs.term > best.hs.term && this.conf.voters.includes(node.id)) {
        return null;
      }
    }
    return best;
  }

  #converged(): boolean {
    const leader = this.currentLeader();
    if (leader === null) return false;
    const commit = leader.hs.commit;
    if (commit < this.monitor.maxCommitted) return false;
    let stateHash = -1;
    for (const id of this.memberIds()) {
      const node = this.nodes.get(id)!;
      if (!node.isUp || node.applied !== commit) return false;
      const h = hashBytes(node.sm.snapshot());
      if (stateHash === -1) stateHash = h;
      else if (h !== stateHash) {
        throw new SimViolation(
          "convergence",
          `node ${id} applied up to ${commit} like the leader but holds a different state`,
        );
      }
    }
    return true;
  }

  #finalChecks(): void {
    for (const a of this.acks) {
      if (this.monitor.committed.get(a.index) !== a.chain) {
        throw new SimViolation(
          "acknowledged write lost",
          `a write acknowledged at index ${a.index} is not the committed entry there`,
        );
      }
    }
    const result = checkLinearizable(kvModel, this.history);
    if (result.verdict !== "ok") {
      throw new SimViolation("linearizability", `${result.verdict}: ${result.explanation}`);
    }
    this.trace.log(
      this.now,
      () =>
        `done: ${this.history.length} operations linearizable, commit ${this.monitor.maxCommitted}`,
    );
  }

  #stuckReport(): string {
    const parts: string[] = [`pending client ops ${this.#pendingOps}`];
    for (const node of this.nodes.values()) {
      if (node.state === "removed") continue;
      parts.push(
        `node ${node.id}: ${node.state} ${node.role} term ${node.hs.term} commit ${node.hs.commit} applied ${node.applied}`,
      );
    }
    parts.push(`config voters ${this.conf.voters} learners ${this.conf.learners}`);
    return parts.join("; ");
  }
}

function pin<T>(override: T | undefined, drawn: T): T {
  return override === undefined ? drawn : override;
}

function cloneMessage(m: Message): Message {
  return { ...m, entries: m.entries.map((e) => ({ ...e })) };
}

const MSG_CODES: Record<string, number> = {};
function msgCode(type: string): number {
  let c = MSG_CODES[type];
  if (c === undefined) {
    c = 0;
    for (let i = 0; i < type.length; i++) c = (c * 31 + type.charCodeAt(i)) | 0;
    MSG_CODES[type] = c;
  }
  return c;
}

function describeMessage(m: Message): string {
  let s = `${m.type} ${m.from}->${m.to} term=${m.term}`;
  if (m.type === "MsgApp") {
    s += ` logTerm=${m.logTerm} index=${m.index} entries=${m.entries.length} commit=${m.commit}`;
  } else if (m.type === "MsgAppResp") {
    s += ` index=${m.index}${m.reject ? ` reject hint=${m.rejectHint}` : ""}`;
  } else if (m.type === "MsgSnap") s += ` snapshot=${m.snapshot?.metadata.index}`;
  else if (m.type.includes("Vote")) {
    s += ` index=${m.index} logTerm=${m.logTerm}${m.reject ? " reject" : ""}`;
  } else if (m.type === "MsgHeartbeat") s += ` commit=${m.commit}`;
  return s;
}

function describeReady(node: SimNode): string {
  const rd = node.held ?? node.writes[0] ?? null;
  if (rd === null) return "";
  const hs = rd.hardState
    ? ` hs=${rd.hardState.term}/${rd.hardState.vote}/${rd.hardState.commit}`
    : "";
  return `entries=${rd.entries.length}${hs} msgs=${rd.messages.length} committed=${rd.committedEntries.length}`;
}

/** A run's counters before its first event. */
function zeroStats(voters: number, learners: number): SimStats {
  return {
    events: 0,
    simulatedMs: 0,
    voters,
    learners,
    messagesSent: 0,
    messagesDropped: 0,
    messagesDuplicated: 0,
    messagesCut: 0,
    messagesDelayed: 0,
    crashes: 0,
    freezes: 0,
    clockStalls: 0,
    leaderStrikes: 0,
    partitions: 0,
    confChangesApplied: 0,
    snapshotsInstalled: 0,
    transfers: 0,
    leaderTerms: 0,
    operations: 0,
    retries: 0,
    finalCommit: 0,
    unsyncedWritesLost: 0,
  };
}
