// What the agent asks of a backend. A backend never talks to the store: it is handed leases.
import type { Lease, LeaseAttrs } from "../subnet/lease.ts";
import type { PeerEvent } from "../subnet/watcher.ts";

export interface ReconcileResult {
  /** The device had to be created, recreated or adjusted. */
  deviceChanged: boolean;
  deviceRecreated: boolean;
  /** What was wrong with the device ("" when nothing). */
  deviceReason?: string;
  added: number;
  removed: number;
  /** Peers whose entries are in place after this pass. */
  peersProgrammed: number;
  /** stderr of failed batch lines, "" when all applied. */
  errors: string;
}

export interface Backend {
  readonly type: "vxlan" | "host-gw";
  /** The MTU pods get (FLANNEL_MTU). */
  readonly mtu: number;
  /** The attributes this node publishes in its lease. */
  leaseAttrs(): LeaseAttrs;
  /** Our own lease (device address follows it). */
  setOwnLease(lease: Lease): void;
  /**
   * The fast path for watch events: programs (or removes) just these peers' entries without
   * reading the kernel first. Returns stderr of failed lines ("" when all applied); the caller
   * falls back to a full reconcile on failure.
   */
  applyEvents(events: PeerEvent[]): Promise<string>;
  /**
   * True when each applyEvents call costs child processes (ip/bridge), so a burst of events is
   * better applied as one call than as several.
   */
  batchesSpawn(): boolean;
  /** Makes the kernel match: device (if any), then per-peer entries. Idempotent. */
  reconcile(peers: Lease[]): Promise<ReconcileResult>;
}
