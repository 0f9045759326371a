// One fixed sequence of etcd v3 JSON API calls, run against any endpoint (a real etcd 3.4, twill
// on a LocalKv, a 3-member twill cluster...) and recorded as a transcript normalised so two
// correct servers give equal transcripts: member/cluster ids and raft terms are dropped, the one
// server-chosen lease id is replaced by a placeholder, remaining-TTL values are bucketed, and
// JSON-parser wording (Go vs JS) is compared by code and status only. Watch responses are
// compared as their flattened event lists (batching is the server's choice).

import assert from "node:assert/strict";
import { ndjson } from "../../../lib/etcd/client.ts";

export interface Step {
  name: string;
  status: number;
  body: unknown;
}

export interface ScenarioOptions {
  token?: string;
  /** For an https endpoint: the client that trusts its CA. */
  client?: Deno.HttpClient;
  /** Called between steps, e.g. to kill a member; unused by the basic run. */
  log?: (msg: string) => void;
}

const te = new TextEncoder();
const b64 = (s: string | Uint8Array) => {
  const u = typeof s === "string" ? te.encode(s) : s;
  return btoa(String.fromCharCode(...u));
};

type Json = Record<string, unknown>;

/** A response without the fields that differ between servers (cluster, member, term). */
export function stripHeader(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripHeader);
  if (v && typeof v === "object") {
    const out: Json = {};
    for (const [k, x] of Object.entries(v as Json)) {
      if (k === "cluster_id" || k === "member_id" || k === "raft_term") continue;
      out[k] = stripHeader(x);
    }
    return out;
  }
  return v;
}

export async function runDifferentialScenario(
  endpoint: string,
  opts: ScenarioOptions = {},
): Promise<Step[]> {
  const steps: Step[] = [];
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;

  async function call(
    name: string,
    path: string,
    body: unknown,
    how: "exact" | "codeOnly" = "exact",
  ): Promise<Json> {
    const res = await fetch(endpoint + path, {
      client: opts.client,
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    const raw = await res.text();
    let parsed: Json;
    try {
      parsed = JSON.parse(raw.split("\n")[0]) as Json;
    } catch {
      parsed = { unparsable: raw };
    }
    let recorded: unknown = stripHeader(parsed);
    if (how === "codeOnly") recorded = { code: parsed.code };
    steps.push({ name, status: res.status, body: recorded });
    return parsed;
  }

  /** Opens a watch, reads responses until `until` says enough (or 5 s), returns them. */
  async function watch(
    name: string,
    create: Json,
    until: (events: unknown[], responses: Json[]) => boolean,
    during?: () => Promise<void>,
  ): Promise<void> {
    const ctrl = new AbortController();
    const res = await fetch(endpoint + "/v3/watch", {
      client: opts.client,
      method: "POST",
      headers,
      body: JSON.stringify({ create_request: create }),
      signal: ctrl.signal,
    });
    const responses: Json[] = [];
    const events: unknown[] = [];
    const deadline = setTimeout(() => ctrl.abort(), 5000);
    let started = false;
    try {
      for await (const line of ndjson(res, ctrl.signal)) {
        const r = line.result as Json;
        responses.push(r);
        events.push(...((r.events as unknown[]) ?? []));
        if (!started && r.created && during) {
          started = true;
          await during();
        }
        if (until(events, responses)) break;
      }
    } catch (e) {
      if (!ctrl.signal.aborted) throw e;
    } finally {
      clearTimeout(deadline);
      ctrl.abort();
    }
    const created = responses.find((r) => r.created);
    const canceled = responses.find((r) => r.canceled);
    steps.push({
      name,
      status: res.status,
      body: stripHeader({
        created: created ?? null,
        canceled: canceled ?? null,
        events,
      }),
    });
  }

  const put = (k: string, v: string, extra: Json = {}) => ({
    key: b64(k),
    value: b64(v),
    ...extra,
  });

  // --- puts, ranges, revisions
  await call("put a", "/v3/kv/put", put("a", "1"));
  await call("put a again with prev_kv", "/v3/kv/put", put("a", "2", { prev_kv: true }));
  for (const k of ["b", "c", "d", "e/1", "e/2", "\u00ff"]) {
    await call(`put ${k}`, "/v3/kv/put", put(k, `v-${k}`));
  }
  await call("range one key", "/v3/kv/range", { key: b64("a") });
  await call("range missing key", "/v3/kv/range", { key: b64("zz") });
  await call("range with range_end and limit", "/v3/kv/range", {
    key: b64("a"),
    range_end: b64("e"),
    limit: 2,
  });
  await call("range all keys (\\0)", "/v3/kv/range", { key: b64("\0"), range_end: b64("\0") });
  await call("range prefix count_only", "/v3/kv/range", {
    key: b64("e/"),
    range_end: b64("e0"),
    count_only: true,
  });
  await call("range keys_only", "/v3/kv/range", {
    key: b64("a"),
    range_end: b64("c"),
    keys_only: true,
  });
  await call("range old revision", "/v3/kv/range", { key: b64("a"), revision: "2" });
  await call("range serializable", "/v3/kv/range", { key: b64("a"), serializable: true });
  await call("range future revision", "/v3/kv/range", { key: b64("a"), revision: 1000 });
  await call("range negative revision means current", "/v3/kv/range", {
    key: b64("b"),
    revision: -1,
  });

  // --- deletes
  await call("delete c with prev_kv", "/v3/kv/deleterange", { key: b64("c"), prev_kv: true });
  await call("delete missing key", "/v3/kv/deleterange", { key: b64("c") });
  await call("delete prefix", "/v3/kv/deleterange", { key: b64("e/"), range_end: b64("e0") });
  await call("range deleted key at old revision", "/v3/kv/range", { key: b64("c"), revision: 5 });
  await call("put c again (new create_revision)", "/v3/kv/put", put("c", "again"));
  await call("range c", "/v3/kv/range", { key: b64("c") });

  // --- txn: every compare target and result
  const cmp = (target: string, result: string, field: string, value: unknown, key = "a") => ({
    key: b64(key),
    target,
    result,
    [field]: value,
  });
  const cases: [string, Json][] = [
    ["VERSION EQUAL", cmp("VERSION", "EQUAL", "version", "2")],
    ["VERSION GREATER", cmp("VERSION", "GREATER", "version", "5")],
    ["CREATE LESS", cmp("CREATE", "LESS", "create_revision", "3")],
    ["CREATE NOT_EQUAL", cmp("CREATE", "NOT_EQUAL", "create_revision", "2")],
    ["MOD EQUAL", cmp("MOD", "EQUAL", "mod_revision", "3")],
    ["MOD GREATER", cmp("MOD", "GREATER", "mod_revision", 1)],
    ["VALUE EQUAL", cmp("VALUE", "EQUAL", "value", b64("2"))],
    ["VALUE LESS", cmp("VALUE", "LESS", "value", b64("3"))],
    ["VALUE on missing key", cmp("VALUE", "NOT_EQUAL", "value", b64("x"), "nope")],
    ["VERSION of missing key", cmp("VERSION", "EQUAL", "version", "0", "nope")],
    ["LEASE EQUAL 0", cmp("LEASE", "EQUAL", "lease", "0")],
    ["numeric enums", { key: b64("a"), target: 2, result: 1, mod_revision: "1" }],
    ["range compare", { ...cmp("VERSION", "GREATER", "version", "0", "a"), range_end: b64("c") }],
    ["range compare over nothing", {
      ...cmp("VERSION", "EQUAL", "version", "0", "x"),
      range_end: b64("y"),
    }],
  ];
  for (const [name, c] of cases) {
    await call(`txn compare ${name}`, "/v3/kv/txn", {
      compare: [c],
      success: [{ request_range: { key: b64("a") } }],
      failure: [{ request_range: { key: b64("b") } }],
    });
  }
  await call("txn writes, reads its own write, nested txn", "/v3/kv/txn", {
    compare: [cmp("VALUE", "EQUAL", "value", b64("2"))],
    success: [
      { request_range: { key: b64("t1") } },
      { request_put: { key: b64("t1"), value: b64("x"), prev_kv: true } },
      { request_range: { key: b64("t1") } },
      { request_delete_range: { key: b64("b"), prev_kv: true } },
      {
        request_txn: {
          compare: [cmp("VERSION", "EQUAL", "version", "0", "t2")],
          success: [{ request_put: { key: b64("t2"), value: b64("y") } }],
        },
      },
      { request_txn: {} },
    ],
    failure: [{ request_put: { key: b64("t1"), value: b64("no") } }],
  });
  await call("txn failure branch", "/v3/kv/txn", {
    compare: [cmp("VALUE", "EQUAL", "value", b64("nope"))],
    success: [{ request_put: { key: b64("t3"), value: b64("x") } }],
    failure: [{ request_put: { key: b64("t3"), value: b64("y") } }, {
      request_delete_range: { key: b64("t9") },
    }],
  });
  await call("empty txn", "/v3/kv/txn", {});
  await call("txn duplicate key", "/v3/kv/txn", {
    success: [
      { request_put: { key: b64("d1"), value: b64("1") } },
      { request_put: { key: b64("d1"), value: b64("2") } },
    ],
  });
  await call("txn put inside a deleted range", "/v3/kv/txn", {
    success: [
      { request_put: { key: b64("m"), value: b64("1") } },
      { request_delete_range: { key: b64("l"), range_end: b64("n") } },
    ],
  });
  await call("txn then/else may put the same key", "/v3/kv/txn", {
    success: [{
      request_txn: {
        success: [{ request_put: { key: b64("s"), value: b64("1") } }],
        failure: [{ request_put: { key: b64("s"), value: b64("2") } }],
      },
    }],
  });
  await call("txn range future revision", "/v3/kv/txn", {
    success: [{ request_range: { key: b64("a"), revision: 999 } }],
  });
  await txnLimitSteps(call);

  // --- leases
  await call("grant lease 1001", "/v3/lease/grant", { ID: 1001, TTL: 60 });
  await call("grant lease 1002 (TTL raised to minimum)", "/v3/lease/grant", { ID: "1002", TTL: 1 });
  await call("grant existing lease", "/v3/lease/grant", { ID: 1001, TTL: 60 });
  await call("grant too long TTL", "/v3/lease/grant", { ID: 1003, TTL: 9000000001 });
  const chosen = await call("grant with server-chosen id", "/v3/lease/grant", { TTL: 30 });
  const chosenId = String(chosen.ID);
  await call("put with lease 1001", "/v3/kv/put", put("l/1", "x", { lease: "1001" }));
  await call("put with lease 1001 again", "/v3/kv/put", put("l/2", "x", { lease: 1001 }));
  await call("put with lease 1002", "/v3/kv/put", put("l/3", "x", { lease: "1002" }));
  await call("put with missing lease", "/v3/kv/put", put("l/4", "x", { lease: "4242" }));
  await call("put ignore_value keeps value, changes lease", "/v3/kv/put", {
    key: b64("l/2"),
    ignore_value: true,
    lease: chosenId,
  });
  await call("put ignore_lease on missing key", "/v3/kv/put", {
    key: b64("nokey"),
    value: b64("v"),
    ignore_lease: true,
  });
  await call("put ignore_value with a value", "/v3/kv/put", {
    key: b64("l/2"),
    value: b64("v"),
    ignore_value: true,
  });
  const ttl = await call("timetolive with keys", "/v3/lease/timetolive", { ID: 1001, keys: true });
  (steps[steps.length - 1].body as Json).TTL = Number(ttl.TTL) > 50 ? "live" : String(ttl.TTL);
  await call("timetolive missing lease", "/v3/lease/timetolive", { ID: 4242 });
  await call("keepalive", "/v3/lease/keepalive", { ID: "1001" });
  await call("keepalive missing lease", "/v3/lease/keepalive", { ID: 4242 });
  await call("revoke server-chosen lease", "/v3/lease/revoke", { ID: chosenId });
  await call("range l/ after revoking", "/v3/kv/range", { key: b64("l/"), range_end: b64("l0") });
  await call("revoke 1001", "/v3/lease/revoke", { ID: 1001 });
  await call("revoke 1001 again", "/v3/lease/revoke", { ID: 1001 });

  // Lease 1002 (2 s) expires on its own: wait until its key disappears.
  const until = Date.now() + 8000;
  while (Date.now() < until) {
    const r = await fetch(endpoint + "/v3/kv/range", {
      client: opts.client,
      method: "POST",
      headers,
      body: JSON.stringify({ key: b64("l/3") }),
    }).then((r) => r.json());
    if (!r.kvs) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await call("range after lease expiry", "/v3/kv/range", { key: b64("l/"), range_end: b64("l0") });
  await call("timetolive of expired lease", "/v3/lease/timetolive", { ID: 1002 });

  // --- watches from the past, live, and after compaction
  const now = await call("current revision", "/v3/kv/range", { key: b64("a") });
  const rev = Number((now.header as Json).revision);
  await watch(
    "watch everything from revision 2 with prev_kv",
    { key: b64("\0"), range_end: b64("\0"), start_revision: 2, prev_kv: true },
    (events) => events.some((e) => Number(((e as Json).kv as Json).mod_revision) >= rev),
  );
  await watch(
    "watch a prefix from revision 4",
    { key: b64("e/"), range_end: b64("e0"), start_revision: 4 },
    (events) => events.length >= 4,
  );
  await watch(
    "watch live changes",
    { key: b64("w/"), range_end: b64("w0") },
    (events) => events.length >= 3,
    async () => {
      await call("put w/1 while watching", "/v3/kv/put", put("w/1", "1"));
      await call("put w/1 again while watching", "/v3/kv/put", put("w/1", "2"));
      await call("delete w/1 while watching", "/v3/kv/deleterange", { key: b64("w/1") });
    },
  );

  // physical: etcd answers once the old revisions are really gone, so what a watcher replays
  // from the compaction point does not depend on its background compaction.
  await call("compact to revision 6", "/v3/kv/compaction", { revision: 6, physical: true });
  await call("compact to revision 6 again", "/v3/kv/compaction", { revision: 6 });
  await call("compact to a future revision", "/v3/kv/compaction", { revision: 100000 });
  await call("range below the compacted revision", "/v3/kv/range", { key: b64("a"), revision: 5 });
  await call("range at the compacted revision", "/v3/kv/range", { key: b64("a"), revision: 6 });
  await watch(
    "watch from a compacted revision",
    { key: b64("a"), start_revision: 3 },
    (_e, responses) => responses.some((r) => r.canceled),
  );
  const last = Number(
    ((await call("revision after compaction", "/v3/kv/range", {
      key: b64("a"),
    })).header as Json).revision,
  );
  await watch(
    "watch from the compacted revision itself",
    { key: b64("\0"), range_end: b64("\0"), start_revision: 6 },
    (events) => events.some((e) => Number(((e as Json).kv as Json).mod_revision) >= last),
  );

  // --- malformed requests
  await call("invalid JSON", "/v3/kv/range", "{not json", "codeOnly");
  await call("wrong type for key", "/v3/kv/range", { key: 5 });
  await call("wrong type for bool", "/v3/kv/range", { key: b64("a"), keys_only: "yes" });
  await call("bad base64", "/v3/kv/put", { key: "Y", value: b64("v") }, "codeOnly");
  await call("empty key", "/v3/kv/put", { value: b64("v") });
  await call("empty body", "/v3/kv/range", "");
  await call("unknown enum", "/v3/kv/txn", { compare: [{ key: b64("a"), target: "BLAH" }] });
  await call("array instead of object", "/v3/kv/range", "[]");
  await call("empty key in delete", "/v3/kv/deleterange", {});
  await call("txn with an empty operation", "/v3/kv/txn", { success: [{}] });
  await call("compaction to a negative revision", "/v3/kv/compaction", { revision: -5 });
  await call("wrong type for a lease TTL", "/v3/lease/grant", { TTL: true });
  await call("a string instead of an object", "/v3/kv/range", '"string"');
  await call("a request over 1.5 MiB", "/v3/kv/put", {
    key: b64("big"),
    value: btoa("A".repeat(1.6 * 1024 * 1024)),
  });
  await call("a large request under 1.5 MiB", "/v3/kv/put", {
    key: b64("big"),
    value: btoa("A".repeat(1.4 * 1024 * 1024)),
  });

  return replaceString(steps, chosenId, "<chosen>") as Step[];
}

function replaceString(v: unknown, from: string, to: string): unknown {
  if (v === from) return to;
  if (Array.isArray(v)) return v.map((x) => replaceString(x, from, to));
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v as Json).map(([k, x]) => [k, replaceString(x, from, to)]),
    );
  }
  return v;
}

/** Fails with the first differing step spelled out, then the full structural diff. */
export function assertSameTranscript(twill: Step[], etcd: Step[]): void {
  let first = "none";
  for (let i = 0; i < Math.max(twill.length, etcd.length); i++) {
    const x = JSON.stringify(twill[i]);
    const y = JSON.stringify(etcd[i]);
    if (x !== y) {
      first = `step ${i} (${twill[i]?.name ?? etcd[i]?.name}):\n twill: ${x}\n etcd:  ${y}`;
      break;
    }
  }
  assert.deepEqual(twill, etcd, `first difference: ${first}`);
}

/** etcd's --max-txn-ops (128) through nesting: the longest list of a txn is its operation count,
 *  and a nested txn may use only what its parents left. */
async function txnLimitSteps(
  call: (name: string, path: string, body: unknown) => Promise<unknown>,
): Promise<void> {
  const puts = (n: number, prefix: string) =>
    Array.from({ length: n }, (_, i) => ({
      request_put: { key: b64(`${prefix}${i}`), value: b64("v") },
    }));
  const chain = (depth: number) => {
    let t: Record<string, unknown> = { success: puts(1, "deep") };
    for (let i = 0; i < depth; i++) t = { success: [{ request_txn: t }] };
    return t;
  };
  await call("txn of 129 puts", "/v3/kv/txn", { success: puts(129, "o") });
  await call("txn of 129 compares", "/v3/kv/txn", {
    compare: Array.from({ length: 129 }, () => ({ key: b64("a"), target: "VERSION" })),
  });
  await call("nested txn of 128 puts", "/v3/kv/txn", {
    success: [{ request_txn: { success: puts(128, "o") } }],
  });
  await call("two ops around a nested txn of 127 puts", "/v3/kv/txn", {
    success: [{ request_txn: { success: puts(127, "o") } }, ...puts(1, "p")],
  });
  await call("127 nested txns", "/v3/kv/txn", chain(127));
  await call("128 nested txns", "/v3/kv/txn", chain(128));
}
