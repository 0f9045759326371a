// Reading routes back from `ip -j route` into RouteEntry form, keeping only the ones a backend
// owns: inside the cluster network, not our own subnet, with a gateway.
import { type CIDR, containsCIDR, formatCIDR, tryParseCIDR } from "../net/cidr.ts";
import type { RouteEntry } from "./dataplane.ts";

export interface IpRouteJson {
  dst: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
}

export function ownedRoutes(
  routes: IpRouteJson[],
  dev: string,
  network: CIDR,
  ownSubnet: CIDR | null,
): RouteEntry[] {
  const out: RouteEntry[] = [];
  for (const r of routes) {
    if (!r.gateway || r.dst === "default") continue;
    const c = tryParseCIDR(r.dst.includes("/") ? r.dst : `${r.dst}/32`);
    if (!c || !containsCIDR(network, c)) continue;
    if (ownSubnet && formatCIDR(c) === formatCIDR(ownSubnet)) continue;
    out.push({
      dst: formatCIDR(c),
      via: r.gateway,
      dev: r.dev ?? dev,
      onlink: (r.flags ?? []).includes("onlink"),
    });
  }
  return out;
}
