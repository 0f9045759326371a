// What Flannel's plugin, delegating to bridge + host-local, would set up for this node, worked
// out from the network config and subnet.env: pure.
import { type CIDR, type IP, parseCIDR, parseIP } from "../net/cidr.ts";
import type { NetConf } from "./config.ts";
import { type Range, rangeFor } from "./ipam/range.ts";
import type { SubnetEnv } from "../subnet/subnet_env.ts";

export interface PlannedRoute {
  dst: CIDR;
  gw?: IP;
}

export interface Plan {
  bridge: string;
  mtu: number;
  hairpin: boolean;
  /** The bridge holds each range's gateway address. */
  isGateway: boolean;
  ipMasq: boolean;
  /** IPv4 range first (index 0) when present, then IPv6: host-local's range-set order. */
  ranges: Range[];
  /** The routes the result reports, in host-local then bridge order. */
  routes: PlannedRoute[];
  /** Destinations that must not be masqueraded: the cluster networks. */
  networks: CIDR[];
}

export function makePlan(conf: NetConf, env: SubnetEnv): Plan {
  const ranges: Range[] = [];
  if (env.subnet) ranges.push(rangeFor(env.subnet, ranges.length));
  if (env.ipv6Subnet) ranges.push(rangeFor(env.ipv6Subnet, ranges.length));
  const routes: PlannedRoute[] = conf.extraRoutes.map((r) => ({
    dst: r.dst,
    gw: r.gw ? parseIP(r.gw) : undefined,
  }));
  const networks = [env.network, env.ipv6Network].filter((n): n is CIDR => !!n);
  for (const n of networks) routes.push({ dst: n });
  if (conf.isDefaultGateway) {
    for (const r of ranges) {
      routes.push({
        dst: parseCIDR(r.subnet.ip.family === 4 ? "0.0.0.0/0" : "::/0"),
        gw: r.gateway,
      });
    }
  }
  return {
    bridge: conf.bridge,
    mtu: conf.mtu ?? env.mtu,
    hairpin: conf.hairpinMode,
    isGateway: conf.isGateway || conf.isDefaultGateway,
    ipMasq: conf.ipMasq ?? !env.ipMasq,
    ranges,
    routes,
    networks,
  };
}

/** The gateway a route without one uses in the pod: the range gateway of its family. */
export function routeGateway(plan: Plan, r: PlannedRoute): IP | undefined {
  return r.gw ?? plan.ranges.find((x) => x.gateway.family === r.dst.ip.family)?.gateway;
}

/**
 * The host end's name: "veth" + 8 hex digits of a hash of (container, ifname), so a retried ADD
 * or a DEL whose namespace is gone can still find it.
 */
export function hostVethName(containerId: string, ifname: string): string {
  let h = 0x811c9dc5;
  for (const ch of new TextEncoder().encode(`${containerId}/${ifname}`)) {
    h ^= ch;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `veth${h.toString(16).padStart(8, "0")}`;
}
