// The simulation's trace: a running hash of every event (always) and, when verbose, the
// people-readable lines. Two runs of one seed must produce the same hash.

export class Trace {
  #h1 = 0x811c9dc5;
  #h2 = 0x01000193;
  readonly lines: string[] | null;
  events = 0;

  constructor(verbose: boolean) {
    this.lines = verbose ? [] : null;
  }

  get verbose(): boolean {
    return this.lines !== null;
  }

  /** Mixes numbers into the hash. Call once per event with what identifies it. */
  mix(...values: number[]): void {
    let h1 = this.#h1, h2 = this.#h2;
    for (const v of values) {
      const lo = v | 0, hi = Math.floor(v / 0x100000000) | 0;
      h1 = Math.imul(h1 ^ lo, 0x01000193);
      h2 = Math.imul(h2 ^ lo ^ 0x5bd1e995, 0x85ebca6b);
      h1 = Math.imul(h1 ^ hi, 0x01000193);
      h2 = Math.imul((h2 ^ hi) + 0x27d4eb2f, 0xc2b2ae35);
    }
    this.#h1 = h1;
    this.#h2 = h2;
  }

  /** Adds a line (only when verbose). `describe` is only called when verbose. */
  log(time: number, describe: () => string): void {
    if (this.lines !== null) this.lines.push(`t=${time} ${describe()}`);
  }

  /** The trace hash as 16 hex digits. */
  hash(): string {
    return (this.#h1 >>> 0).toString(16).padStart(8, "0") +
      (this.#h2 >>> 0).toString(16).padStart(8, "0");
  }
}

/** FNV-1a over bytes: a cheap content hash for log entries. */
export function hashBytes(bytes: Uint8Array, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

/** Chains a prefix hash with one entry: equal chains mean equal logs (up to hash collisions). */
export function chainHash(
  prev: number,
  index: number,
  term: number,
  typeCode: number,
  dataHash: number,
): number {
  let h = Math.imul(prev ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ index, 0xc2b2ae35);
  h = Math.imul(h ^ term, 0x27d4eb2f);
  h = Math.imul(h ^ typeCode, 0x165667b1);
  h = Math.imul(h ^ dataHash, 0x01000193);
  return (h ^ (h >>> 15)) >>> 0;
}
