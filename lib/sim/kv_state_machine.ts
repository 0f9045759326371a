// The simulator's replicated state machine: a key-value map with client sessions. Every command
// carries (client, seq); a client has one command outstanding at a time and retries it with the
// same seq, so the session table makes application idempotent: a repeat returns the remembered
// result instead of applying twice.
import type { KvInput, KvOutput } from "../linearizability/kv_model.ts";

export interface KvCommand {
  client: number;
  seq: number;
  input: KvInput;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeCommand(cmd: KvCommand): Uint8Array {
  return encoder.encode(JSON.stringify(cmd));
}

export function decodeCommand(bytes: Uint8Array): KvCommand | null {
  if (bytes.length === 0) return null; // a leader's empty entry
  return JSON.parse(decoder.decode(bytes)) as KvCommand;
}

interface Session {
  seq: number;
  result: KvOutput;
}

export class KvStateMachine {
  readonly data = new Map<string, string>();
  readonly sessions = new Map<number, Session>();

  /**
   * Applies a command; returns its result, the remembered result for a repeat of the latest
   * command of that client, or null for an older (stale) repeat that nobody waits for.
   */
  apply(cmd: KvCommand): KvOutput | null {
    const session = this.sessions.get(cmd.client);
    if (session !== undefined && cmd.seq <= session.seq) {
      return cmd.seq === session.seq ? session.result : null;
    }
    const result = this.#execute(cmd.input);
    this.sessions.set(cmd.client, { seq: cmd.seq, result });
    return result;
  }

  #execute(input: KvInput): KvOutput {
    switch (input.op) {
      case "put":
        this.data.set(input.key, input.value);
        return {};
      case "delete":
        this.data.delete(input.key);
        return {};
      case "cas": {
        const current = this.data.get(input.key) ?? null;
        if (current !== input.expected) return { ok: false };
        this.data.set(input.key, input.value);
        return { ok: true };
      }
      case "get":
        return { value: this.data.get(input.key) ?? null };
    }
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  /** A canonical serialisation (sorted), so equal states give equal bytes. */
  snapshot(): Uint8Array {
    const data = [...this.data.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const sessions = [...this.sessions.entries()].sort((a, b) => a[0] - b[0]);
    return encoder.encode(JSON.stringify({ data, sessions }));
  }

  static restore(bytes: Uint8Array): KvStateMachine {
    const sm = new KvStateMachine();
    if (bytes.length === 0) return sm; // the bootstrap snapshot holds no data
    const parsed = JSON.parse(decoder.decode(bytes)) as {
      data: [string, string][];
      sessions: [number, Session][];
    };
    for (const [k, v] of parsed.data) sm.data.set(k, v);
    for (const [c, s] of parsed.sessions) sm.sessions.set(c, s);
    return sm;
  }
}
