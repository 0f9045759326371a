// The member table: which node id is reached at which address, and the highest id ever given
// out (ids are never reused). It is replicated: addresses travel in the context of each
// ConfChange, and the table rides inside every snapshot (see snapshot_envelope.ts). Pure.
import type { ConfChange, NodeId } from "../../raft/types.ts";

export interface MemberInfo {
  id: NodeId;
  address: string;
  name: string;
  /** Removed as a voter to be added back as a learner (a demotion under way, membership.ts). */
  demoting?: boolean;
}

export interface MemberTableData {
  members: MemberInfo[];
  maxId: NodeId;
}

export interface ConfChangeContext {
  address: string;
  name: string;
  /** On a removeNode: the member is being demoted, so its entry stays in the table. */
  demote?: boolean;
}

export function encodeConfContext(c: ConfChangeContext): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(c));
}

export function decodeConfContext(b: Uint8Array | undefined): ConfChangeContext | undefined {
  if (!b || b.length === 0) return undefined;
  try {
    const v = JSON.parse(new TextDecoder().decode(b));
    if (typeof v?.address === "string") {
      const c: ConfChangeContext = { address: v.address, name: String(v.name ?? "") };
      if (v.demote === true) c.demote = true;
      return c;
    }
  } catch {
    // not ours: ignore
  }
  return undefined;
}

export class MemberTable {
  private byId = new Map<NodeId, MemberInfo>();
  maxId: NodeId = 0;

  static from(data: MemberTableData): MemberTable {
    const t = new MemberTable();
    for (const m of data.members) {
      t.byId.set(m.id, { id: m.id, address: m.address, name: m.name });
      if (m.demoting === true) t.byId.get(m.id)!.demoting = true;
    }
    t.maxId = Math.max(data.maxId, ...data.members.map((m) => m.id), 0);
    return t;
  }

  toData(): MemberTableData {
    return {
      members: [...this.byId.values()].sort((a, b) => a.id - b.id).map((m) => ({ ...m })),
      maxId: this.maxId,
    };
  }

  /** Replaces this table's content with another's (a snapshot was installed). */
  replaceWith(other: MemberTable): void {
    this.byId = new Map(other.byId);
    this.maxId = other.maxId;
  }

  get(id: NodeId): MemberInfo | undefined {
    return this.byId.get(id);
  }

  all(): MemberInfo[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  byAddress(address: string): MemberInfo | undefined {
    for (const m of this.byId.values()) if (m.address === address) return m;
    return undefined;
  }

  /** Members removed as voters and not yet added back as learners. */
  demoting(): NodeId[] {
    return this.all().filter((m) => m.demoting).map((m) => m.id);
  }

  /** The id the next joiner gets: above every id ever seen. */
  nextId(): NodeId {
    return this.maxId + 1;
  }

  /** Applies a committed ConfChange to the table. */
  apply(cc: ConfChange): void {
    this.maxId = Math.max(this.maxId, cc.nodeId);
    const ctx = decodeConfContext(cc.context);
    if (cc.type === "removeNode") {
      const old = this.byId.get(cc.nodeId);
      // A demotion keeps the entry: the member is still ours, only its vote goes.
      if (ctx?.demote && old) this.byId.set(cc.nodeId, { ...old, demoting: true });
      else this.byId.delete(cc.nodeId);
      return;
    }
    const old = this.byId.get(cc.nodeId);
    if (ctx) this.byId.set(cc.nodeId, { id: cc.nodeId, address: ctx.address, name: ctx.name });
    else if (!old) this.byId.set(cc.nodeId, { id: cc.nodeId, address: "", name: "" });
    else if (old.demoting) {
      this.byId.set(cc.nodeId, { id: old.id, address: old.address, name: old.name });
    }
  }
}
