// The simulated network between Raft nodes: per-message loss, duplication and delay (random
// delays reorder messages), and partitions as a set of cut directed links (so symmetric,
// asymmetric and one-way partitions are all the same mechanism). A cut link drops a message at
// delivery time, like a real link that fails while the packet is in flight.
import type { NodeId } from "../raft/types.ts";
import type { Prng } from "./prng.ts";

export interface LinkFaults {
  /** Probability that a message is lost. */
  dropRate: number;
  /** Probability that a message is delivered twice. */
  duplicateRate: number;
  /** Base delay range in simulated milliseconds (inclusive). */
  minDelay: number;
  maxDelay: number;
  /** Probability of a long extra delay (strong reordering), up to spikeMax ms. */
  spikeRate: number;
  spikeMax: number;
}

export const CALM: LinkFaults = {
  dropRate: 0,
  duplicateRate: 0,
  minDelay: 1,
  maxDelay: 4,
  spikeRate: 0,
  spikeMax: 0,
};

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  cut: number;
  delayed: number;
}

export class SimNetwork {
  faults: LinkFaults = { ...CALM };
  readonly stats: NetworkStats = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    cut: 0,
    delayed: 0,
  };
  readonly #cut = new Set<string>();

  constructor(private readonly prng: Prng) {}

  /** The delays after which copies of one message arrive: [] lost, one or two copies. */
  plan(): number[] {
    const f = this.faults;
    this.stats.sent++;
    if (this.prng.chance(f.dropRate)) {
      this.stats.dropped++;
      return [];
    }
    const copies = this.prng.chance(f.duplicateRate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    const delays: number[] = [];
    for (let i = 0; i < copies; i++) {
      let d = this.prng.range(f.minDelay, f.maxDelay);
      if (f.spikeMax > 0 && this.prng.chance(f.spikeRate)) {
        d += this.prng.range(1, f.spikeMax);
        this.stats.delayed++;
      }
      delays.push(d);
    }
    return delays;
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.#cut.size > 0 && this.#cut.has(from + ">" + to);
  }

  /** Cuts the link from `from` to `to` (one direction). */
  cut(from: NodeId, to: NodeId): void {
    if (from !== to) this.#cut.add(from + ">" + to);
  }

  /** Splits nodes into groups that cannot talk to each other (both directions). */
  partition(groups: NodeId[][]): void {
    for (let i = 0; i < groups.length; i++) {
      for (let j = 0; j < groups.length; j++) {
        if (i === j) continue;
        for (const a of groups[i]) for (const b of groups[j]) this.cut(a, b);
      }
    }
  }

  healAll(): void {
    this.#cut.clear();
  }

  get cutLinks(): number {
    return this.#cut.size;
  }

  describeCuts(): string {
    return [...this.#cut].join(" ");
  }
}
