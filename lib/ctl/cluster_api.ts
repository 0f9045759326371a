// What `twill ctl` asks a member: keys, leases and watches through the project's one etcd
// client, and twill's own /raft/status and /raft/members through the one HTTP client. Every
// failure becomes a CtlError whose message is the one line ctl prints.
import {
  EtcdClient,
  EtcdClientError,
  type KeyValue,
  text,
  type WatchEvent,
} from "../etcd/client.ts";
import { HttpClient, type TlsClientOptions } from "../http/client.ts";
import type { MembersResponse, SelfStatus } from "../store/member/peer_routes.ts";

/** A failure ctl reports in one line, with its exit code: 1 failed or not found, 2 usage,
 *  3 refused by the cluster (401/403; the message is then etcd's text). */
export class CtlError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2 | 3 = 1) {
    super(message);
  }
}

/** Where the join secret lives (admin only). */
export const JOIN_SECRET_KEY = "/twill/join-secret";

/** A key-value pair as ctl prints it (--json): key and value as UTF-8 text. */
export interface TextKv {
  key: string;
  value: string;
  createRevision: string;
  modRevision: string;
  version: string;
  lease: string;
}

export function textKv(kv: KeyValue): TextKv {
  return {
    key: text(kv.key),
    value: text(kv.value),
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    lease: kv.lease,
  };
}

const TIMEOUT_MS = 5000;

export class ClusterApi {
  readonly #etcd: EtcdClient;
  readonly #http: HttpClient;

  /** The cluster API as ctl's options reach it: TLS verified by the CA when there is one (a
   *  plain etcd named by an http:// URL has none). */
  static of(o: { server: string; token?: string; caPem?: string }): ClusterApi {
    return new ClusterApi(o.server, o.token, o.caPem ? { caCerts: [o.caPem] } : undefined);
  }

  constructor(
    readonly server: string,
    readonly token: string | undefined,
    tls?: TlsClientOptions,
  ) {
    this.#etcd = new EtcdClient({
      endpoints: [server],
      token,
      tls,
      requestTimeoutMs: TIMEOUT_MS,
    });
    this.#http = new HttpClient({ token, tls, timeoutMs: TIMEOUT_MS });
  }

  /** Revokes a node's credentials, deletes its leases and, for a member, removes it from the
   *  store. False when the cluster knows no node by that name. */
  async removeNode(name: string): Promise<{ credentials: number; leases: number; member: number }> {
    return (await this.#raft<{ removed: { credentials: number; leases: number; member: number } }>(
      this.server,
      "/raft/remove-node",
      TIMEOUT_MS,
      { name },
    )).removed;
  }

  /** This member's (or, given `address`, another member's) own view of itself. */
  raftStatus(address = this.server, timeoutMs = TIMEOUT_MS): Promise<SelfStatus> {
    return this.#raft<SelfStatus>(address, "/raft/status", timeoutMs);
  }

  /** The member table as the leader sees it. */
  raftMembers(timeoutMs = TIMEOUT_MS): Promise<MembersResponse> {
    return this.#raft<MembersResponse>(this.server, "/raft/members", timeoutMs);
  }

  async range(key: string, opts: { prefix?: boolean } = {}): Promise<TextKv[]> {
    const r = await this.#call("/v3/kv/range", () => this.#etcd.range(key, opts));
    return r.kvs.map(textKv);
  }

  /** Writes one key; the new revision. */
  async put(key: string, value: string): Promise<string> {
    return (await this.#call("/v3/kv/put", () => this.#etcd.put(key, value))).header.revision;
  }

  /** Deletes one key; how many were deleted. */
  async del(key: string): Promise<number> {
    return Number(
      (await this.#call("/v3/kv/deleterange", () => this.#etcd.deleteRange(key)))
        .deleted,
    );
  }

  /** Seconds left on a lease, or null when it is gone or cannot be read. */
  async leaseTtl(id: string): Promise<number | null> {
    try {
      const ttl = Number((await this.#etcd.leaseTimeToLive(id)).ttl);
      return ttl < 0 ? null : ttl;
    } catch {
      return null;
    }
  }

  /** Watch events for every key under `prefix`, until the signal aborts. */
  async *watch(
    prefix: string,
    signal: AbortSignal,
  ): AsyncGenerator<{ type: WatchEvent["type"]; kv: TextKv }> {
    try {
      for await (const res of this.#etcd.watch(prefix, { prefix: true, signal })) {
        for (const e of res.events) yield { type: e.type, kv: textKv(e.kv) };
      }
    } catch (e) {
      // The member went away or the stream broke: the watch did not end by the user's choice.
      if (e instanceof EtcdClientError && e.grpcCode === 14 && e.cause === undefined) {
        throw new CtlError(`watch on ${this.server} ended: ${e.message}`);
      }
      throw this.#ctlError("/v3/watch", e);
    }
  }

  async #call<T>(path: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.#ctlError(path, e);
    }
  }

  #ctlError(path: string, e: unknown): CtlError {
    if (!(e instanceof EtcdClientError)) return new CtlError((e as Error).message ?? String(e));
    if (e.cause !== undefined) return this.#unreachable(this.server, e.cause);
    if (e.httpStatus === 401 || e.httpStatus === 403) return new CtlError(e.message, 3);
    if (e.httpStatus === 404) return new CtlError(e.message, 1);
    return new CtlError(`${path} on ${this.server} failed (${e.httpStatus}): ${e.message}`);
  }

  #unreachable(address: string, e: unknown): CtlError {
    return new CtlError(`cannot reach ${address}: ${(e as Error).message ?? e}`);
  }

  async #raft<T>(address: string, path: string, timeoutMs: number, body = {}): Promise<T> {
    let res: { status: number; ok: boolean; text: string };
    try {
      res = await this.#http.postJson(address, path, body, { timeoutMs });
    } catch (e) {
      throw this.#unreachable(address, e);
    }
    if (!res.ok) {
      let msg = res.text.slice(0, 300);
      try {
        const v = JSON.parse(res.text);
        msg = v.error ?? v.message ?? msg;
      } catch { /* not JSON */ }
      if (res.status === 401 || res.status === 403) throw new CtlError(msg, 3);
      if (res.status === 404) throw new CtlError(msg, 1);
      throw new CtlError(`${path} on ${address} failed (${res.status}): ${msg}`);
    }
    return JSON.parse(res.text) as T;
  }
}
