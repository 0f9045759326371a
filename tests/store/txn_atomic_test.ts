// A txn is applied whole or not at all, and its size is bounded the way etcd bounds it, so that
// applying it is the same on every member: etcd's --max-txn-ops (128) counted with its nesting
// rule (a nested txn has what its parents left of the budget), refused at the API with etcd's
// error, and a command that throws halfway through apply leaves no write behind.
import assert from "node:assert/strict";
import type { Command, RequestOp, TxnRequest } from "../../lib/store/kv.ts";
import { isApplyError } from "../../lib/store/kv.ts";
import { MvccStateMachine } from "../../lib/store/state_machine.ts";
import { createApiApp } from "../../lib/store/api/app.ts";
import { LocalKv } from "../../lib/store/local_kv.ts";

const b = (s: string) => new TextEncoder().encode(s);
const put = (key: string, value = "v", lease = "0"): RequestOp => ({
  put: { key: b(key), value: b(value), lease, prevKv: false },
});

Deno.test("a txn that throws halfway through apply leaves no partial writes", () => {
  const run = (failing: boolean) => {
    const sm = new MvccStateMachine();
    sm.apply(1, { op: "leaseGrant", requestId: "", id: "7", ttl: 60 });
    sm.apply(2, {
      op: "put",
      requestId: "",
      key: b("old"),
      value: b("x"),
      lease: "7",
      prevKv: false,
    });
    const events: number[] = [];
    sm.subscribe((batch) => events.push(batch.revision));
    if (failing) {
      // A command no API would build (a range key that is not bytes: a bug, or another
      // version's entry). Its puts and delete run before the range throws.
      const bad = { range: { key: "not bytes", rangeEnd: b(""), limit: 0, revision: "0" } };
      const cmd = {
        op: "txn",
        requestId: "",
        compare: [],
        success: [
          put("a", "1", "7"),
          { deleteRange: { key: b("old"), rangeEnd: b(""), prevKv: false } },
          bad,
          put("b", "2"),
        ],
        failure: [],
      } as unknown as Command;
      const r = sm.apply(3, cmd);
      assert.ok(isApplyError(r), "the failed txn is answered with an error");
      assert.equal(r.error.code, "internal");
      assert.deepEqual(events, [], "no event for a write that did not happen");
    } else sm.skip(3);
    sm.apply(4, {
      op: "put",
      requestId: "",
      key: b("c"),
      value: b("3"),
      lease: "0",
      prevKv: false,
    });
    return { sm, events };
  };
  const failed = run(true);
  const skipped = run(false);
  assert.equal(failed.sm.revision, 3, "only the put after it made a revision");
  assert.equal(failed.sm.range(rangeOf("a")).kvs.length, 0);
  assert.equal(failed.sm.range(rangeOf("old")).kvs.length, 1);
  assert.deepEqual(failed.sm.lease("7")!.keys, [b("old")]);
  assert.deepEqual(failed.sm.eventsSince(1).map((e) => e.revision), [2, 3]);
  assert.deepEqual(failed.events, [3]);
  assert.deepEqual(failed.sm.snapshot(), skipped.sm.snapshot(), "as if it had never been applied");
});

function rangeOf(key: string) {
  return {
    key: b(key),
    rangeEnd: b(""),
    limit: 0,
    revision: "0",
    keysOnly: false,
    countOnly: false,
    serializable: true,
  };
}

const puts = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => put(prefix + i));
const txn = (success: RequestOp[]): TxnRequest => ({ compare: [], success, failure: [] });
const nest = (inner: TxnRequest, ...more: RequestOp[]): TxnRequest =>
  txn([{ txn: inner }, ...more]);
const chain = (depth: number): TxnRequest => {
  let t = txn([put("deep")]);
  for (let i = 0; i < depth; i++) t = nest(t);
  return t;
};

/** What etcd 3.4 answers (checked against etcd-server 3.4.23 with --max-txn-ops 128). */
const CASES: [string, TxnRequest, boolean][] = [
  ["128 puts", txn(puts(128, "a")), true],
  ["129 puts", txn(puts(129, "a")), false],
  ["a nested txn of 127 puts", nest(txn(puts(127, "b"))), true],
  ["a nested txn of 128 puts", nest(txn(puts(128, "b"))), false],
  ["two ops around a nested txn of 126", nest(txn(puts(126, "c")), put("z")), true],
  ["two ops around a nested txn of 127", nest(txn(puts(127, "c")), put("z")), false],
  ["127 nested txns", chain(127), true],
  ["128 nested txns", chain(128), false],
  ["5,000 nested txns", chain(5000), false],
];

Deno.test("txn size and nesting are refused at the API as etcd refuses them", async () => {
  const kv = new LocalKv({ expiryCheckMs: 0 });
  const app = createApiApp(kv, { token: "t" });
  try {
    for (const [what, req, ok] of CASES) {
      const res = await app.request("/v3/kv/txn", {
        method: "POST",
        headers: { authorization: "Bearer t" },
        body: jsonText(req),
      });
      const body = await res.json();
      if (ok) {
        assert.equal(res.status, 200, `${what}: ${JSON.stringify(body)}`);
        continue;
      }
      assert.equal(res.status, 400, what);
      assert.deepEqual(body, {
        error: "etcdserver: too many operations in txn request",
        message: "etcdserver: too many operations in txn request",
        code: 3,
      }, what);
    }
  } finally {
    kv.close();
  }
});

Deno.test("the state machine refuses an oversized txn whole, the same way on every member", () => {
  for (const [what, req, ok] of CASES) {
    const sm = new MvccStateMachine();
    const r = sm.apply(1, { op: "txn", requestId: "", ...req });
    assert.equal(!isApplyError(r), ok, what);
    if (!ok) {
      assert.deepEqual(r, {
        error: {
          code: "invalidArgument",
          message: "etcdserver: too many operations in txn request",
        },
      }, what);
      assert.equal(sm.revision, 1, what);
    }
  }
});

/** The JSON gateway's form of a txn (built without recursion: some are nested 5,000 deep). */
function jsonText(t: TxnRequest): string {
  const key = (k: Uint8Array) => btoa(String.fromCharCode(...k));
  let open = "";
  let close = "";
  for (;;) {
    const rest = t.success.slice(1).map((o) => {
      if (!("put" in o)) throw new Error("only puts after a nested txn here");
      return `{"request_put":{"key":"${key(o.put.key)}","value":"dg=="}}`;
    });
    const first = t.success[0];
    if (first && "txn" in first) {
      open += `{"success":[{"request_txn":`;
      close = `}${rest.map((r) => "," + r).join("")}]}` + close;
      t = first.txn;
      continue;
    }
    const all = t.success.map((o) => {
      if (!("put" in o)) throw new Error("only puts here");
      return `{"request_put":{"key":"${key(o.put.key)}","value":"dg=="}}`;
    });
    return `${open}{"success":[${all.join(",")}]}${close}`;
  }
}
