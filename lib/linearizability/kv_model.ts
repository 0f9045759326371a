// The sequential specification of a key-value register map: put, compare-and-swap, delete and
// get. Keys are independent, so the model partitions histories per key.
import type { Model } from "./model.ts";

export type KvInput =
  | { op: "put"; key: string; value: string }
  | { op: "delete"; key: string }
  /** Sets `value` only if the current value is `expected` (null: only if the key is absent). */
  | { op: "cas"; key: string; expected: string | null; value: string }
  | { op: "get"; key: string };

/** put/delete: {}; cas: {ok}; get: {value} (null when absent). */
export interface KvOutput {
  ok?: boolean;
  value?: string | null;
}

/** The value of one key; null when absent. */
export type KvState = string | null;

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case "put":
        return input.value;
      case "delete":
        return null;
      case "cas": {
        const matches = state === input.expected;
        // Unknown outcome: a CAS that did not match simply had no effect.
        if (output === undefined) return matches ? input.value : state;
        if (output.ok === true) return matches ? input.value : undefined;
        return matches ? undefined : state;
      }
      case "get":
        if (output === undefined) return state;
        return output.value === state ? state : undefined;
    }
  },
  stateKey: (state) => (state === null ? "\u0000" : "=" + state),
  partitionKey: (input) => input.key,
  describe(input, output) {
    const unknown = output === undefined ? " -> ?" : "";
    switch (input.op) {
      case "put":
        return `put(${input.key}, ${q(input.value)})${unknown}`;
      case "delete":
        return `delete(${input.key})${unknown}`;
      case "cas":
        return `cas(${input.key}, ${q(input.expected)}, ${q(input.value)})` +
          (output === undefined ? unknown : ` -> ${output.ok ? "ok" : "fail"}`);
      case "get":
        return `get(${input.key})` +
          (output === undefined ? unknown : ` -> ${q(output.value ?? null)}`);
    }
  },
  describeState: (state) => q(state),
};

function q(v: string | null): string {
  return v === null ? "absent" : JSON.stringify(v);
}
