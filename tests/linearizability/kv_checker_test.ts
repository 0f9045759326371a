import assert from "node:assert/strict";
import { checkLinearizable, kvModel } from "../../lib/linearizability/mod.ts";
import type { KvInput, KvOutput, Operation } from "../../lib/linearizability/mod.ts";

type Op = Operation<KvInput, KvOutput>;

const put = (c: number, key: string, value: string, call: number, ret: number): Op => ({
  clientId: c,
  input: { op: "put", key, value },
  call,
  return: ret,
  output: ret === Infinity ? undefined : {},
});
const del = (c: number, key: string, call: number, ret: number): Op => ({
  clientId: c,
  input: { op: "delete", key },
  call,
  return: ret,
  output: ret === Infinity ? undefined : {},
});
const get = (c: number, key: string, value: string | null, call: number, ret: number): Op => ({
  clientId: c,
  input: { op: "get", key },
  call,
  return: ret,
  output: { value },
});
const cas = (
  c: number,
  key: string,
  expected: string | null,
  value: string,
  ok: boolean | undefined,
  call: number,
  ret: number,
): Op => ({
  clientId: c,
  input: { op: "cas", key, expected, value },
  call,
  return: ok === undefined ? Infinity : ret,
  output: ok === undefined ? undefined : { ok },
});

function accepts(history: Op[]) {
  const r = checkLinearizable(kvModel, history);
  assert.equal(r.verdict, "ok", r.verdict === "ok" ? "" : r.explanation);
}
function rejects(history: Op[], key = "k") {
  const r = checkLinearizable(kvModel, history);
  assert.equal(r.verdict, "illegal");
  if (r.verdict === "illegal") {
    assert.equal(r.partition, key);
    assert.match(r.explanation, /not linearizable/);
  }
}

Deno.test("an empty history is linearizable", () => accepts([]));

Deno.test("sequential put then get of the written value is linearizable", () => {
  accepts([put(1, "k", "a", 0, 1), get(2, "k", "a", 2, 3)]);
});

Deno.test("a read concurrent with a write may see the old or the new value", () => {
  accepts([
    put(1, "k", "a", 0, 1),
    put(1, "k", "b", 2, 10),
    get(2, "k", "a", 3, 4),
    get(3, "k", "b", 5, 6),
  ]);
});

Deno.test("concurrent writes may be ordered either way, but reads must agree on one order", () => {
  accepts([
    put(1, "k", "a", 0, 10),
    put(2, "k", "b", 0, 10),
    get(3, "k", "b", 11, 12),
    get(3, "k", "b", 13, 14),
  ]);
  rejects([
    put(1, "k", "a", 0, 10),
    put(2, "k", "b", 0, 10),
    get(3, "k", "a", 11, 12),
    get(4, "k", "b", 13, 14),
  ]);
});

Deno.test("a stale read after a completed write is rejected", () => {
  rejects([put(1, "k", "a", 0, 1), put(1, "k", "b", 2, 3), get(2, "k", "a", 4, 5)]);
});

Deno.test("a lost write (read of the initial value after an acknowledged put) is rejected", () => {
  rejects([put(1, "k", "a", 0, 1), get(2, "k", null, 2, 3)]);
});

Deno.test("a read of a value never written is rejected", () => {
  rejects([put(1, "k", "a", 0, 1), get(2, "k", "zzz", 0, 3)]);
});

Deno.test("a CAS that succeeds when the current value differs from expected is rejected", () => {
  rejects([put(1, "k", "a", 0, 1), cas(2, "k", "x", "b", true, 2, 3)]);
});

Deno.test("a CAS that fails although the value matched is rejected", () => {
  rejects([put(1, "k", "a", 0, 1), cas(2, "k", "a", "b", false, 2, 3)]);
});

Deno.test("CAS success and failure consistent with one order are accepted", () => {
  accepts([
    put(1, "k", "a", 0, 1),
    cas(2, "k", "a", "b", true, 2, 10),
    cas(3, "k", "a", "c", false, 2, 10),
    get(1, "k", "b", 11, 12),
  ]);
  // Both CASes expecting "a" cannot succeed.
  rejects([
    put(1, "k", "a", 0, 1),
    cas(2, "k", "a", "b", true, 2, 10),
    cas(3, "k", "a", "c", true, 2, 10),
  ]);
});

Deno.test("reads going backwards in real time are rejected", () => {
  rejects([
    put(1, "k", "a", 0, 1),
    put(1, "k", "b", 2, 20),
    get(2, "k", "b", 3, 4),
    get(3, "k", "a", 5, 6),
  ]);
});

Deno.test("delete makes the key absent; reading the old value after it is rejected", () => {
  accepts([put(1, "k", "a", 0, 1), del(1, "k", 2, 3), get(2, "k", null, 4, 5)]);
  rejects([put(1, "k", "a", 0, 1), del(1, "k", 2, 3), get(2, "k", "a", 4, 5)]);
  accepts([cas(1, "k", null, "a", true, 0, 1), cas(1, "k", null, "b", false, 2, 3)]);
});

Deno.test("an unknown-outcome write may take effect late or never", () => {
  // Took effect after a later read:
  accepts([put(1, "k", "a", 0, Infinity), get(2, "k", null, 5, 6), get(2, "k", "a", 7, 8)]);
  // Never took effect:
  accepts([put(1, "k", "a", 0, Infinity), get(2, "k", null, 5, 6)]);
  // But not before its call:
  rejects([get(2, "k", "a", 0, 1), put(1, "k", "a", 5, Infinity)]);
  // And once seen, it cannot disappear:
  rejects([put(1, "k", "a", 0, Infinity), get(2, "k", "a", 5, 6), get(2, "k", null, 7, 8)]);
});

Deno.test("an unknown-outcome CAS may have failed or succeeded", () => {
  accepts([put(1, "k", "a", 0, 1), cas(2, "k", "a", "b", undefined, 2, 0), get(3, "k", "a", 5, 6)]);
  accepts([put(1, "k", "a", 0, 1), cas(2, "k", "a", "b", undefined, 2, 0), get(3, "k", "b", 5, 6)]);
  rejects([put(1, "k", "a", 0, 1), cas(2, "k", "x", "b", undefined, 2, 0), get(3, "k", "b", 5, 6)]);
});

Deno.test("keys are checked independently and the failing key is named", () => {
  const r = checkLinearizable(kvModel, [
    put(1, "x", "a", 0, 1),
    get(2, "x", "a", 2, 3),
    put(1, "y", "b", 0, 1),
    get(2, "y", null, 2, 3),
  ]);
  assert.equal(r.verdict, "illegal");
  if (r.verdict === "illegal") {
    assert.equal(r.partition, "y");
    assert.match(r.explanation, /key "y"/);
    assert.match(r.explanation, /get\(y\) -> absent/);
  }
});

Deno.test("the explanation shows the longest valid prefix and the blocked operation", () => {
  const r = checkLinearizable(kvModel, [
    put(1, "k", "a", 0, 1),
    put(1, "k", "b", 2, 3),
    get(2, "k", "a", 4, 5),
  ]);
  assert.equal(r.verdict, "illegal");
  if (r.verdict === "illegal") {
    assert.match(r.explanation, /Longest valid prefix \(2 operations/);
    assert.match(r.explanation, /State after it: "b"/);
    assert.match(r.explanation, /client 2: get\(k\) -> "a"/);
  }
});

Deno.test("a large concurrent valid history is checked quickly thanks to memoisation", () => {
  // 8 clients, 400 operations on one key, each client sequential, heavy overlap.
  const ops: Op[] = [];
  let value: string | null = null;
  let t = 0;
  for (let round = 0; round < 50; round++) {
    // Each round: all 8 clients overlap; writes happen in client order, reads see the final one.
    const start = t;
    const writes: Op[] = [];
    for (let c = 0; c < 4; c++) writes.push(put(c, "k", `v${round}-${c}`, start, start + 10));
    value = `v${round}-3`;
    const reads: Op[] = [];
    for (let c = 4; c < 8; c++) reads.push(get(c, "k", value, start + 5, start + 20));
    ops.push(...writes, ...reads);
    t += 30;
  }
  const began = performance.now();
  accepts(ops);
  assert.ok(performance.now() - began < 5000);
});

Deno.test("a call after the return time is a caller error with a clear message", () => {
  assert.throws(
    () =>
      checkLinearizable(kvModel, [{
        clientId: 1,
        input: { op: "get", key: "k" },
        call: 5,
        return: 2,
        output: { value: null },
      }]),
    /returns \(2\) before its call \(5\)/,
  );
});
