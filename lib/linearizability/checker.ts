// Linearizability checking in the style of Porcupine: the Wing–Gong search with Lowe's
// memoisation (a cache of (set of linearized operations, model state) already explored), run
// separately on each partition of a P-compositional model.
import type { Operation } from "./history.ts";
import type { Model } from "./model.ts";

export interface CheckOptions {
  /** Give up (verdict "unknown") after this many search steps in one partition. */
  maxStepsPerPartition?: number;
}

export type CheckResult =
  | { verdict: "ok" }
  | {
    verdict: "illegal";
    /** The partition (e.g. the key) whose sub-history has no valid order. */
    partition: string;
    /** People-readable: the longest valid prefix and the operations that cannot follow it. */
    explanation: string;
  }
  | { verdict: "unknown"; partition: string; explanation: string };

interface ListNode {
  /** Operation index within the partition; -1 for the sentinel. */
  id: number;
  isCall: boolean;
  time: number;
  match: ListNode | null;
  prev: ListNode | null;
  next: ListNode | null;
}

/** Checks that `history` is linearizable with respect to `model`. */
export function checkLinearizable<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult {
  const parts = new Map<string, Operation<I, O>[]>();
  for (const op of history) {
    const key = model.partitionKey ? model.partitionKey(op.input) : "";
    let list = parts.get(key);
    if (!list) parts.set(key, list = []);
    list.push(op);
  }
  const keys = [...parts.keys()].sort();
  for (const key of keys) {
    const result = checkPartition(model, key, parts.get(key)!, options.maxStepsPerPartition ?? 5e6);
    if (result.verdict !== "ok") return result;
  }
  return { verdict: "ok" };
}

function checkPartition<S, I, O>(
  model: Model<S, I, O>,
  partition: string,
  ops: Operation<I, O>[],
  maxSteps: number,
): CheckResult {
  const n = ops.length;
  const head = eventList(model, ops);

  const words = Math.ceil(n / 32) || 1;
  const linearized = new Uint32Array(words);
  const cache = new Set<string>();
  const calls: { entry: ListNode; state: S }[] = [];
  let state = model.init();
  let entry = head.next;
  let best: number[] = [];
  let steps = 0;

  while (head.next !== null) {
    if (++steps > maxSteps) {
      return {
        verdict: "unknown",
        partition,
        explanation:
          `the search for ${
            JSON.stringify(partition)
          } (${n} operations) gave up after ${maxSteps} steps; ` +
          `make the history smaller or more sequential`,
      };
    }
    if (entry === null) throw new Error("linearizability search ran off the event list (bug)");
    if (entry.isCall) {
      const op = ops[entry.id];
      const next = model.step(state, op.input, op.output);
      if (next !== undefined) {
        linearized[entry.id >>> 5] ^= 1 << (entry.id & 31);
        const key = linearized.join(",") + "|" + model.stateKey(next);
        if (!cache.has(key)) {
          cache.add(key);
          calls.push({ entry, state });
          state = next;
          lift(entry);
          if (calls.length > best.length) best = calls.map((c) => c.entry.id);
          entry = head.next;
          continue;
        }
        linearized[entry.id >>> 5] ^= 1 << (entry.id & 31);
      }
      entry = entry.next;
    } else {
      // A return with its call not yet linearized: backtrack.
      const top = calls.pop();
      if (top === undefined) {
        return { verdict: "illegal", partition, explanation: explain(model, partition, ops, best) };
      }
      entry = top.entry;
      state = top.state;
      linearized[entry.id >>> 5] ^= 1 << (entry.id & 31);
      unlift(entry);
      entry = entry.next;
    }
  }
  return { verdict: "ok" };
}

/**
 * The time-ordered, doubly linked list of call and return events behind a sentinel head. On
 * equal times calls come first, so operations that touch in time count as concurrent (the
 * permissive reading).
 */
function eventList<S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): ListNode {
  const n = ops.length;
  const nodes: ListNode[] = [];
  for (let i = 0; i < n; i++) {
    const op = ops[i];
    const ret = op.output === undefined ? Infinity : op.return;
    if (!(ret >= op.call)) {
      throw new RangeError(
        `operation ${
          model.describe(op.input, op.output)
        } of client ${op.clientId} returns (${ret}) before its call (${op.call})`,
      );
    }
    const c: ListNode = { id: i, isCall: true, time: op.call, match: null, prev: null, next: null };
    const r: ListNode = { id: i, isCall: false, time: ret, match: null, prev: null, next: null };
    c.match = r;
    nodes.push(c, r);
  }
  nodes.sort((a, b) =>
    a.time !== b.time ? a.time - b.time : a.isCall !== b.isCall ? (a.isCall ? -1 : 1) : a.id - b.id
  );
  const head: ListNode = {
    id: -1,
    isCall: false,
    time: -Infinity,
    match: null,
    prev: null,
    next: null,
  };
  let prev = head;
  for (const node of nodes) {
    prev.next = node;
    node.prev = prev;
    prev = node;
  }
  return head;
}

function lift(entry: ListNode): void {
  entry.prev!.next = entry.next;
  entry.next!.prev = entry.prev;
  const match = entry.match!;
  match.prev!.next = match.next;
  if (match.next !== null) match.next.prev = match.prev;
}

function unlift(entry: ListNode): void {
  const match = entry.match!;
  match.prev!.next = match;
  if (match.next !== null) match.next.prev = match;
  entry.prev!.next = entry;
  entry.next!.prev = entry;
}

function explain<S, I, O>(
  model: Model<S, I, O>,
  partition: string,
  ops: Operation<I, O>[],
  best: number[],
): string {
  const line = (i: number) => {
    const op = ops[i];
    const ret = op.output === undefined ? "?" : String(op.return);
    return `client ${op.clientId}: ${
      model.describe(op.input, op.output)
    }  [call ${op.call}, return ${ret}]`;
  };
  let state = model.init();
  for (const i of best) state = model.step(state, ops[i].input, ops[i].output)!;
  const done = new Set(best);
  const rest = ops.map((_, i) => i).filter((i) => !done.has(i));
  // The remaining operation that returned first must take effect next-or-earlier; show it and
  // everything that was concurrent with it.
  let firstRet = Infinity;
  for (const i of rest) {
    if (ops[i].output !== undefined) firstRet = Math.min(firstRet, ops[i].return);
  }
  const blocked = rest.filter((i) => ops[i].call <= firstRet).sort((a, b) =>
    ops[a].call - ops[b].call
  );
  const out: string[] = [];
  const where = partition === "" ? "the history" : `key ${JSON.stringify(partition)}`;
  out.push(`${where} is not linearizable (${ops.length} operations).`);
  out.push(`Longest valid prefix (${best.length} operations, in linearization order):`);
  const shown = best.length > 12 ? best.slice(best.length - 12) : best;
  if (shown.length < best.length) out.push(`  … ${best.length - shown.length} earlier operations`);
  for (const i of shown) out.push("  " + line(i));
  out.push(`State after it: ${model.describeState(state)}. None of these can take effect next:`);
  for (const i of blocked) out.push("  " + line(i));
  return out.join("\n");
}
