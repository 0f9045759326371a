// A seeded random walk over the etcd v3 JSON API (puts with and without leases, deletes of keys
// and ranges, ranges at old revisions with limits, txns with random compares and nested
// branches, lease grants and revokes, compactions, and a watch from revision 1 that must see
// every event), recorded like differential_scenario.ts so two servers can be compared. Nothing
// here depends on timing: leases are long and never left to expire.

import { type Step, stripHeader as strip } from "./differential_scenario.ts";
import { ndjson } from "../../../lib/etcd/client.ts";

type Json = Record<string, unknown>;

/** mulberry32: a small deterministic PRNG. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const b64 = (s: string) => btoa(s);

export async function runRandomScenario(
  endpoint: string,
  seed: number,
  ops: number,
  token?: string,
): Promise<Step[]> {
  const rand = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const int = (n: number) => Math.floor(rand() * n);
  const keys = ["a", "a/1", "a/2", "b", "b/1", "c", "d/x", "d/y", "\u00ff"];
  const ends = ["", "", "b", "c", "d/y", "\0", "a0", "e"];
  const leaseIds = ["11", "12", "13"];
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const steps: Step[] = [];
  let revision = 1;
  let compacted = 0;

  const call = async (name: string, path: string, body: Json): Promise<Json> => {
    const res = await fetch(endpoint + path, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    const json = await res.json() as Json;
    const rev = Number((json.header as Json | undefined)?.revision ?? 0);
    if (rev > revision) revision = rev;
    steps.push({ name: `${name} ${JSON.stringify(body)}`, status: res.status, body: strip(json) });
    return json;
  };

  // A watch on everything from revision 1, read at the end.
  const ctrl = new AbortController();
  const watchRes = await fetch(endpoint + "/v3/watch", {
    method: "POST",
    headers,
    body: JSON.stringify({
      create_request: { key: b64("\0"), range_end: b64("\0"), prev_kv: true },
    }),
    signal: ctrl.signal,
  });

  const rangeOf = (): Json => {
    const r: Json = { key: b64(pick(keys)) };
    const end = pick(ends);
    if (end) r.range_end = b64(end);
    if (rand() < 0.3) r.limit = 1 + int(3);
    if (rand() < 0.3) r.revision = Math.max(1, revision - int(6));
    if (rand() < 0.1) r.count_only = true;
    if (rand() < 0.1) r.keys_only = true;
    return r;
  };
  // A txn may hold ignore_* puts or deletes ending in "\0", never both: etcd 3.4 panics on an
  // ignore_* put of a key an earlier "\0" delete of the same txn removed (twill refuses it).
  let inTxnWithIgnore = false;
  const putOf = (inTxn = false): Json => {
    const p: Json = { key: b64(pick(keys)), value: b64(`v${int(5)}`) };
    if (rand() < 0.25) p.lease = pick(leaseIds);
    if (rand() < 0.3) p.prev_kv = true;
    const r = inTxn && !inTxnWithIgnore ? 1 : rand();
    if (r < 0.06) {
      delete p.value;
      p.ignore_value = true;
    } else if (r < 0.12) {
      delete p.lease;
      p.ignore_lease = true;
    }
    return p;
  };
  const delOf = (inTxn = false): Json => {
    const d: Json = { key: b64(pick(keys)) };
    const end = pick(inTxn && inTxnWithIgnore ? ends.filter((e) => e !== "\0") : ends);
    if (end) d.range_end = b64(end);
    if (rand() < 0.5) d.prev_kv = true;
    return d;
  };
  const compareOf = (): Json => {
    const target = pick(["VERSION", "CREATE", "MOD", "VALUE", "LEASE"]);
    const c: Json = {
      key: b64(pick(keys)),
      target,
      result: pick(["EQUAL", "GREATER", "LESS", "NOT_EQUAL"]),
    };
    if (rand() < 0.2) c.range_end = b64(pick(ends.filter((e) => e)));
    const field = {
      VERSION: "version",
      CREATE: "create_revision",
      MOD: "mod_revision",
      LEASE: "lease",
    };
    if (target === "VALUE") c.value = b64(`v${int(5)}`);
    else {c[field[target as keyof typeof field]] = String(
        target === "LEASE" ? pick(["0", ...leaseIds]) : int(revision + 2),
      );}
    return c;
  };
  const opOf = (depth: number): Json => {
    const r = rand();
    if (r < 0.3) return { request_range: rangeOf() };
    if (r < 0.65) return { request_put: putOf(true) };
    if (r < 0.9 || depth > 0) return { request_delete_range: delOf(true) };
    return { request_txn: txnOf(depth + 1) };
  };
  const txnOf = (depth: number): Json => ({
    compare: Array.from({ length: int(3) }, compareOf),
    success: Array.from({ length: int(3) }, () => opOf(depth)),
    failure: Array.from({ length: int(3) }, () => opOf(depth)),
  });

  for (let i = 0; i < ops; i++) {
    const r = rand();
    if (r < 0.3) await call(`${i} put`, "/v3/kv/put", putOf());
    else if (r < 0.45) await call(`${i} range`, "/v3/kv/range", rangeOf());
    else if (r < 0.6) await call(`${i} delete`, "/v3/kv/deleterange", delOf());
    else if (r < 0.85) {
      inTxnWithIgnore = rand() < 0.5;
      await call(`${i} txn`, "/v3/kv/txn", txnOf(0));
    } else if (r < 0.91) {
      await call(`${i} grant`, "/v3/lease/grant", { ID: pick(leaseIds), TTL: 3600 });
    } else if (r < 0.96) await call(`${i} revoke`, "/v3/lease/revoke", { ID: pick(leaseIds) });
    else {
      const to = compacted + 1 + int(Math.max(1, revision - compacted));
      const res = await call(`${i} compact`, "/v3/kv/compaction", {
        revision: to,
        physical: true,
      });
      if (!res.error) compacted = to;
    }
  }

  // Every event, each once, in revision order (compaction does not cut a synced watcher).
  const events = await readEvents(watchRes, ctrl, revision);
  steps.push({ name: "all events", status: watchRes.status, body: strip(events) });

  // History replayed from the compaction point with prev_kv (etcd drops a prev_kv that was
  // compacted away).
  const from = Math.max(compacted, 1);
  const ctrl2 = new AbortController();
  const replay = await fetch(endpoint + "/v3/watch", {
    method: "POST",
    headers,
    body: JSON.stringify({
      create_request: { key: b64("\0"), range_end: b64("\0"), prev_kv: true, start_revision: from },
    }),
    signal: ctrl2.signal,
  });
  const replayed = await readEvents(replay, ctrl2, revision);
  steps.push({ name: `events from ${from}`, status: replay.status, body: strip(replayed) });
  return steps;
}

/** Reads watch events until one at `revision` (or 5 s), then closes the stream. */
async function readEvents(
  res: Response,
  ctrl: AbortController,
  revision: number,
): Promise<unknown[]> {
  const events: unknown[] = [];
  const reached = () => {
    const last = events.at(-1) as Json | undefined;
    return revision <= 1 ||
      (last !== undefined && Number((last.kv as Json).mod_revision) >= revision);
  };
  const deadline = setTimeout(() => ctrl.abort(), 5000);
  try {
    if (!reached()) {
      for await (const line of ndjson(res, ctrl.signal)) {
        events.push(...(((line.result as Json).events as unknown[]) ?? []));
        if (reached()) break;
      }
    }
  } catch (e) {
    if (!ctrl.signal.aborted) throw e;
  } finally {
    clearTimeout(deadline);
    ctrl.abort();
  }
  return events;
}
