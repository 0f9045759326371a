// Turns store listings and watch events into peer add/remove events (Flannel's LeaseWatcher):
// our own lease is ignored, a removal carries the last attributes we knew, and a re-listing after
// compaction yields exactly the difference from what we had. Pure; the agent runs the loop.
import { type Lease, sameSubnets, subnetKeyName } from "./lease.ts";

export type PeerEvent =
  /** `previous`: what we knew before, when this replaces a known lease (e.g. a new VtepMAC). */
  | { type: "added"; lease: Lease; previous?: Lease }
  | { type: "removed"; lease: Lease };

export class LeaseWatcher {
  /** Peers by subnet key name. */
  readonly peers = new Map<string, Lease>();
  constructor(public own: Lease | null) {}

  private isOwn(l: Lease): boolean {
    return this.own !== null && sameSubnets(this.own, l);
  }

  /** A full listing: adds what is new or changed, removes what is gone. */
  reset(leases: Lease[]): PeerEvent[] {
    const out: PeerEvent[] = [];
    const seen = new Set<string>();
    for (const l of leases) {
      if (this.isOwn(l)) continue;
      const k = subnetKeyName(l.subnet, l.ipv6Subnet);
      seen.add(k);
      const old = this.peers.get(k);
      if (!old || old.modRevision !== l.modRevision || !sameAttrs(old, l)) {
        this.peers.set(k, l);
        out.push(old ? { type: "added", lease: l, previous: old } : { type: "added", lease: l });
      }
    }
    for (const [k, l] of [...this.peers]) {
      if (!seen.has(k)) {
        this.peers.delete(k);
        out.push({ type: "removed", lease: l });
      }
    }
    return out;
  }

  /** A put (`lease` with attributes) or a delete (`lease` with only the subnets). */
  update(type: "put" | "delete", lease: Lease): PeerEvent | null {
    if (this.isOwn(lease)) return null;
    const k = subnetKeyName(lease.subnet, lease.ipv6Subnet);
    if (type === "put") {
      const old = this.peers.get(k);
      this.peers.set(k, lease);
      return old ? { type: "added", lease, previous: old } : { type: "added", lease };
    }
    const old = this.peers.get(k);
    if (!old) return null;
    this.peers.delete(k);
    return { type: "removed", lease: old };
  }
}

function sameAttrs(a: Lease, b: Lease): boolean {
  return JSON.stringify(a.attrs) === JSON.stringify(b.attrs);
}

/**
 * Splits events for a backend: leases to program, the earlier versions of replaced leases
 * (whose stale entries go), and leases to remove. A replacement with identical attributes
 * (a renewal) needs nothing and is dropped.
 */
export function splitPeerEvents(
  events: PeerEvent[],
): { add: Lease[]; replaced: Lease[]; remove: Lease[] } {
  const add: Lease[] = [];
  const replaced: Lease[] = [];
  const remove: Lease[] = [];
  for (const e of events) {
    if (e.type === "removed") remove.push(e.lease);
    else if (!e.previous) add.push(e.lease);
    else if (!sameAttrs(e.previous, e.lease)) {
      add.push(e.lease);
      replaced.push(e.previous);
    }
  }
  return { add, replaced, remove };
}

/**
 * Merges a new event into pending ones (keyed by subnet) so a batch holds at most one event per
 * peer and the kernel ends up where the last event says, with `previous` being what is actually
 * programmed.
 */
export function mergePeerEvent(pending: Map<string, PeerEvent>, ev: PeerEvent): void {
  const k = subnetKeyName(ev.lease.subnet, ev.lease.ipv6Subnet);
  const old = pending.get(k);
  if (!old) {
    pending.set(k, ev);
    return;
  }
  const programmed = old.type === "added" ? old.previous : old.lease;
  if (ev.type === "added") {
    pending.set(
      k,
      programmed ? { type: "added", lease: ev.lease, previous: programmed } : {
        type: "added",
        lease: ev.lease,
      },
    );
  } else if (programmed) {
    pending.set(k, { type: "removed", lease: programmed });
  } else {
    pending.delete(k); // added and gone before it was programmed: nothing to do
  }
}
