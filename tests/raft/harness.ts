// A tiny synchronous network of RawNodes over MemoryStorage for tests (like etcd's `network` in
// raft_test.go). Each node runs the real Ready loop: persist, send, apply, advance. Messages are
// delivered FIFO; links can be cut, nodes isolated, and message types dropped.
import { MemoryStorage } from "../../lib/raft/memory_storage.ts";
import { RawNode } from "../../lib/raft/rawnode.ts";
import { bootstrap } from "../../lib/raft/bootstrap.ts";
import { decodeConfChange } from "../../lib/raft/confchange_codec.ts";
import type {
  Config,
  ConfState,
  Entry,
  Message,
  MessageType,
  NodeId,
  ReadState,
  Snapshot,
} from "../../lib/raft/types.ts";
import { newMessage } from "../../lib/raft/util.ts";

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export interface TestNode {
  id: NodeId;
  rn: RawNode;
  storage: MemoryStorage;
  /** Data of applied normal entries, in order (the state machine). */
  applied: string[];
  appliedIndex: number;
  confState: ConfState;
  readStates: ReadState[];
  /** Every committed entry handed to this node's application, in order. */
  committedLog: Entry[];
}

export interface NetworkOptions {
  electionTick?: number;
  heartbeatTick?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  learners?: NodeId[];
  config?: Partial<Config>;
}

/** Deterministic "randomness": a small LCG seeded per node. */
export function seededRand(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) % n;
  };
}

export class Network {
  nodes = new Map<NodeId, TestNode>();
  /** Cut directed links "from-to". */
  private cut = new Set<string>();
  private dropTypes = new Set<MessageType>();
  /** Optional interceptor: return false to drop a message. */
  filter: ((m: Message) => boolean) | undefined;
  /** Every message delivered (for assertions). */
  trace: Message[] = [];
  queue: Message[] = [];
  private opts: NetworkOptions;

  constructor(voters: NodeId[], opts: NetworkOptions = {}) {
    this.opts = opts;
    const cs: ConfState = { voters: [...voters], learners: [...(opts.learners ?? [])] };
    for (const id of [...voters, ...(opts.learners ?? [])]) {
      const storage = new MemoryStorage();
      bootstrap(storage, cs);
      this.addNode(id, storage);
    }
  }

  /** Create (or restart) node `id` over `storage`. */
  addNode(id: NodeId, storage: MemoryStorage, applied?: number): TestNode {
    const o = this.opts;
    const rn = new RawNode({
      id,
      electionTick: o.electionTick ?? 10,
      heartbeatTick: o.heartbeatTick ?? 1,
      storage,
      rand: seededRand(id * 7919),
      preVote: o.preVote ?? true,
      checkQuorum: o.checkQuorum ?? true,
      applied,
      ...o.config,
    });
    const snap = storage.snapshot();
    const node: TestNode = {
      id,
      rn,
      storage,
      applied: snap.data.length > 0 ? JSON.parse(dec(snap.data)) : [],
      appliedIndex: applied ?? snap.metadata.index,
      confState: storage.initialState().confState,
      readStates: [],
      committedLog: [],
    };
    this.nodes.set(id, node);
    return node;
  }

  /** A brand-new empty node (to be added by a conf change; it learns everything from the leader). */
  addEmptyNode(id: NodeId): TestNode {
    return this.addNode(id, new MemoryStorage());
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: NodeId) {
    return this.node(id).rn.raft;
  }

  /** Run one Ready cycle for a node; queues its messages. Returns whether there was one. */
  processReady(n: TestNode, whilePersisting?: () => void): boolean {
    if (!n.rn.hasReady()) return false;
    const rd = n.rn.ready();
    // Models asynchronous persistence: the node keeps stepping messages before advance().
    whilePersisting?.();
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
    }
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) this.queue.push(structuredClone(m));
    if (rd.snapshot) this.applySnapshot(n, rd.snapshot);
    for (const e of rd.committedEntries) {
      n.committedLog.push(e);
      if (e.type === "confChange") {
        n.confState = n.rn.applyConfChange(decodeConfChange(e.data));
      } else if (e.data.length > 0) {
        n.applied.push(dec(e.data));
      }
      n.appliedIndex = e.index;
    }
    n.readStates.push(...rd.readStates);
    n.rn.advance(rd);
    return true;
  }

  private applySnapshot(n: TestNode, s: Snapshot): void {
    n.applied = s.data.length > 0 ? JSON.parse(dec(s.data)) : [];
    n.appliedIndex = s.metadata.index;
    n.confState = s.metadata.confState;
  }

  /** Snapshot node `id` at its applied index and compact its log up to there. */
  compact(id: NodeId): void {
    const n = this.node(id);
    n.storage.createSnapshot(n.appliedIndex, n.confState, enc(JSON.stringify(n.applied)));
    n.storage.compact(n.appliedIndex);
  }

  private deliverable(m: Message): boolean {
    if (!this.nodes.has(m.to)) return false;
    if (this.cut.has(`${m.from}-${m.to}`)) return false;
    if (this.dropTypes.has(m.type)) return false;
    if (this.filter && !this.filter(m)) return false;
    return true;
  }

  /** Process Readies and deliver messages until the network is quiet. */
  stabilize(maxSteps = 100000): void {
    for (let steps = 0; steps < maxSteps; steps++) {
      let progressed = false;
      for (const n of this.nodes.values()) progressed = this.processReady(n) || progressed;
      const m = this.queue.shift();
      if (m) {
        progressed = true;
        if (this.deliverable(m)) {
          this.trace.push(m);
          const to = this.node(m.to);
          try {
            to.rn.step(m);
          } catch (e) {
            if (!(e instanceof Error && e.name === "RaftError")) throw e;
          }
        }
      }
      if (!progressed) return;
    }
    throw new Error("network did not stabilize");
  }

  /** Step a message into a node (as if received) and stabilize. */
  send(m: Partial<Message> & { type: MessageType; from: NodeId; to: NodeId }): void {
    this.node(m.to).rn.raft.step(newMessage(m));
    this.stabilize();
  }

  campaign(id: NodeId): void {
    this.node(id).rn.campaign();
    this.stabilize();
  }

  propose(id: NodeId, data: string): void {
    this.node(id).rn.propose(enc(data));
    this.stabilize();
  }

  /** Tick every node (or the given ones) n times, stabilizing after each round. */
  tick(n: number, ids?: NodeId[]): void {
    for (let i = 0; i < n; i++) {
      for (const id of ids ?? [...this.nodes.keys()]) this.node(id).rn.tick();
      this.stabilize();
    }
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}-${other}`);
      this.cut.add(`${other}-${id}`);
    }
  }

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}-${b}`);
    this.cut.add(`${b}-${a}`);
  }

  drop(t: MessageType): void {
    this.dropTypes.add(t);
  }

  heal(): void {
    this.cut.clear();
    this.dropTypes.clear();
    this.filter = undefined;
  }

  leaders(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.rn.raft.state === "leader").map((n) => n.id);
  }

  leader(): NodeId {
    const ls = this.leaders();
    if (ls.length !== 1) throw new Error(`expected one leader, found [${ls.join(",")}]`);
    return ls[0];
  }

  /** Restart a node: a new RawNode over the same storage (unsynced state is already durable here). */
  restart(id: NodeId): TestNode {
    const old = this.node(id);
    this.queue = this.queue.filter((m) => m.to !== id);
    const n = this.addNode(id, old.storage, old.appliedIndex);
    n.applied = old.applied;
    n.confState = old.confState;
    return n;
  }
}

/** A lone RawNode for unit-style tests, with deterministic timeouts (randomized = electionTick). */
export function newTestRawNode(
  id: NodeId,
  voters: NodeId[],
  opts: {
    electionTick?: number;
    heartbeatTick?: number;
    storage?: MemoryStorage;
    learners?: NodeId[];
  } & Partial<Config> = {},
): RawNode {
  const storage = opts.storage ?? new MemoryStorage();
  if (!opts.storage) bootstrap(storage, { voters, learners: opts.learners ?? [] });
  return new RawNode({
    rand: () => 0,
    preVote: false,
    checkQuorum: false,
    ...opts,
    id,
    electionTick: opts.electionTick ?? 10,
    heartbeatTick: opts.heartbeatTick ?? 1,
    storage,
  });
}

/** Take (and clear) the messages the node has queued, like etcd's readMessages. */
export function readMessages(rn: RawNode): Message[] {
  rn.raft.flushProposals();
  const msgs = rn.raft.msgs;
  rn.raft.msgs = [];
  return msgs;
}

export { newMessage };
