// A minimal deterministic KvStateMachine for driver tests that must not depend on the real one:
// puts and deletes of single keys, request-id dedup, snapshot/restore as JSON.
import type {
  ApplyResult,
  Command,
  KvStateMachine,
  LeaseInfo,
  RangeRequest,
  RangeResult,
  RevisionEvents,
} from "../../lib/store/backend.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();

export class FakeStateMachine implements KvStateMachine {
  appliedIndex = 0;
  revision = 1;
  compactRevision = 0;
  kv = new Map<string, string>();
  seen = new Map<string, ApplyResult>();
  /** Every (index, requestId) applied, in order: tests check exactly-once application. */
  appliedLog: { index: number; requestId: string }[] = [];
  private listeners = new Set<(b: RevisionEvents) => void>();
  private restoreListeners = new Set<() => void>();

  apply(index: number, cmd: Command): ApplyResult {
    if (index <= this.appliedIndex) throw new Error(`apply ${index} after ${this.appliedIndex}`);
    this.appliedIndex = index;
    const seen = this.seen.get(cmd.requestId);
    if (seen) return seen;
    this.appliedLog.push({ index, requestId: cmd.requestId });
    let r: ApplyResult;
    if (cmd.op === "put") {
      this.revision++;
      this.kv.set(dec.decode(cmd.key), dec.decode(cmd.value));
      r = { revision: String(this.revision) };
    } else if (cmd.op === "deleteRange") {
      this.revision++;
      const had = this.kv.delete(dec.decode(cmd.key));
      r = { revision: String(this.revision), deleted: had ? "1" : "0", prevKvs: [] };
    } else {
      r = { revision: String(this.revision) };
    }
    this.seen.set(cmd.requestId, r);
    return r;
  }
  skip(index: number): void {
    if (index > this.appliedIndex) this.appliedIndex = index;
  }
  snapshot(): Uint8Array {
    return enc.encode(JSON.stringify({
      appliedIndex: this.appliedIndex,
      revision: this.revision,
      kv: [...this.kv],
      seen: [...this.seen],
      log: this.appliedLog,
    }));
  }
  restore(bytes: Uint8Array): void {
    const v = JSON.parse(dec.decode(bytes));
    this.appliedIndex = v.appliedIndex;
    this.revision = v.revision;
    this.kv = new Map(v.kv);
    this.seen = new Map(v.seen);
    this.appliedLog = v.log;
    for (const l of this.restoreListeners) l();
  }
  range(req: RangeRequest): RangeResult {
    const k = dec.decode(req.key);
    const v = this.kv.get(k);
    return {
      revision: String(this.revision),
      kvs: v === undefined ? [] : [{
        key: req.key,
        value: enc.encode(v),
        createRevision: "0",
        modRevision: "0",
        version: "1",
        lease: "0",
      }],
      more: false,
      count: v === undefined ? "0" : "1",
    };
  }
  leases(): LeaseInfo[] {
    return [];
  }
  lease(_id: string): LeaseInfo | null {
    return null;
  }
  eventsSince(_from: number): RevisionEvents[] {
    return [];
  }
  subscribe(listener: (batch: RevisionEvents) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  onRestore(listener: () => void): () => void {
    this.restoreListeners.add(listener);
    return () => this.restoreListeners.delete(listener);
  }
}

export const noLessor = {
  promote() {},
  keepAlive: () => null,
  expired: () => [],
  ttlLeft: () => null,
};
