// Turns store listings and watch events into peer add/remove events (Flannel's LeaseWatcher):
// our own lease is ignored, a removal carries the last attributes we knew, and a re-listing after
// compaction yields exactly the difference from what we had. Pure; the loop lives in watch_loop.ts.
import { type Lease, sameSubnets, subnetKeyName } from "./lease.ts";

export type PeerEvent = { type: "added"; lease: Lease } | { type: "removed"; lease: Lease };

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
        out.push({ type: "added", lease: l });
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
      this.peers.set(k, lease);
      return { type: "added", lease };
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
