// The real state machine, instrumented for driver tests: records each command that changed the
// store (so tests can check exactly-once application) and reads keys as strings.
import type { ApplyResult, Command } from "../../lib/store/kv.ts";
import { MvccStateMachine } from "../../lib/store/state_machine.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export class CountingStateMachine extends MvccStateMachine {
  /** Every (index, requestId) whose application changed the revision, in order. */
  appliedLog: { index: number; requestId: string }[] = [];

  override apply(index: number, cmd: Command): ApplyResult {
    const before = this.revision;
    const r = super.apply(index, cmd);
    if (this.revision !== before) this.appliedLog.push({ index, requestId: cmd.requestId });
    return r;
  }

  /** The current value of a key, or undefined. */
  value(key: string): string | undefined {
    const r = this.range({
      key: enc.encode(key),
      rangeEnd: new Uint8Array(),
      limit: 0,
      revision: "0",
      keysOnly: false,
      countOnly: false,
      serializable: true,
    });
    return r.kvs.length > 0 ? dec.decode(r.kvs[0].value) : undefined;
  }

  /** How many keys start with `prefix`. */
  count(prefix: string): number {
    const end = enc.encode(prefix);
    end[end.length - 1]++;
    return Number(
      this.range({
        key: enc.encode(prefix),
        rangeEnd: end,
        limit: 0,
        revision: "0",
        keysOnly: false,
        countOnly: true,
        serializable: true,
      }).count,
    );
  }
}

export const noLessor = {
  promote() {},
  keepAlive: () => null,
  expired: () => [],
  ttlLeft: () => null,
};
