// The few store calls `twill ctl` makes, over the etcd v3 JSON API and twill's /raft/ routes.
// Plain fetch with one request per call; the caller shows errors as one line.
import { jsonTexts } from "../store/api/json_stream.ts";
import { decodeBase64, encodeBase64 } from "../base64.ts";
import { prefixEnd as prefixEndBytes } from "../etcd/client.ts";

const b64 = (s: string): string => encodeBase64(new TextEncoder().encode(s));
const unb64 = (s: string | undefined): string => s ? new TextDecoder().decode(decodeBase64(s)) : "";
/** etcd's range_end for every key starting with `prefix`, base64 for the JSON API. */
const prefixEnd = (prefix: string): string => encodeBase64(prefixEndBytes(prefix));

export interface Kv {
  key: string;
  value: string;
  createRevision: string;
  modRevision: string;
  version: string;
  lease: string;
}

export class CtlError extends Error {}

export class StoreHttp {
  constructor(readonly server: string, readonly token: string | undefined) {}

  private url(path: string): string {
    return `${this.server.includes("://") ? this.server : `http://${this.server}`}${path}`;
  }

  private headers(): Record<string, string> {
    return {
      "content-type": "application/json",
      ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
    };
  }

  async post<T = Record<string, unknown>>(
    path: string,
    body: unknown,
    timeoutMs = 5000,
  ): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.url(path), {
        method: "POST",
        headers: this.headers(),
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new CtlError(`cannot reach ${this.server}: ${(e as Error).message}`);
    }
    const text = await res.text();
    if (res.status === 401) {
      throw new CtlError(
        `${this.server} refused the token (401); give the cluster token with --token or TWILL_TOKEN`,
      );
    }
    if (!res.ok) {
      let msg = text.slice(0, 300);
      try {
        const v = JSON.parse(text);
        msg = v.message ?? v.error ?? msg;
      } catch { /* not JSON */ }
      throw new CtlError(`${path} on ${this.server} failed (${res.status}): ${msg}`);
    }
    return JSON.parse(text) as T;
  }

  async range(key: string, opts: { prefix?: boolean } = {}): Promise<Kv[]> {
    const body: Record<string, unknown> = { key: b64(key) };
    if (opts.prefix) body.range_end = prefixEnd(key);
    const r = await this.post<{ kvs?: Record<string, string>[] }>("/v3/kv/range", body);
    return (r.kvs ?? []).map(decodeKv);
  }

  async put(key: string, value: string): Promise<string> {
    const r = await this.post<{ header: { revision: string } }>("/v3/kv/put", {
      key: b64(key),
      value: b64(value),
    });
    return r.header.revision;
  }

  async del(key: string): Promise<number> {
    const r = await this.post<{ deleted?: string }>("/v3/kv/deleterange", { key: b64(key) });
    return Number(r.deleted ?? "0");
  }

  async leaseTtl(id: string): Promise<number | null> {
    try {
      const r = await this.post<{ TTL?: string }>("/v3/lease/timetolive", { ID: id });
      const ttl = Number(r.TTL ?? "-1");
      return ttl < 0 ? null : ttl;
    } catch {
      return null;
    }
  }

  /** Streams watch events for a prefix until the signal aborts. */
  async *watch(prefix: string, signal: AbortSignal): AsyncGenerator<{ type: string; kv: Kv }> {
    let res: Response;
    try {
      res = await fetch(this.url("/v3/watch"), {
        method: "POST",
        headers: this.headers(),
        body: JSON.stringify({
          create_request: { key: b64(prefix), range_end: prefixEnd(prefix) },
        }),
        signal,
      });
    } catch (e) {
      if (signal.aborted) return;
      throw new CtlError(`cannot reach ${this.server}: ${(e as Error).message}`);
    }
    if (res.status === 401) throw new CtlError(`${this.server} refused the token (401)`);
    if (!res.ok) {
      throw new CtlError(`watch failed (${res.status}): ${(await res.text()).slice(0, 200)}`);
    }
    try {
      for await (const text of jsonTexts(res.body, 64 << 20)) {
        const msg = JSON.parse(text);
        const result = msg.result ?? msg;
        if (msg.error) {
          throw new CtlError(`watch: ${msg.error.message ?? JSON.stringify(msg.error)}`);
        }
        for (const e of result.events ?? []) {
          yield { type: e.type ?? "PUT", kv: decodeKv(e.kv ?? {}) };
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      throw e;
    }
  }
}

function decodeKv(k: Record<string, string>): Kv {
  return {
    key: unb64(k.key),
    value: unb64(k.value),
    createRevision: k.create_revision ?? "0",
    modRevision: k.mod_revision ?? "0",
    version: k.version ?? "0",
    lease: k.lease ?? "0",
  };
}
