// An in-process cluster of RaftKvs joined by an in-memory network with switchable links,
// ticked by a real timer. For driver tests that need no sockets and no processes.
import { type LeaderLessor, RaftKv, type RaftKvOptions } from "../../lib/store/raft_kv.ts";
import { Lessor } from "../../lib/store/lessor.ts";
import { MemoryLogStore } from "../../lib/store/member/log_store.ts";
import { MemberTable } from "../../lib/store/member/members.ts";
import { encodeSnapshotData } from "../../lib/store/member/snapshot_envelope.ts";
import { bootstrapSnapshot } from "../../lib/raft/bootstrap.ts";
import type { Message, NodeId } from "../../lib/raft/types.ts";
import { CountingStateMachine, noLessor } from "./counting_state_machine.ts";

export interface InprocNode {
  id: NodeId;
  kv: RaftKv;
  sm: CountingStateMachine;
  storage: MemoryLogStore;
  timer: ReturnType<typeof setInterval>;
}

export class InprocCluster {
  nodes = new Map<NodeId, InprocNode>();
  /** Links that drop messages: "a->b". */
  cut = new Set<string>();
  /** Drops any message for which this returns true (in addition to cut links). */
  drop: (from: NodeId, m: Message) => boolean = () => false;
  private seed = 1;

  constructor(
    readonly tickMs = 10,
    readonly snapshotCount = 1000,
    /** Options every member starts with, over the defaults below. */
    readonly extra: Partial<RaftKvOptions> = {},
    /** Real lessors (lease liveness on the leader) instead of none. */
    readonly leases = false,
  ) {}

  rand = (n: number) => {
    // xorshift: deterministic per cluster, good enough for election jitter
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0 || 1;
    return this.seed % n;
  };

  static bootstrap(
    ids: NodeId[],
    tickMs = 10,
    snapshotCount = 1000,
    extra: Partial<RaftKvOptions> = {},
    leases = false,
  ): InprocCluster {
    const c = new InprocCluster(tickMs, snapshotCount, extra, leases);
    const members = MemberTable.from({
      members: ids.map((id) => ({ id, address: `node${id}`, name: `n${id}` })),
      maxId: Math.max(...ids),
    });
    const data = encodeSnapshotData({ members: members.toData(), sm: new Uint8Array() });
    for (const id of ids) {
      const storage = new MemoryLogStore();
      storage.mem.applySnapshot(bootstrapSnapshot({ voters: ids, learners: [] }, data));
      c.start(id, storage, MemberTable.from(members.toData()));
    }
    return c;
  }

  start(id: NodeId, storage: MemoryLogStore, members: MemberTable): InprocNode {
    const sm = new CountingStateMachine();
    const snap = storage.snapshot();
    const kv = new RaftKv({
      id,
      clusterId: "1",
      storage,
      sm,
      members,
      applied: snap.metadata.index,
      rand: this.rand,
      now: () => Date.now(),
      lessor: this.leases ? new Lessor(sm) as LeaderLessor : noLessor,
      tickMs: this.tickMs,
      electionTick: 10,
      heartbeatTick: 1,
      writeTimeoutMs: 1000,
      readTimeoutMs: 3000,
      snapshotCount: this.snapshotCount,
      snapshotCatchUpEntries: 5,
      logger: Deno.env.get("INPROC_LOG")
        ? (l, e, f) => console.log(id, l, e, JSON.stringify(f))
        : undefined,
      ...this.extra,
    });
    kv.setTransport({ send: (msgs) => this.deliver(id, msgs) });
    const timer = setInterval(() => kv.tick(), this.tickMs);
    const node = { id, kv, sm, storage, timer };
    this.nodes.set(id, node);
    return node;
  }

  private deliver(from: NodeId, msgs: Message[]): void {
    for (const m of msgs) {
      const to = this.nodes.get(m.to);
      if (!to || this.cut.has(`${from}->${m.to}`) || this.drop(from, m)) {
        this.nodes.get(from)?.kv.reportUnreachable(m.to);
        continue;
      }
      setTimeout(() => {
        if (this.cut.has(`${from}->${m.to}`) || this.nodes.get(m.to) !== to) return;
        to.kv.step([m]);
        if (m.type === "MsgSnap") this.nodes.get(from)?.kv.reportSnapshot(m.to, true);
      }, 0);
    }
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  stop(id: NodeId): void {
    const n = this.nodes.get(id);
    if (!n) return;
    clearInterval(n.timer);
    n.kv.stop();
    this.nodes.delete(id);
  }

  stopAll(): void {
    for (const id of [...this.nodes.keys()]) this.stop(id);
  }

  leader(): InprocNode | undefined {
    for (const n of this.nodes.values()) if (n.kv.currentRole === "leader") return n;
    return undefined;
  }

  async waitFor(cond: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async waitLeader(exclude?: NodeId): Promise<InprocNode> {
    let found: InprocNode | undefined;
    await this.waitFor(
      () => {
        found = [...this.nodes.values()].find((n) =>
          n.id !== exclude && n.kv.currentRole === "leader" &&
          !this.cut.has(`${n.id}->${[...this.nodes.keys()].find((k) => k !== n.id)}`)
        );
        return found !== undefined;
      },
      5000,
      "a leader",
    );
    return found!;
  }
}

export function put(key: string, value: string, requestId: string = crypto.randomUUID()) {
  const enc = new TextEncoder();
  return {
    op: "put" as const,
    requestId,
    key: enc.encode(key),
    value: enc.encode(value),
    lease: "0",
    prevKv: false,
  };
}
