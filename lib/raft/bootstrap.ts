// Bootstrapping a new cluster, etcd style: every initial member starts from the same snapshot
// at index 1, term 1, whose configuration lists the initial voters (and learners).
import type { ConfState, Snapshot } from "./types.ts";

/** The snapshot every initial member applies to its empty storage before creating its RawNode. */
export function bootstrapSnapshot(
  confState: ConfState,
  data: Uint8Array = new Uint8Array(),
): Snapshot {
  if (confState.voters.length === 0) {
    throw new Error("bootstrap: the initial configuration needs at least one voter");
  }
  return {
    data,
    metadata: {
      index: 1,
      term: 1,
      confState: { voters: [...confState.voters], learners: [...confState.learners] },
    },
  };
}

/** Apply the bootstrap snapshot to a fresh storage (e.g. MemoryStorage or a durable one). */
export function bootstrap(
  storage: { applySnapshot(s: Snapshot): void },
  confState: ConfState,
  data?: Uint8Array,
): void {
  storage.applySnapshot(bootstrapSnapshot(confState, data));
}
