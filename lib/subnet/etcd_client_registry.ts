// The SubnetRegistry over lib/etcd/client.ts's EtcdClient (twill's embedded store or a real
// etcd). The client never re-sends writes; every write here is a compare-guarded txn or a grant
// that merely expires, so an "unknown outcome" error is safe to retry at the manager level.
import { type EtcdClient, EtcdClientError, text } from "../etcd/client.ts";
import type { RegistryEvent, StoredKv, SubnetRegistry, WatchItem } from "./registry.ts";

function kvOf(
  k: { key: Uint8Array; value: Uint8Array; modRevision: string; lease: string },
): StoredKv {
  return {
    key: text(k.key),
    value: text(k.value),
    modRevision: BigInt(k.modRevision || "0"),
    lease: BigInt(k.lease || "0"),
  };
}

export class EtcdClientRegistry implements SubnetRegistry {
  constructor(private c: EtcdClient) {}

  async get(key: string): Promise<StoredKv | null> {
    const r = await this.c.range(key);
    return r.kvs.length ? kvOf(r.kvs[0]) : null;
  }

  async list(prefix: string): Promise<{ kvs: StoredKv[]; revision: bigint }> {
    const r = await this.c.range(prefix, { prefix: true });
    return { kvs: r.kvs.map(kvOf), revision: BigInt(r.header.revision) };
  }

  async grant(ttlSeconds: number): Promise<bigint> {
    return BigInt((await this.c.leaseGrant(ttlSeconds)).id);
  }

  async revoke(lease: bigint): Promise<void> {
    try {
      await this.c.leaseRevoke(lease.toString());
    } catch (e) {
      if (e instanceof EtcdClientError && e.grpcCode === 5) return; // already gone
      throw e;
    }
  }

  private async guardedPut(
    compare: Parameters<EtcdClient["txn"]>[0]["compare"],
    key: string,
    value: string,
    lease: bigint,
  ): Promise<{ ok: boolean; modRevision: bigint }> {
    const r = await this.c.txn({
      compare,
      success: [{ put: { key, value, ...(lease !== 0n ? { lease: lease.toString() } : {}) } }],
    });
    return { ok: r.succeeded, modRevision: r.succeeded ? BigInt(r.header.revision) : 0n };
  }

  createIfAbsent(key: string, value: string, lease: bigint) {
    return this.guardedPut(
      [{ key, target: "VERSION", result: "EQUAL", version: "0" }],
      key,
      value,
      lease,
    );
  }

  putIfModRevision(key: string, value: string, lease: bigint, expected: bigint) {
    return this.guardedPut(
      [{ key, target: "MOD", result: "EQUAL", modRevision: expected.toString() }],
      key,
      value,
      lease,
    );
  }

  async delete(key: string): Promise<void> {
    await this.c.deleteRange(key);
  }

  async *watch(
    prefix: string,
    fromRevision: bigint,
    signal: AbortSignal,
  ): AsyncIterable<WatchItem> {
    for await (
      const w of this.c.watch(prefix, {
        prefix: true,
        startRevision: fromRevision.toString(),
        signal,
      })
    ) {
      if (w.compactRevision && w.compactRevision !== "0") {
        yield { kind: "compacted", compactRevision: BigInt(w.compactRevision) };
        return;
      }
      if (w.canceled) throw new Error(`watch canceled by the store: ${w.cancelReason}`);
      if (!w.events.length) continue;
      const events: RegistryEvent[] = w.events.map((e) =>
        e.type === "DELETE"
          ? { type: "delete", key: text(e.kv.key), modRevision: BigInt(e.kv.modRevision || "0") }
          : { type: "put", kv: kvOf(e.kv) }
      );
      let rev = BigInt(w.header.revision || "0");
      for (const e of w.events) {
        const m = BigInt(e.kv.modRevision || "0");
        if (m > rev) rev = m;
      }
      yield { kind: "events", events, revision: rev };
    }
  }
}
