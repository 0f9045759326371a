// The process's metrics registry: counters, gauges and histograms with fixed buckets, rendered in
// Prometheus' text exposition format 0.0.4. Every metric twill exports by name is declared at the
// bottom of this file, so the names (and the dashboard that queries them) live in one place; the
// code that measures calls one method on them. Names are checked where they are declared:
// `twill_` prefix, counters end in `_total`, histograms in `_seconds`.

type Labels = Record<string, string>;

/** Label sets per metric are bounded: a flood of distinct peers cannot grow memory without end. */
const MAX_SERIES = 256;

function labelKey(labels: Labels | undefined): string {
  if (!labels) return "";
  const parts = Object.keys(labels).sort().map((k) => `${k}="${escapeLabel(labels[k])}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

abstract class Metric {
  constructor(readonly name: string, readonly help: string, readonly type: string) {}
  abstract samples(): string[];
  render(): string {
    const s = this.samples();
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`, ...s].join(
      "\n",
    );
  }
}

/** Counters and gauges: one value per label set. */
class Valued extends Metric {
  protected values = new Map<string, number>();
  protected add(n: number, labels?: Labels): void {
    const k = labelKey(labels);
    if (!this.values.has(k) && this.values.size >= MAX_SERIES) return;
    this.values.set(k, (this.values.get(k) ?? 0) + n);
  }
  get(labels?: Labels): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
  samples(): string[] {
    if (this.values.size === 0) return [`${this.name} 0`];
    return [...this.values].map(([k, v]) => `${this.name}${k} ${num(v)}`);
  }
}

export class Counter extends Valued {
  constructor(name: string, help: string) {
    if (!name.endsWith("_total")) throw new Error(`counter ${name} must end in _total`);
    super(name, help, "counter");
  }
  inc(labels?: Labels, n = 1): void {
    if (!(n >= 0)) throw new Error(`counter ${this.name}: increment ${n} is negative`);
    this.add(n, labels);
  }
}

export class Gauge extends Valued {
  constructor(name: string, help: string) {
    super(name, help, "gauge");
  }
  set(v: number, labels?: Labels): void {
    const k = labelKey(labels);
    if (!this.values.has(k) && this.values.size >= MAX_SERIES) return;
    this.values.set(k, v);
  }
  inc(labels?: Labels, n = 1): void {
    this.add(n, labels);
  }
  dec(labels?: Labels, n = 1): void {
    this.add(-n, labels);
  }
  /** Drops one label set (a peer that left). */
  remove(labels: Labels): void {
    this.values.delete(labelKey(labels));
  }
}

interface HistogramSeries {
  counts: number[];
  sum: number;
  count: number;
}

/** Durations in seconds, in fixed cumulative buckets. */
export class Histogram extends Metric {
  private series = new Map<string, HistogramSeries>();
  constructor(name: string, help: string, readonly buckets: readonly number[]) {
    if (!name.endsWith("_seconds")) throw new Error(`histogram ${name} must end in _seconds`);
    super(name, help, "histogram");
  }
  observe(seconds: number, labels?: Labels): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    const k = labelKey(labels);
    let s = this.series.get(k);
    if (!s) {
      if (this.series.size >= MAX_SERIES) return;
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (seconds <= this.buckets[i]) s.counts[i]++;
    s.sum += seconds;
    s.count++;
  }
  /** Resolves as `p` does, observing how long it took when it succeeds. */
  time<T>(p: Promise<T>, labels?: Labels): Promise<T> {
    const t0 = performance.now();
    return p.then((v) => {
      this.observe((performance.now() - t0) / 1000, labels);
      return v;
    });
  }
  count(labels?: Labels): number {
    return this.series.get(labelKey(labels))?.count ?? 0;
  }
  samples(): string[] {
    const all = this.series.size ? [...this.series] : [["", null] as const];
    return all.flatMap(([k, s]) => {
      const inner = k ? k.slice(1, -1) + "," : "";
      const lines = this.buckets.map((b, i) =>
        `${this.name}_bucket{${inner}le="${num(b)}"} ${s ? s.counts[i] : 0}`
      );
      lines.push(`${this.name}_bucket{${inner}le="+Inf"} ${s?.count ?? 0}`);
      lines.push(`${this.name}_sum${k} ${s?.sum ?? 0}`, `${this.name}_count${k} ${s?.count ?? 0}`);
      return lines;
    });
  }
}

export class Registry {
  private metrics = new Map<string, Metric>();
  private register<M extends Metric>(m: M): M {
    if (!/^twill_[a-z0-9_]+$/.test(m.name)) {
      throw new Error(`metric ${m.name}: not twill_[a-z0-9_]`);
    }
    if (this.metrics.has(m.name)) throw new Error(`metric ${m.name} declared twice`);
    this.metrics.set(m.name, m);
    return m;
  }
  counter(name: string, help: string): Counter {
    return this.register(new Counter(name, help));
  }
  gauge(name: string, help: string): Gauge {
    return this.register(new Gauge(name, help));
  }
  histogram(name: string, help: string, buckets: readonly number[]): Histogram {
    return this.register(new Histogram(name, help, buckets));
  }
  /** The text exposition of every metric, each with its HELP and TYPE lines. */
  render(): string {
    return [...this.metrics.values()].map((m) => m.render()).join("\n") + "\n";
  }
}

/** Sub-millisecond to tens of seconds: kernel batches, store commits, reconcile passes. */
export const LATENCY_BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
] as const;

/** The process's registry: /metrics of the agent and of a store-only member render it. */
export const METRICS = new Registry();

export const LEASE_EVENTS = METRICS.counter(
  "twill_lease_events_total",
  "Peer lease changes seen by the lease watch or a re-list, by type (added, removed)",
);
export const LEASE_TO_KERNEL = METRICS.histogram(
  "twill_lease_to_kernel_seconds",
  "From a peer lease change arriving to its kernel entries being programmed",
  LATENCY_BUCKETS,
);
export const RECONCILE_DURATION = METRICS.histogram(
  "twill_reconcile_pass_seconds",
  "Duration of reconcile passes (device and per-peer kernel entries)",
  LATENCY_BUCKETS,
);
export const STORE_COMMIT = METRICS.histogram(
  "twill_store_commit_seconds",
  "From a write being proposed on this member to it being committed and applied",
  LATENCY_BUCKETS,
);
export const LEADER_CHANGES = METRICS.counter(
  "twill_store_leader_changes_total",
  "Times this member saw the store's leader change (including to no leader)",
);
export const STORE_WATCHES = METRICS.gauge(
  "twill_store_watches",
  "Watches open on this member's store API",
);
export const WATCHES_CREATED = METRICS.counter(
  "twill_store_watches_created_total",
  "Watches created on this member's store API",
);
/** A watch was created on this member's store API. */
export function watchOpened(): void {
  STORE_WATCHES.inc();
  WATCHES_CREATED.inc();
}

/** `n` watches ended (canceled, compacted away, or their stream closed). */
export function watchesClosed(n: number): void {
  STORE_WATCHES.dec(undefined, n);
}

export const PEER_RTT = METRICS.gauge(
  "twill_peer_rtt_seconds",
  "Round trip of the last Raft heartbeat to each peer member, by peer id",
);

/**
 * Peer round trips from Raft heartbeats: the time a heartbeat to a peer left, matched with that
 * peer's heartbeat response. One outstanding heartbeat per peer is enough for a gauge, and keeps
 * the map bounded by the member count.
 */
export class HeartbeatRtt {
  private sentAt = new Map<number, number>();
  constructor(private now: () => number = () => performance.now()) {}
  sending(msgs: readonly { type: string; to: number }[]): void {
    for (const m of msgs) {
      if (m.type === "MsgHeartbeat" && !this.sentAt.has(m.to)) this.sentAt.set(m.to, this.now());
    }
  }
  received(from: number, msgs: readonly { type: string }[]): void {
    const t = this.sentAt.get(from);
    if (t === undefined || !msgs.some((m) => m.type === "MsgHeartbeatResp")) return;
    this.sentAt.delete(from);
    PEER_RTT.set((this.now() - t) / 1000, { peer: String(from) });
  }
}

export const HEARTBEAT_RTT = new HeartbeatRtt();
