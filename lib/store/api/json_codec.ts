// etcd v3 JSON (grpc-gateway, proto3 JSON) <-> the store's request and result types.
// Requests: field names in snake_case or lowerCamelCase, bytes as standard base64, int64 as a
// JSON number or a decimal string, enums by name or number, unknown fields ignored, null as
// default. Responses: snake_case names, int64 as strings, defaults (0, false, "", []) omitted.

import type {
  Compare,
  CompareResult,
  CompareTarget,
  DeleteRangeRequest,
  DeleteRangeResult,
  KeyValue,
  PutRequest,
  PutResult,
  RangeRequest,
  RangeResult,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResult,
  WatchEvent,
} from "../kv.ts";
import { ETCD_MESSAGES } from "../errors.ts";
import { invalidArgument } from "./errors.ts";
import { MAX_TXN_OPS } from "../mvcc_validate.ts";
import { decodeBase64 as atobBytes, encodeBase64 } from "../../base64.ts";
export { encodeBase64 };

/** A JSON number with its exact source text (int64 values exceed double precision). */
export class JsonNumber {
  constructor(readonly source: string) {}
}

export type JsonObject = Record<string, unknown>;

/** The deepest JSON a request can need: a txn nested as deep as MAX_TXN_OPS allows takes three
 *  levels (object, list, operation) per txn. */
const MAX_JSON_DEPTH = 3 * MAX_TXN_OPS + 16;

/** How deeply `text` nests objects and lists (brackets inside strings do not count). */
function nestingDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) max = Math.max(max, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** Parses one JSON text, keeping numbers exact. Throws ApiError(InvalidArgument). Anything
 *  nested deeper than a request can be is refused before parsing (the parser recurses): only a
 *  txn nests, so with etcd's answer to a txn nested too deep. */
export function parseJson(text: string): unknown {
  if (nestingDepth(text) > MAX_JSON_DEPTH) throw invalidArgument(ETCD_MESSAGES.tooManyOps);
  try {
    return JSON.parse(
      text,
      (_k, v, ctx?: { source?: string }) =>
        typeof v === "number" ? new JsonNumber(ctx?.source ?? String(v)) : v,
    );
  } catch (e) {
    throw invalidArgument((e as Error).message);
  }
}

/** The body of a unary request: empty means {}; it must be an object. */
export function parseRequestObject(text: string): JsonObject {
  if (text.trim() === "") return {};
  const v = parseJson(text);
  if (v === null) return {};
  if (typeof v !== "object" || Array.isArray(v) || v instanceof JsonNumber) {
    throw invalidArgument(
      `json: cannot unmarshal ${jsonKind(v)} into Go value of type map[string]json.RawMessage`,
    );
  }
  return v as JsonObject;
}

function jsonKind(v: unknown): string {
  if (v instanceof JsonNumber) return "number";
  if (Array.isArray(v)) return "array";
  if (v === null) return "null";
  return typeof v === "object" ? "object" : typeof v === "boolean" ? "bool" : "string";
}

function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}

function field(o: JsonObject, name: string): unknown {
  const v = name in o ? o[name] : o[camel(name)];
  return v === null ? undefined : v;
}

function wrongType(v: unknown, goType: string): never {
  throw invalidArgument(`json: cannot unmarshal ${jsonKind(v)} into Go value of type ${goType}`);
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function decodeBase64(s: string): Uint8Array {
  const std = s.replace(/-/g, "+").replace(/_/g, "/");
  if (!B64.test(std)) {
    let at = 0;
    while (at < std.length && /[A-Za-z0-9+/]/.test(std[at])) at++;
    throw invalidArgument(`illegal base64 data at input byte ${Math.min(at, s.length)}`);
  }
  return atobBytes(std);
}

export function bytesField(o: JsonObject, name: string): Uint8Array {
  const v = field(o, name);
  if (v === undefined) return new Uint8Array();
  if (typeof v !== "string") wrongType(v, "[]uint8");
  return decodeBase64(v);
}

/** int64 as a canonical decimal string. */
export function int64Field(o: JsonObject, name: string): string {
  const v = field(o, name);
  if (v === undefined) return "0";
  const src = v instanceof JsonNumber
    ? v.source
    : typeof v === "string"
    ? v
    : wrongType(v, "int64");
  if (!/^-?\d+$/.test(src)) {
    throw invalidArgument(`json: cannot unmarshal number ${src} into Go value of type int64`);
  }
  const n = BigInt(src);
  if (n > 9223372036854775807n || n < -9223372036854775808n) {
    throw invalidArgument(`json: cannot unmarshal number ${src} into Go value of type int64`);
  }
  return n.toString();
}

export function boolField(o: JsonObject, name: string): boolean {
  const v = field(o, name);
  if (v === undefined) return false;
  if (typeof v !== "boolean") wrongType(v, "bool");
  return v;
}

function objectField(o: JsonObject, name: string): JsonObject | undefined {
  const v = field(o, name);
  if (v === undefined) return undefined;
  if (typeof v !== "object" || Array.isArray(v) || v instanceof JsonNumber) {
    wrongType(v, "map[string]json.RawMessage");
  }
  return v as JsonObject;
}

function arrayField(o: JsonObject, name: string): unknown[] {
  const v = field(o, name);
  if (v === undefined) return [];
  if (!Array.isArray(v)) wrongType(v, "[]json.RawMessage");
  return v;
}

function enumField<T extends string>(o: JsonObject, name: string, values: T[], typeName: string) {
  const v = field(o, name);
  if (v === undefined) return values[0];
  if (v instanceof JsonNumber) {
    const i = Number(v.source);
    return (Number.isInteger(i) && values[i]) ||
      invalidEnum(v.source, typeName);
  }
  if (typeof v === "string" && (values as string[]).includes(v)) return v as T;
  return invalidEnum(typeof v === "string" ? v : JSON.stringify(v), typeName);
}

function invalidEnum(v: string, typeName: string): never {
  throw invalidArgument(`unknown value ${JSON.stringify(v)} for enum ${typeName}`);
}

/** A small positive limit; int64 in the API, a JS number here. */
function limitField(o: JsonObject, name: string): number {
  const s = int64Field(o, name);
  const n = Number(s);
  return n < 0 ? 0 : n;
}

// ------------------------------------------------------------------------------- requests

export function decodeRange(o: JsonObject): RangeRequest {
  return {
    key: bytesField(o, "key"),
    rangeEnd: bytesField(o, "range_end"),
    limit: limitField(o, "limit"),
    revision: int64Field(o, "revision"),
    keysOnly: boolField(o, "keys_only"),
    countOnly: boolField(o, "count_only"),
    serializable: boolField(o, "serializable"),
  };
}

export function decodePut(o: JsonObject): PutRequest {
  return {
    key: bytesField(o, "key"),
    value: bytesField(o, "value"),
    lease: int64Field(o, "lease"),
    prevKv: boolField(o, "prev_kv"),
    ignoreValue: boolField(o, "ignore_value"),
    ignoreLease: boolField(o, "ignore_lease"),
  };
}

export function decodeDeleteRange(o: JsonObject): DeleteRangeRequest {
  return {
    key: bytesField(o, "key"),
    rangeEnd: bytesField(o, "range_end"),
    prevKv: boolField(o, "prev_kv"),
  };
}

const TARGETS: CompareTarget[] = ["VERSION", "CREATE", "MOD", "VALUE", "LEASE"];
const RESULTS: CompareResult[] = ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"];

function decodeCompare(o: JsonObject): Compare {
  const target = enumField(o, "target", TARGETS, "etcdserverpb.Compare_CompareTarget");
  const result = enumField(o, "result", RESULTS, "etcdserverpb.Compare_CompareResult");
  const c: Compare = {
    target,
    result,
    key: bytesField(o, "key"),
    rangeEnd: bytesField(o, "range_end"),
  };
  if (target === "VALUE") c.value = bytesField(o, "value");
  else {
    const name =
      { VERSION: "version", CREATE: "create_revision", MOD: "mod_revision", LEASE: "lease" }[
        target
      ];
    c.number = int64Field(o, name);
  }
  return c;
}

function asObject(v: unknown): JsonObject {
  if (v === null || v === undefined) return {};
  if (typeof v !== "object" || Array.isArray(v) || v instanceof JsonNumber) {
    wrongType(v, "map[string]json.RawMessage");
  }
  return v as JsonObject;
}

function decodeRequestOp(v: unknown, depth: number): RequestOp {
  const o = asObject(v);
  const range = objectField(o, "request_range");
  if (range) return { range: decodeRange(range) };
  const put = objectField(o, "request_put");
  if (put) return { put: decodePut(put) };
  const del = objectField(o, "request_delete_range");
  if (del) return { deleteRange: decodeDeleteRange(del) };
  const txn = objectField(o, "request_txn");
  if (txn) return { txn: decodeTxn(txn, depth + 1) };
  // etcd 3.4 refuses an operation that names no request this way.
  throw invalidArgument(ETCD_MESSAGES.keyNotFound);
}

/** `depth`: how many txns enclose this one. Deeper than checkTxn could ever allow is refused
 *  here already, before the decoder's own recursion could run out of stack. */
export function decodeTxn(o: JsonObject, depth = 0): TxnRequest {
  if (depth >= MAX_TXN_OPS) throw invalidArgument(ETCD_MESSAGES.tooManyOps);
  return {
    compare: arrayField(o, "compare").map((c) => decodeCompare(asObject(c))),
    success: arrayField(o, "success").map((op) => decodeRequestOp(op, depth)),
    failure: arrayField(o, "failure").map((op) => decodeRequestOp(op, depth)),
  };
}

// ------------------------------------------------------------------------------- responses

export interface Header {
  clusterId: string;
  memberId: string;
  raftTerm: string;
}

/** A full response header; revision "0" is omitted (as etcd does for compaction cancels). */
export function encodeHeader(h: Header, revision: string | number): JsonObject {
  const out: JsonObject = { cluster_id: h.clusterId, member_id: h.memberId };
  if (String(revision) !== "0") out.revision = String(revision);
  out.raft_term = h.raftTerm;
  return out;
}

function innerHeader(revision: string): JsonObject {
  return revision === "0" ? {} : { revision };
}

export function encodeKv(kv: KeyValue): JsonObject {
  const out: JsonObject = { key: encodeBase64(kv.key) };
  if (kv.createRevision !== "0") out.create_revision = kv.createRevision;
  if (kv.modRevision !== "0") out.mod_revision = kv.modRevision;
  if (kv.version !== "0") out.version = kv.version;
  if (kv.value.length) out.value = encodeBase64(kv.value);
  if (kv.lease !== "0") out.lease = kv.lease;
  return out;
}

function rangeBody(r: RangeResult, header: JsonObject): JsonObject {
  const out: JsonObject = { header };
  if (r.kvs.length) out.kvs = r.kvs.map(encodeKv);
  if (r.more) out.more = true;
  if (r.count !== "0") out.count = r.count;
  return out;
}

function putBody(r: PutResult, header: JsonObject): JsonObject {
  const out: JsonObject = { header };
  if (r.prevKv) out.prev_kv = encodeKv(r.prevKv);
  return out;
}

function deleteBody(r: DeleteRangeResult, header: JsonObject): JsonObject {
  const out: JsonObject = { header };
  if (r.deleted !== "0") out.deleted = r.deleted;
  if (r.prevKvs.length) out.prev_kvs = r.prevKvs.map(encodeKv);
  return out;
}

function txnBody(r: TxnResult, header: JsonObject): JsonObject {
  const out: JsonObject = { header };
  if (r.succeeded) out.succeeded = true;
  if (r.responses.length) out.responses = r.responses.map(encodeResponseOp);
  return out;
}

function encodeResponseOp(op: ResponseOp): JsonObject {
  if ("range" in op) return { response_range: rangeBody(op.range, innerHeader(op.range.revision)) };
  if ("put" in op) return { response_put: putBody(op.put, innerHeader(op.put.revision)) };
  if ("deleteRange" in op) {
    return {
      response_delete_range: deleteBody(op.deleteRange, innerHeader(op.deleteRange.revision)),
    };
  }
  return { response_txn: txnBody(op.txn, innerHeader(op.txn.revision)) };
}

export const encodeRange = (h: Header, r: RangeResult) => rangeBody(r, encodeHeader(h, r.revision));
export const encodePut = (h: Header, r: PutResult) => putBody(r, encodeHeader(h, r.revision));
export const encodeDeleteRange = (h: Header, r: DeleteRangeResult) =>
  deleteBody(r, encodeHeader(h, r.revision));
export const encodeTxn = (h: Header, r: TxnResult) => txnBody(r, encodeHeader(h, r.revision));

export function encodeEvent(e: WatchEvent, withPrev: boolean): JsonObject {
  const out: JsonObject = {};
  if (e.type === "DELETE") out.type = "DELETE";
  out.kv = encodeKv(e.kv);
  if (withPrev && e.prevKv) out.prev_kv = encodeKv(e.prevKv);
  return out;
}
