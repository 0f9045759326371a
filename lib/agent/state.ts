// The agent's live figures: what /healthz, /readyz and /metrics report. Plain data, no I/O.
import type { StoreStatus } from "./options.ts";

export class AgentState {
  leaseHeld = false;
  backendProgrammed = false;
  subnetEnvWritten = false;
  subnet = "";
  leaseExpiresAt: number | null = null;
  peersProgrammed = 0;
  reconcileCount = 0;
  reconcileErrors = 0;
  reconcileRepairs = 0;
  reconcileSecondsSum = 0;
  lastReconcileSeconds = 0;
  /** When the reconcile loop last finished a pass (ms), 0 before the first. */
  lastReconcileAt = 0;
  /** When the store last answered (ms); storeErrorSince is set while it does not. */
  lastStoreOk = 0;
  storeErrorSince: number | null = null;
  storeError = "";
  watchRevision = 0n;
  /** Seconds from a peer event arriving to its entries being programmed (last one). */
  lastEventToProgrammedSeconds = 0;
  leaseRenewals = 0;
  leaseReacquired = 0;

  storeOk(now: number): void {
    this.lastStoreOk = now;
    this.storeErrorSince = null;
    this.storeError = "";
  }

  storeFailed(now: number, err: unknown): void {
    if (this.storeErrorSince === null) this.storeErrorSince = now;
    this.storeError = err instanceof Error ? err.message : String(err);
  }

  ready(): { ok: boolean; reason: string } {
    if (!this.leaseHeld) return { ok: false, reason: "no subnet lease yet" };
    if (!this.backendProgrammed) return { ok: false, reason: "backend not programmed yet" };
    if (!this.subnetEnvWritten) return { ok: false, reason: "subnet.env not written yet" };
    return { ok: true, reason: "ready" };
  }

  healthy(
    now: number,
    storeThresholdMs: number,
    reconcileStuckMs: number,
  ): { ok: boolean; reason: string } {
    if (this.storeErrorSince !== null && now - this.storeErrorSince > storeThresholdMs) {
      return {
        ok: false,
        reason: `store unreachable for ${
          Math.round((now - this.storeErrorSince) / 1000)
        }s: ${this.storeError}`,
      };
    }
    if (this.lastReconcileAt && now - this.lastReconcileAt > reconcileStuckMs) {
      return {
        ok: false,
        reason: `reconcile loop stuck: last pass ${
          Math.round((now - this.lastReconcileAt) / 1000)
        }s ago`,
      };
    }
    return { ok: true, reason: "ok" };
  }

  /** The agent's figures as Prometheus text, with the store's when it is known. */
  metrics(store: StoreStatus | null): string {
    const own: Metric[] = AGENT_METRICS.map(([name, help, type, value]) => [
      name,
      help,
      type,
      value(this),
      "",
    ]);
    return renderFigures([...own, ...storeMetrics(store)]);
  }
}

/** The agent's own metrics: name, help, type, value. */
const AGENT_METRICS: [string, string, string, (s: AgentState) => number | string][] = [
  ["twill_lease_held", "1 when this node holds its subnet lease", "gauge", (s) => +s.leaseHeld],
  [
    "twill_lease_expiry_timestamp_seconds",
    "When the subnet lease expires (0 = reservation or none)",
    "gauge",
    (s) => s.leaseExpiresAt ? s.leaseExpiresAt / 1000 : 0,
  ],
  ["twill_lease_renewals_total", "Successful lease renewals", "counter", (s) => s.leaseRenewals],
  [
    "twill_lease_reacquired_total",
    "Times the lease was lost and taken again",
    "counter",
    (s) => s.leaseReacquired,
  ],
  [
    "twill_peers_programmed",
    "Peers whose kernel entries are in place",
    "gauge",
    (s) => s.peersProgrammed,
  ],
  ["twill_reconcile_total", "Reconcile passes", "counter", (s) => s.reconcileCount],
  [
    "twill_reconcile_errors_total",
    "Reconcile passes that failed",
    "counter",
    (s) => s.reconcileErrors,
  ],
  [
    "twill_reconcile_repairs_total",
    "Kernel entries restored or removed by periodic reconcile",
    "counter",
    (s) => s.reconcileRepairs,
  ],
  [
    "twill_reconcile_duration_seconds",
    "Duration of the last reconcile pass (all passes: twill_reconcile_pass_seconds)",
    "gauge",
    (s) => s.lastReconcileSeconds,
  ],
  [
    "twill_watch_revision",
    "Last store revision seen by the lease watch",
    "gauge",
    (s) => s.watchRevision.toString(),
  ],
  [
    "twill_watch_lag_seconds",
    "From a lease event arriving to its kernel entries programmed (last event)",
    "gauge",
    (s) => s.lastEventToProgrammedSeconds,
  ],
  [
    "twill_store_reachable",
    "1 when the store answered the last request",
    "gauge",
    (s) => s.storeErrorSince === null ? 1 : 0,
  ],
];

/** name, help, type, value, labels */
type Metric = [string, string, string, number | string, string];

function renderFigures(figures: Metric[]): string {
  const lines: string[] = [];
  for (const [name, help, type, value, labels] of figures) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${value}`);
  }
  return lines.join("\n") + "\n";
}

/** A store member's role, term and indexes as Prometheus text ("" when unknown). */
export function storeStatusMetrics(store: StoreStatus | null): string {
  return store ? renderFigures(storeMetrics(store)) : "";
}

function storeMetrics(store: StoreStatus | null): Metric[] {
  if (!store) return [];
  const out: Metric[] = [
    ["twill_store_role", "This node's role in the store", "gauge", 1, `{role="${store.role}"}`],
    ["twill_store_term", "Raft term", "gauge", store.term, ""],
    ["twill_store_commit_index", "Raft commit index", "gauge", store.commitIndex, ""],
  ];
  if (store.appliedIndex !== undefined) {
    out.push(["twill_store_applied_index", "Raft applied index", "gauge", store.appliedIndex, ""]);
  }
  return out;
}
