// Request checks etcd makes before a request reaches consensus: empty keys, conflicting flags,
// too many operations, and a txn that writes the same key twice. Pure; used by the API (to answer
// before proposing) and by the state machine (so a bad command can never be half-applied).

import type { RequestOp, TxnRequest } from "./kv.ts";
import { ETCD_MESSAGES, StoreError } from "./errors.ts";
import { toBin } from "./mvcc_keys.ts";

export const MAX_TXN_OPS = 128;

function invalid(message: string): StoreError {
  return new StoreError("invalidArgument", message);
}

export function checkKey(key: Uint8Array): void {
  if (key.length === 0) throw invalid(ETCD_MESSAGES.emptyKey);
}

export function checkPut(put: {
  key: Uint8Array;
  value: Uint8Array;
  lease: string;
  ignoreValue?: boolean;
  ignoreLease?: boolean;
}): void {
  checkKey(put.key);
  if (put.ignoreValue && put.value.length !== 0) throw invalid(ETCD_MESSAGES.valueProvided);
  if (put.ignoreLease && put.lease !== "0") throw invalid(ETCD_MESSAGES.leaseProvided);
}

/** Throws StoreError("invalidArgument") if etcd would refuse this txn before proposing it. */
export function checkTxn(txn: TxnRequest): void {
  checkTxnOps(txn);
  checkIntervals(txn.success);
  checkIntervals(txn.failure);
}

/** etcd's rule: the longest of a txn's compare, success and failure lists is its operation
 *  count, and a nested txn may only use what its parents left of MAX_TXN_OPS. That also bounds
 *  the nesting depth (below MAX_TXN_OPS), so applying a txn never depends on stack size. */
function checkTxnOps(txn: TxnRequest, budget = MAX_TXN_OPS): void {
  const ops = Math.max(txn.compare.length, txn.success.length, txn.failure.length);
  if (ops > budget) throw invalid(ETCD_MESSAGES.tooManyOps);
  for (const c of txn.compare) checkKey(c.key);
  for (const op of [...txn.success, ...txn.failure]) {
    if ("range" in op) checkKey(op.range.key);
    else if ("put" in op) checkPut(op.put);
    else if ("deleteRange" in op) checkKey(op.deleteRange.key);
    else checkTxnOps(op.txn, budget - ops);
  }
}

type Interval = [start: string, end: string];

/** etcd's interval test for the duplicate check: a point, or [start, end) taken literally, so
 *  an end of "\0" (every key, for the delete itself) makes an empty interval here, as in etcd. */
function delsHit(dels: Interval[], key: string): boolean {
  return dels.some(([s, e]) => e === "" ? key === s : key >= s && key < e);
}

/** etcd's checkIntervals: no key is put twice or both put and deleted along one path. */
function checkIntervals(ops: RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) {
    if ("deleteRange" in op) dels.push([toBin(op.deleteRange.key), toBin(op.deleteRange.rangeEnd)]);
  }
  const puts = new Set<string>();
  const dup = () => invalid(ETCD_MESSAGES.duplicateKey);
  for (const op of ops) {
    if (!("txn" in op)) continue;
    const then = checkIntervals(op.txn.success);
    const otherwise = checkIntervals(op.txn.failure);
    for (const k of then.puts) {
      if (puts.has(k) || delsHit(dels, k)) throw dup();
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw dup();
      if (delsHit(dels, k)) throw dup();
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of ops) {
    if (!("put" in op)) continue;
    const k = toBin(op.put.key);
    if (puts.has(k) || delsHit(dels, k)) throw dup();
    puts.add(k);
  }
  return { puts, dels };
}

/** True when no branch at any depth writes. */
export function isReadOnlyTxn(txn: TxnRequest): boolean {
  const ro = (ops: RequestOp[]): boolean =>
    ops.every((op) => "range" in op || ("txn" in op && isReadOnlyTxn(op.txn)));
  return ro(txn.success) && ro(txn.failure);
}
