// Address management over the host-local store: allocate (or find again), release, collect
// garbage. Callers hold the store's lock around these.
import { formatCIDR, type IP } from "../../net/cidr.ts";
import { CniError, ERR } from "../errors.ts";
import { inRange, nextFree, type Range } from "./range.ts";
import type { Reservation, ReservationStore } from "./store.ts";

function owns(r: Reservation, containerId: string, ifname: string): boolean {
  // host-local before 0.8 wrote only the container id.
  return r.containerId === containerId && (r.ifname === ifname || r.ifname === "");
}

/**
 * One address per range for (containerId, ifname): the one already reserved when there is one
 * (a repeated ADD gets the same address), else the next free one. All or nothing: when a later
 * range is exhausted, the addresses reserved here for earlier ranges are released again.
 */
export function allocate(
  store: ReservationStore,
  ranges: Range[],
  containerId: string,
  ifname: string,
): { ips: IP[]; fresh: IP[] } {
  const existing = store.list();
  const taken = new Set(existing.map((r) => `${r.ip.family}/${r.ip.value}`));
  const ips: IP[] = [];
  const fresh: IP[] = [];
  try {
    for (const range of ranges) {
      const mine = existing.find((r) => owns(r, containerId, ifname) && inRange(range, r.ip));
      if (mine) {
        ips.push(mine.ip);
        continue;
      }
      let after = store.lastReserved(range.index);
      let chosen: IP | null = null;
      // Reserving loses only to a writer that ignores the lock; then the next address is tried.
      for (let tries = 0; tries < 16 && !chosen; tries++) {
        const candidate = nextFree(range, (v) => taken.has(`${range.start.family}/${v}`), after);
        if (!candidate) break;
        taken.add(`${candidate.family}/${candidate.value}`);
        if (store.reserve({ ip: candidate, containerId, ifname })) chosen = candidate;
        after = candidate;
      }
      if (!chosen) {
        throw new CniError(
          ERR.exhausted,
          `no free address left in ${formatCIDR(range.subnet)} for container ${containerId}; ` +
            `delete unused pods or give the node a larger subnet`,
        );
      }
      store.setLastReserved(range.index, chosen);
      ips.push(chosen);
      fresh.push(chosen);
    }
  } catch (e) {
    for (const ip of fresh) store.release(ip);
    throw e;
  }
  return { ips, fresh };
}

/** Releases every address of (containerId, ifname); returns what was released. */
export function releaseAll(store: ReservationStore, containerId: string, ifname: string): IP[] {
  const out: IP[] = [];
  for (const r of store.list()) {
    if (owns(r, containerId, ifname)) {
      store.release(r.ip);
      out.push(r.ip);
    }
  }
  return out;
}

/** Releases every address whose attachment is not in `valid`; returns what was released. */
export function collectGarbage(
  store: ReservationStore,
  valid: { containerID: string; ifname: string }[],
): Reservation[] {
  const keep = new Set(valid.map((a) => `${a.containerID}\n${a.ifname}`));
  const keepIds = new Set(valid.map((a) => a.containerID));
  const out: Reservation[] = [];
  for (const r of store.list()) {
    const kept = r.ifname ? keep.has(`${r.containerId}\n${r.ifname}`) : keepIds.has(r.containerId);
    if (!kept) {
      store.release(r.ip);
      out.push(r);
    }
  }
  return out;
}
