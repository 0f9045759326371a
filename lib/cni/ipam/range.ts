// Address ranges and the choice of the next free address, pure. Same rules as the reference
// host-local plugin so a node can switch between it and twill without losing track of addresses:
// the range runs from network+1 to the last address (minus broadcast for IPv4), the gateway
// (network+1) is never handed out, and the search starts after the last address reserved.
import { addIP, type CIDR, contains, type IP, lastIP, networkOf, nthIP } from "../../net/cidr.ts";

export interface Range {
  /** Position in the range set list, which names last_reserved_ip.<index>. */
  index: number;
  subnet: CIDR;
  gateway: IP;
  start: IP;
  end: IP;
}

export function rangeFor(subnet: CIDR, index: number): Range {
  const net = networkOf(subnet);
  const last = lastIP(net);
  return {
    index,
    subnet: net,
    gateway: nthIP(net, 1),
    start: nthIP(net, 1),
    end: net.ip.family === 4 ? addIP(last, -1) : last,
  };
}

export function inRange(r: Range, ip: IP): boolean {
  return contains(r.subnet, ip) && ip.value >= r.start.value && ip.value <= r.end.value;
}

/**
 * The next free address after `last` (wrapping around), or null when every address is taken.
 * `taken` says whether an address value already has a reservation.
 */
export function nextFree(r: Range, taken: (v: bigint) => boolean, last?: IP): IP | null {
  const span = r.end.value - r.start.value + 1n;
  if (span <= 0n) return null;
  let cur = last && inRange(r, last) ? last.value + 1n : r.start.value;
  for (let i = 0n; i < span; i++) {
    if (cur > r.end.value) cur = r.start.value;
    if (cur !== r.gateway.value && !taken(cur)) return { family: r.start.family, value: cur };
    cur++;
  }
  return null;
}
