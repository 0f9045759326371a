// A SubnetRegistry over etcd's v3 JSON API (grpc-gateway shape): works against twill's embedded
// store and a real etcd alike. Used until/unless lib/store/client.ts's EtcdClient is handed in.
// Writes are never retried here (a duplicate would be harmless anyway: every write is a txn with
// a compare, or a grant that merely expires); reads fail over across endpoints.
import type { RegistryEvent, StoredKv, SubnetRegistry, WatchItem } from "./registry.ts";
import { decodeBase64, encodeBase64 } from "../base64.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function b64(s: string): string {
  return encodeBase64(enc.encode(s));
}

function unb64(s: string | undefined): string {
  return s ? dec.decode(decodeBase64(s)) : "";
}

/** The key just past every key with this prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): string {
  const b = enc.encode(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const out = b.slice(0, i + 1);
      out[i]++;
      return encodeBase64(out);
    }
  }
  return btoa("\0");
}

interface KvJson {
  key: string;
  value?: string;
  mod_revision?: string;
  lease?: string;
}

function kvOf(k: KvJson): StoredKv {
  return {
    key: unb64(k.key),
    value: unb64(k.value),
    modRevision: BigInt(k.mod_revision ?? "0"),
    lease: BigInt(k.lease ?? "0"),
  };
}

export class EtcdError extends Error {
  constructor(message: string, readonly code: number | null) {
    super(message);
    this.name = "EtcdError";
  }
}

export interface EtcdHttpOptions {
  endpoints: string[];
  token?: string;
  timeoutMs?: number;
}

export class EtcdHttpRegistry implements SubnetRegistry {
  private endpoints: string[];
  private current = 0;
  constructor(private o: EtcdHttpOptions) {
    this.endpoints = o.endpoints.map((e) =>
      (e.includes("://") ? e : `http://${e}`).replace(/\/$/, "")
    );
    if (!this.endpoints.length) throw new Error("no store endpoints given");
  }

  private headers(): HeadersInit {
    const h: Record<string, string> = { "content-type": "application/json" };
    if (this.o.token) h.authorization = `Bearer ${this.o.token}`;
    return h;
  }

  private async post<T>(path: string, body: unknown, retryable: boolean): Promise<T> {
    const tries = retryable ? this.endpoints.length : 1;
    let lastErr: unknown;
    for (let i = 0; i < tries; i++) {
      const ep = this.endpoints[(this.current + i) % this.endpoints.length];
      let res: Response;
      try {
        res = await fetch(`${ep}${path}`, {
          method: "POST",
          headers: this.headers(),
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(this.o.timeoutMs ?? 5000),
        });
      } catch (e) {
        lastErr = new EtcdError(`store ${ep} unreachable: ${(e as Error).message}`, null);
        continue;
      }
      const text = await res.text();
      let j: Record<string, unknown>;
      try {
        j = JSON.parse(text);
      } catch {
        throw new EtcdError(
          `store ${ep}${path} answered ${res.status}: ${text.slice(0, 200)}`,
          null,
        );
      }
      if (!res.ok || j.error) {
        const m = String(j.message ?? j.error ?? res.statusText);
        const err = new EtcdError(`store ${ep}${path}: ${m}`, Number(j.code ?? 0));
        if (retryable && (res.status === 503 || j.code === 14)) {
          lastErr = err;
          continue;
        }
        throw err;
      }
      this.current = (this.current + i) % this.endpoints.length;
      return j as T;
    }
    throw lastErr;
  }

  async get(key: string): Promise<StoredKv | null> {
    const r = await this.post<{ kvs?: KvJson[] }>("/v3/kv/range", { key: b64(key) }, true);
    return r.kvs?.length ? kvOf(r.kvs[0]) : null;
  }

  async list(prefix: string): Promise<{ kvs: StoredKv[]; revision: bigint }> {
    const r = await this.post<{ kvs?: KvJson[]; header: { revision: string } }>(
      "/v3/kv/range",
      { key: b64(prefix), range_end: prefixEnd(prefix) },
      true,
    );
    return { kvs: (r.kvs ?? []).map(kvOf), revision: BigInt(r.header.revision) };
  }

  async grant(ttlSeconds: number): Promise<bigint> {
    const r = await this.post<{ ID: string }>(
      "/v3/lease/grant",
      { TTL: String(ttlSeconds) },
      false,
    );
    return BigInt(r.ID);
  }

  async revoke(lease: bigint): Promise<void> {
    try {
      await this.post("/v3/lease/revoke", { ID: lease.toString() }, false);
    } catch (e) {
      if (e instanceof EtcdError && e.code === 5) return; // already gone
      throw e;
    }
  }

  private async txn(
    compare: unknown,
    key: string,
    value: string,
    lease: bigint,
  ): Promise<{ ok: boolean; modRevision: bigint }> {
    const put: Record<string, string> = { key: b64(key), value: b64(value) };
    if (lease !== 0n) put.lease = lease.toString();
    const r = await this.post<{ succeeded?: boolean; header: { revision: string } }>(
      "/v3/kv/txn",
      { compare: [compare], success: [{ request_put: put }] },
      false,
    );
    return { ok: r.succeeded === true, modRevision: r.succeeded ? BigInt(r.header.revision) : 0n };
  }

  createIfAbsent(key: string, value: string, lease: bigint) {
    return this.txn(
      { key: b64(key), target: "VERSION", result: "EQUAL", version: "0" },
      key,
      value,
      lease,
    );
  }

  putIfModRevision(key: string, value: string, lease: bigint, expected: bigint) {
    return this.txn(
      { key: b64(key), target: "MOD", result: "EQUAL", mod_revision: expected.toString() },
      key,
      value,
      lease,
    );
  }

  async delete(key: string): Promise<void> {
    await this.post("/v3/kv/deleterange", { key: b64(key) }, false);
  }

  async *watch(
    prefix: string,
    fromRevision: bigint,
    signal: AbortSignal,
  ): AsyncIterable<WatchItem> {
    const ep = this.endpoints[this.current];
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const res = await fetch(`${ep}/v3/watch`, {
        method: "POST",
        headers: this.headers(),
        body: JSON.stringify({
          create_request: {
            key: b64(prefix),
            range_end: prefixEnd(prefix),
            start_revision: fromRevision.toString(),
          },
        }),
        signal: ac.signal,
      });
      if (!res.ok || !res.body) {
        const t = await res.text();
        this.current = (this.current + 1) % this.endpoints.length;
        throw new EtcdError(
          `store ${ep}/v3/watch answered ${res.status}: ${t.slice(0, 200)}`,
          null,
        );
      }
      for await (const obj of jsonObjects(res.body)) {
        const r = (obj as { result?: Record<string, unknown>; error?: unknown }).result;
        if (!r) {
          throw new EtcdError(`watch failed: ${JSON.stringify(obj).slice(0, 200)}`, null);
        }
        if (r.compact_revision && r.compact_revision !== "0") {
          yield { kind: "compacted", compactRevision: BigInt(r.compact_revision as string) };
          return;
        }
        if (r.canceled) throw new EtcdError(`watch canceled: ${r.cancel_reason ?? ""}`, null);
        const evs = (r.events ?? []) as { type?: string; kv: KvJson }[];
        if (!evs.length) continue;
        const events: RegistryEvent[] = evs.map((e) =>
          e.type === "DELETE"
            ? {
              type: "delete",
              key: unb64(e.kv.key),
              modRevision: BigInt(e.kv.mod_revision ?? "0"),
            }
            : { type: "put", kv: kvOf(e.kv) }
        );
        const header = r.header as { revision?: string } | undefined;
        let rev = BigInt(header?.revision ?? "0");
        for (const e of evs) {
          const m = BigInt(e.kv.mod_revision ?? "0");
          if (m > rev) rev = m;
        }
        yield { kind: "events", events, revision: rev };
      }
      if (!signal.aborted) throw new EtcdError("watch stream ended", null);
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    } finally {
      signal.removeEventListener("abort", onAbort);
      ac.abort();
    }
  }
}

/** Splits a byte stream of concatenated JSON objects (newline-separated or not). */
export async function* jsonObjects(body: ReadableStream<Uint8Array>): AsyncIterable<unknown> {
  const decoder = new TextDecoder();
  let buf = "";
  let depth = 0, inStr = false, esc = false, start = -1, scanFrom = 0;
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    for (let i = scanFrom; i < buf.length; i++) {
      const c = buf[i];
      if (inStr) {
        if (esc) esc = false;
        else if (c === "\\") esc = true;
        else if (c === '"') inStr = false;
        continue;
      }
      if (c === '"') inStr = true;
      else if (c === "{") {
        if (depth === 0) start = i;
        depth++;
      } else if (c === "}") {
        depth--;
        if (depth === 0 && start >= 0) {
          yield JSON.parse(buf.slice(start, i + 1));
          buf = buf.slice(i + 1);
          i = -1;
          start = -1;
        }
      }
    }
    scanFrom = buf.length;
    if (depth === 0) {
      buf = "";
      scanFrom = 0;
    }
  }
}
