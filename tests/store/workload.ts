// A client workload against a ProcessCluster: writers (puts with unique values and linearizable
// gets on a few shared keys, plus puts of unique keys to read back later) and watchers that
// resume through another member when theirs goes away. Records a history for the
// linearizability checker and every watch event for the ordering checks.
import assert from "node:assert/strict";
import https from "node:https";
import type { KvInput, KvOutput, Operation } from "../../lib/linearizability/mod.ts";
import { b64, clusterTrust, NotSent, post, type ProcessCluster, unb64 } from "./process_cluster.ts";

export const LIN_KEYS = ["/t/lin/a", "/t/lin/b", "/t/lin/c"];

export interface WorkloadResult {
  history: Operation<KvInput, KvOutput>[];
  /** Unique keys whose put was acknowledged. */
  acked: Map<string, string>;
  ops: { ok: number; unknown: number; notSent: number; failedReads: number };
  /** Per watcher, events in arrival order: [revision, key, value|null]. */
  watched: [number, string, string | null][][];
  watchResumes: number;
}

export class Workload {
  private stop = false;
  private readonly start = performance.now();
  readonly result: WorkloadResult = {
    history: [],
    acked: new Map(),
    ops: { ok: 0, unknown: 0, notSent: 0, failedReads: 0 },
    watched: [],
    watchResumes: 0,
  };
  private tasks: Promise<void>[] = [];
  private watchRequests: ReturnType<typeof https.request>[] = [];

  constructor(readonly cluster: ProcessCluster, readonly writers = 4, readonly watchers = 2) {}

  private now(): number {
    return performance.now() - this.start;
  }

  private live() {
    return this.cluster.members.filter((m) => !m.stopped);
  }

  /** The revision the watchers start from (the first one after what the cluster held). */
  fromRevision = 0;

  /** Starts writers and watchers; watchers see every revision from `fromRevision` on. */
  run(fromRevision: number): void {
    assert.ok(fromRevision >= 2, `watch start revision ${fromRevision}`);
    this.fromRevision = fromRevision;
    for (let c = 0; c < this.writers; c++) this.tasks.push(this.writer(c));
    for (let w = 0; w < this.watchers; w++) {
      this.result.watched.push([]);
      this.tasks.push(this.watcher(w));
    }
  }

  async finish(): Promise<WorkloadResult> {
    this.stop = true;
    for (const r of this.watchRequests) r.destroy();
    await Promise.all(this.tasks);
    return this.result;
  }

  /** Lets watchers catch up to `revision` before finishing. */
  async waitWatchers(revision: number, timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.result.watched.every((w) => w.length > 0 && w[w.length - 1][0] >= revision)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async writer(c: number): Promise<void> {
    let n = 0;
    while (!this.stop) {
      const live = this.live();
      if (live.length === 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const m = live[Math.floor(Math.random() * live.length)];
      const key = LIN_KEYS[Math.floor(Math.random() * LIN_KEYS.length)];
      const kind = n % 3;
      n++;
      if (kind === 0) {
        // read
        const call = this.now();
        try {
          const r = await post(m.address, "/v3/kv/range", { key: b64(key) });
          if (r.status !== 200) {
            this.result.ops.failedReads++;
            continue;
          }
          const kvs = (r.body.kvs ?? []) as { value?: string }[];
          const value = kvs.length > 0 ? unb64(kvs[0].value ?? "") : null;
          this.result.history.push({
            clientId: c,
            input: { op: "get", key },
            call,
            return: this.now(),
            output: { value },
          });
          this.result.ops.ok++;
        } catch {
          this.result.ops.failedReads++;
        }
      } else {
        const value = `c${c}-${n}`;
        const ackKey = kind === 2 ? `/t/ack/${value}` : undefined;
        const k = ackKey ?? key;
        const call = this.now();
        // The put may or may not have happened: it stays open in the history (never returned).
        const outcomeUnknown = () => {
          if (!ackKey) {
            this.result.history.push({
              clientId: c,
              input: { op: "put", key, value },
              call,
              return: Infinity,
              output: undefined,
            });
          }
          this.result.ops.unknown++;
        };
        try {
          const r = await post(m.address, "/v3/kv/put", { key: b64(k), value: b64(value) });
          if (r.status === 200) {
            if (ackKey) {
              this.result.acked.set(ackKey, value);
            } else {
              this.result.history.push({
                clientId: c,
                input: { op: "put", key, value },
                call,
                return: this.now(),
                output: {},
              });
            }
            this.result.ops.ok++;
          } else {
            outcomeUnknown();
          }
        } catch (e) {
          if (e instanceof NotSent) {
            this.result.ops.notSent++;
            continue;
          }
          outcomeUnknown();
        }
      }
    }
  }

  /** Watches the whole keyspace (the cluster's own /twill writes too, so every revision is an
   *  event) from `fromRevision` on; on any break, resumes from the last seen revision + 1. */
  private async watcher(w: number): Promise<void> {
    const events = this.result.watched[w];
    let next = this.fromRevision;
    let attempt = w;
    while (!this.stop) {
      const live = this.live();
      if (live.length === 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const m = live[attempt++ % live.length];
      await new Promise<void>((resolve) => {
        const [host, port] = m.address.split(":");
        const body = JSON.stringify({
          create_request: {
            key: b64("\0"),
            range_end: b64("\0"),
            start_revision: String(next),
          },
        });
        const req = https.request({
          host,
          port: Number(port),
          path: "/v3/watch",
          method: "POST",
          agent: false,
          ca: clusterTrust().caPem,
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${clusterTrust().admin}`,
          },
        }, (res) => {
          let buf = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            buf += chunk;
            let i;
            while ((i = buf.indexOf("\n")) >= 0) {
              const line = buf.slice(0, i).trim();
              buf = buf.slice(i + 1);
              if (!line) continue;
              let msg;
              try {
                msg = JSON.parse(line);
              } catch {
                continue;
              }
              const result = msg.result ?? {};
              for (const e of result.events ?? []) {
                const rev = Number(e.kv?.mod_revision ?? 0);
                events.push([
                  rev,
                  unb64(e.kv?.key),
                  e.type === "DELETE" ? null : unb64(e.kv?.value ?? ""),
                ]);
                next = Math.max(next, rev + 1);
              }
              if (result.canceled) req.destroy();
            }
          });
          res.on("end", () => resolve());
          res.on("error", () => resolve());
          res.on("close", () => resolve());
        });
        this.watchRequests.push(req);
        req.on("error", () => resolve());
        req.on("close", () => resolve());
        req.end(body);
      });
      if (!this.stop) {
        this.result.watchResumes++;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

/** Every watcher saw revisions in strictly increasing order, without gaps, from `from` to
 *  `upTo`. */
export function checkWatchStreams(
  watched: [number, string, string | null][][],
  from: number,
  upTo: number,
): string[] {
  const problems: string[] = [];
  watched.forEach((events, w) => {
    let expect = from;
    for (const [rev] of events) {
      if (rev < expect) {
        problems.push(
          `watcher ${w}: revision ${rev} seen again or out of order (expected ${expect})`,
        );
        return;
      }
      if (rev > expect) {
        problems.push(`watcher ${w}: revisions ${expect}..${rev - 1} missing`);
        return;
      }
      expect = rev + 1;
    }
    if (expect <= upTo) {
      problems.push(`watcher ${w}: stopped at revision ${expect - 1}, store is at ${upTo}`);
    }
  });
  return problems;
}
