// Linearizability checking: histories, models, the checker, and the key-value model.
export type { Operation } from "./history.ts";
export { isUnknown } from "./history.ts";
export type { Model } from "./model.ts";
export { checkLinearizable } from "./checker.ts";
export type { CheckOptions, CheckResult } from "./checker.ts";
export { kvModel } from "./kv_model.ts";
export type { KvInput, KvOutput, KvState } from "./kv_model.ts";
