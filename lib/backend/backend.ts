// What the agent asks of a backend, and what a backend module registers (lib/backend/registry.ts).
// A backend never talks to the store: it is handed leases (store → lease watcher → backend →
// kernel). Each backend type is one module owning its net-conf Backend fields, its lease
// BackendData, the device or key state it keeps, and its per-lease kernel entries.
import type { CIDR } from "../net/cidr.ts";
import type { ChosenIface } from "../net/iface.ts";
import type { Logger } from "../log.ts";
import type { BackendConfig, BackendField } from "../subnet/config.ts";
import type { Lease, LeaseAttrs } from "../subnet/lease.ts";
import type { PeerEvent } from "../subnet/watcher.ts";
import type { DataPlane } from "./dataplane.ts";

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

/** What a backend is built from: the node's underlay and the network it serves. */
export interface BackendContext {
  iface: ChosenIface;
  /** The address other nodes reach this one at (--public-ip, else the interface's). */
  publicIP: string;
  network: CIDR;
  /** The IPv6 network when dual stack is enabled (the interface has a global IPv6 address). */
  network6: CIDR | null;
  /** Where a backend keeps state that must survive restarts (a MAC, a key). */
  dataDir: string;
  log: Logger;
}

/** One backend type, as registered: parses its config fields and builds the running backend. */
export interface BackendType<C extends BackendConfig = BackendConfig> {
  /** net-conf's Backend.Type, lower case. */
  readonly type: string;
  /** Parses the Backend fields of net-conf.json; throws NetConfigError with Flannel's text. */
  parseConfig(field: BackendField): C;
  /**
   * Prepares the backend (loads or creates its persistent state, starts what it needs) and
   * returns it; its lease attributes and MTU are known from then on. Throws one clear line on a
   * setup that cannot work.
   */
  init(cfg: C, ctx: BackendContext): Promise<Backend>;
  /** What a node running this backend should have in its kernel (for `twill ctl check`). */
  expected?(cfg: C, ctx: ExpectContext): ExpectedState;
}

/** What `twill ctl check` knows when it asks a backend for its expected state. */
export interface ExpectContext {
  /** The underlay: the interface that holds this node's public IP. */
  iface: { name: string; mtu: number; address: string; prefixLen: number };
  publicIP: string;
  own: Lease;
  peers: Lease[];
  /** Dual stack is on (FLANNEL_IPV6_SUBNET in subnet.env). */
  ipv6: boolean;
  /** The cluster's IPv4 Network (backends that route it whole through their device). */
  network?: CIDR;
}

/** A node's expected kernel state for one backend (IPv4 overlay). */
export interface ExpectedState {
  /** The backend's device, if it has one. */
  device: { name: string; address: string; mtu: number; mtuWhy: string } | null;
  /** The MTU pods get (FLANNEL_MTU) and why. */
  mtu: number;
  mtuWhy: string;
  /** Per-peer entries. */
  dataPlane: DataPlane;
  /** Addresses to ping through the backend's own path, one per peer, and what a lost reply
   *  points at (e.g. "UDP 8472"). */
  probes: { peer: Lease; target: string; path: string }[];
}

export interface Backend {
  readonly type: string;
  /** The MTU pods get (FLANNEL_MTU in subnet.env). */
  readonly mtu: number;
  /** Extra fields for the agent's backend_chosen log line. */
  logFields(): Record<string, unknown>;
  /** The attributes this node publishes in its lease (BackendData encoded by the backend). */
  leaseAttrs(): LeaseAttrs;
  /** Our own lease (a device address follows it). */
  setOwnLease(lease: Lease): void;
  /**
   * Per-lease add/remove, batched: programs (or removes) just these peers' entries without
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

/**
 * Leases written by a different backend type than the config's: the cluster is switching backends
 * (or a node runs an old config). As in Flannel that needs a reset: every node's lease deleted and
 * the old backend's devices removed, then the agents restarted. `own` is the lease holding our
 * public IP, if it is one of them.
 */
export function backendSwitches(
  leases: Lease[],
  type: string,
  publicIP: string,
): { own: Lease | null; peers: Lease[] } {
  const other = leases.filter((l) => l.attrs.backendType && l.attrs.backendType !== type);
  return {
    own: other.find((l) => l.attrs.publicIP === publicIP) ?? null,
    peers: other.filter((l) => l.attrs.publicIP !== publicIP),
  };
}

/** The one line said about a backend switch (null when there is none). */
export function backendSwitchMessage(
  s: { own: Lease | null; peers: Lease[] },
  type: string,
): string | null {
  if (!s.own && !s.peers.length) return null;
  const types = [...new Set([s.own, ...s.peers].filter((l) => l).map((l) => l!.attrs.backendType))];
  const who = [
    s.own ? "this node's lease" : "",
    s.peers.length ? `${s.peers.length} peer lease(s)` : "",
  ]
    .filter((x) => x).join(" and ");
  return `${who} carry backend type ${types.join(", ")} but the config says ${type}: switching a ` +
    "cluster's backend needs a reset as in Flannel (delete every node's lease and the old " +
    "backend's devices, then restart the agents); peers of another type are not programmed";
}
