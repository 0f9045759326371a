// The client side of the simulation: clients issuing put / compare-and-swap / delete / get, one
// operation at a time, each with a (client, seq) request id. A client that hears nothing within
// its timeout, or is refused, retries the same request through another node; the state
// machine's sessions make the retry idempotent. The history records one operation per request:
// called at the first attempt, returned when the first answer arrives.
import type { KvInput, KvOutput } from "../linearizability/kv_model.ts";
import type { Operation } from "../linearizability/history.ts";
import type { Prng } from "./prng.ts";

export interface ClientOp {
  seq: number;
  input: KvInput;
  /** Index into the history. */
  historyIndex: number;
  attempt: number;
  target: number;
}

export class SimClient {
  seq = 0;
  current: ClientOp | null = null;
  /** The last value this client saw for each key (to make CASes that can succeed). */
  readonly lastSeen = new Map<string, string | null>();
  retries = 0;
  /** The node that answered last; first attempts usually go there. 0: none yet. */
  preferred = 0;

  constructor(readonly id: number) {}
}

export interface WorkloadMix {
  keys: number;
  put: number;
  cas: number;
  del: number;
  get: number;
}

/** Picks the next operation for a client. Values are unique: `c<client>.<seq>`. */
export function nextInput(prng: Prng, client: SimClient, mix: WorkloadMix, seq: number): KvInput {
  const key = "k" + prng.int(mix.keys);
  const total = mix.put + mix.cas + mix.del + mix.get;
  let r = prng.float() * total;
  const value = `c${client.id}.${seq}`;
  if ((r -= mix.put) < 0) return { op: "put", key, value };
  if ((r -= mix.cas) < 0) {
    const seen = client.lastSeen.get(key);
    const expected = seen !== undefined && prng.chance(0.8)
      ? seen
      : prng.chance(0.5)
      ? null
      : `c${prng.int(8)}.${prng.int(seq + 1)}`;
    return { op: "cas", key, expected, value };
  }
  if ((r -= mix.del) < 0) return { op: "delete", key };
  return { op: "get", key };
}

/** Updates what the client knows after a result. */
export function observe(client: SimClient, input: KvInput, output: KvOutput): void {
  switch (input.op) {
    case "put":
      client.lastSeen.set(input.key, input.value);
      break;
    case "delete":
      client.lastSeen.set(input.key, null);
      break;
    case "cas":
      if (output.ok) client.lastSeen.set(input.key, input.value);
      break;
    case "get":
      client.lastSeen.set(input.key, output.value ?? null);
      break;
  }
}

export type KvHistory = Operation<KvInput, KvOutput>[];
