// The host-gw backend: per peer a route <subnet> via <PublicIP> dev <iface> (dual stack: also
// <IPv6Subnet> via <PublicIPv6>). Needs every node on one L2 and PublicIP = the interface address
// (it cannot work behind NAT).
import { type CIDR, formatCIDR } from "../net/cidr.ts";
import { ipBatch, ipJson } from "../net/ip_batch.ts";
import { applyPlan, kernelBatchesSpawn, rtnlReader } from "./kernel.ts";
import type { ChosenIface } from "../net/iface.ts";
import type { Lease, LeaseAttrs } from "../subnet/lease.ts";
import type {
  Backend,
  BackendContext,
  BackendType,
  ExpectContext,
  ExpectedState,
  ReconcileResult,
} from "./backend.ts";
import type { BackendConfig } from "../subnet/config.ts";
import { type DataPlane, emptyPlan, eventLines, planDataPlane } from "./dataplane.ts";
import { type PeerEvent, splitPeerEvents } from "../subnet/watcher.ts";
import { type IpRouteJson, ownedRoutes } from "./routes.ts";

export function hostGwDesired(
  peers: Lease[],
  iface: string,
  publicIP: string,
  v6 = false,
): DataPlane {
  const dp: DataPlane = { routes: [], neighs: [], fdbs: [] };
  for (const p of peers) {
    if (!p.attrs.publicIP || p.attrs.publicIP === publicIP) continue;
    if (p.subnet) {
      dp.routes.push({
        dst: formatCIDR(p.subnet),
        via: p.attrs.publicIP,
        dev: iface,
        onlink: false,
      });
    }
    if (v6 && p.ipv6Subnet && p.attrs.publicIPv6) {
      dp.routes.push({
        dst: formatCIDR(p.ipv6Subnet),
        via: p.attrs.publicIPv6,
        dev: iface,
        onlink: false,
      });
    }
  }
  return dp;
}

const TYPE = "host-gw";

/** host-gw has no Backend fields of its own. */
export interface HostGwConfig extends BackendConfig {
  type: typeof TYPE;
}

export const HOST_GW: BackendType<HostGwConfig> = {
  type: TYPE,
  parseConfig: () => ({ type: TYPE }),
  init: (_cfg: HostGwConfig, ctx: BackendContext) =>
    Promise.resolve(new HostGwBackend(ctx.iface, ctx.publicIP, ctx.network, ctx.network6)),
  // No device and nothing to probe beyond the underlay: a route per peer via its address.
  expected: (_cfg: HostGwConfig, ctx: ExpectContext): ExpectedState => ({
    device: null,
    mtu: ctx.iface.mtu,
    mtuWhy: `${ctx.iface.name} MTU`,
    dataPlane: hostGwDesired(ctx.peers, ctx.iface.name, ctx.publicIP),
    probes: [],
  }),
};

export class HostGwBackend implements Backend {
  readonly type = TYPE;
  readonly mtu: number;
  private own: Lease | null = null;

  constructor(
    private iface: ChosenIface,
    private publicIP: string,
    private network: CIDR,
    /** Dual stack: the IPv6 network; our PublicIPv6 is the interface's IPv6 address. */
    private network6: CIDR | null = null,
  ) {
    if (publicIP !== iface.address) {
      throw new Error(
        `host-gw cannot work behind NAT: the public IP ${publicIP} is not the address of ` +
          `${iface.name} (${iface.address}); use the vxlan backend or drop --public-ip`,
      );
    }
    this.mtu = iface.mtu;
  }

  logFields(): Record<string, unknown> {
    return {};
  }

  leaseAttrs(): LeaseAttrs {
    return {
      publicIP: this.publicIP,
      publicIPv6: this.network6 ? this.iface.address6 : null,
      backendType: TYPE,
    };
  }

  setOwnLease(lease: Lease): void {
    this.own = lease;
  }

  batchesSpawn(): boolean {
    return kernelBatchesSpawn();
  }

  async applyEvents(events: PeerEvent[]): Promise<string> {
    const { add, replaced, remove } = splitPeerEvents(events);
    const d = (ls: Lease[]) => hostGwDesired(ls, this.iface.name, this.publicIP, !!this.network6);
    const plan = eventLines(d(add), d(remove), d(replaced));
    const r = await ipBatch([...plan.ipFirst, ...plan.ipLast]);
    return r.errors;
  }

  async reconcile(peers: Lease[]): Promise<ReconcileResult> {
    const nl = rtnlReader();
    const [routes, routes6] = nl
      ? [nl.routes(4, this.iface.name), this.network6 ? nl.routes(6, this.iface.name) : []]
      : await Promise.all([
        ipJson<IpRouteJson[]>(["-4", "route", "show", "dev", this.iface.name]),
        this.network6
          ? ipJson<IpRouteJson[]>(["-6", "route", "show", "dev", this.iface.name])
          : Promise.resolve([] as IpRouteJson[]),
      ]);
    const actual: DataPlane = {
      routes: [
        ...ownedRoutes(routes ?? [], this.iface.name, this.network, this.own?.subnet ?? null),
        ...(this.network6
          ? ownedRoutes(routes6 ?? [], this.iface.name, this.network6, this.own?.ipv6Subnet ?? null)
          : []),
      ],
      neighs: [],
      fdbs: [],
    };
    const want = hostGwDesired(peers, this.iface.name, this.publicIP, !!this.network6);
    const plan = planDataPlane(want, actual);
    let errors = "";
    if (!emptyPlan(plan)) errors = await applyPlan(plan);
    return {
      deviceChanged: false,
      deviceRecreated: false,
      added: plan.added,
      removed: plan.removed,
      peersProgrammed: hostGwDesired(peers, this.iface.name, this.publicIP).routes.length,
      errors,
    };
  }
}
