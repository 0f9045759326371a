// The VXLAN backend (Flannel's vxlan semantics): device flannel.<VNI>; per peer a permanent
// neighbour <subnet>.0 → VtepMAC, an FDB entry VtepMAC → PublicIP, then the route
// <subnet> via <subnet>.0 dev flannel.<VNI> onlink. DirectRouting: a peer on our L2 gets
// <subnet> via <PublicIP> dev <iface> instead.
import { type CIDR, contains, formatCIDR, formatIP, parseCIDR, parseIP } from "../net/cidr.ts";
import { bridgeBatch, bridgeJson, ipBatch, ipJson } from "../net/ip_batch.ts";
import type { ChosenIface } from "../net/iface.ts";
import type { VxlanBackendConfig } from "../subnet/config.ts";
import { type Lease, type LeaseAttrs, vxlanData } from "../subnet/lease.ts";
import type { Backend, ReconcileResult } from "./backend.ts";
import {
  type DataPlane,
  emptyPlan,
  eventLines,
  type FdbEntry,
  type NeighEntry,
  planDataPlane,
} from "./dataplane.ts";
import { type PeerEvent, splitPeerEvents } from "../subnet/watcher.ts";
import { type IpRouteJson, ownedRoutes } from "./routes.ts";
import { type LinkDetails, planDevice, type VxlanDeviceSpec } from "./vxlan_device.ts";

export function vxlanDeviceName(vni: number): string {
  return `flannel.${vni}`;
}

/** Pure: the entries wanted for the given peers. */
export function vxlanDesired(
  peers: Lease[],
  dev: string,
  publicIP: string,
  direct: { iface: string; underlay: CIDR } | null,
): DataPlane {
  const dp: DataPlane = { routes: [], neighs: [], fdbs: [] };
  for (const p of peers) {
    const d = vxlanData(p.attrs);
    if (!p.subnet || !d || !p.attrs.publicIP || p.attrs.publicIP === publicIP) continue;
    const gw = formatIP(p.subnet.ip);
    dp.neighs.push({ ip: gw, mac: d.vtepMAC, dev });
    dp.fdbs.push({ mac: d.vtepMAC, dst: p.attrs.publicIP, dev });
    const sameL2 = direct && contains(direct.underlay, parseIP(p.attrs.publicIP));
    dp.routes.push(
      sameL2
        ? { dst: formatCIDR(p.subnet), via: p.attrs.publicIP, dev: direct.iface, onlink: false }
        : { dst: formatCIDR(p.subnet), via: gw, dev, onlink: true },
    );
  }
  return dp;
}

interface NeighJson {
  dst: string;
  lladdr?: string;
  state?: string[];
}
interface FdbJson {
  mac: string;
  dst?: string;
  flags?: string[];
}

export class VxlanBackend implements Backend {
  readonly type = "vxlan" as const;
  readonly mtu: number;
  readonly dev: string;
  private own: Lease | null = null;

  constructor(
    private cfg: VxlanBackendConfig,
    private iface: ChosenIface,
    private publicIP: string,
    private mac: string,
    private network: CIDR,
  ) {
    this.mtu = cfg.mtu || iface.mtu - 50;
    this.dev = vxlanDeviceName(cfg.vni);
  }

  leaseAttrs(): LeaseAttrs {
    return {
      publicIP: this.publicIP,
      publicIPv6: null,
      backendType: "vxlan",
      backendData: { VNI: this.cfg.vni, VtepMAC: this.mac },
    };
  }

  setOwnLease(lease: Lease): void {
    this.own = lease;
  }

  deviceSpec(): VxlanDeviceSpec {
    return {
      name: this.dev,
      vni: this.cfg.vni,
      local: this.iface.address,
      link: this.iface.name,
      port: this.cfg.port,
      mac: this.mac,
      mtu: this.mtu,
      address: this.own?.subnet ? `${formatIP(this.own.subnet.ip)}/32` : null,
    };
  }

  private direct(): { iface: string; underlay: CIDR } | null {
    if (!this.cfg.directRouting) return null;
    return {
      iface: this.iface.name,
      underlay: parseCIDR(`${this.iface.address}/${this.iface.prefixLen}`),
    };
  }

  desired(peers: Lease[]): DataPlane {
    return vxlanDesired(peers, this.dev, this.publicIP, this.direct());
  }

  async actual(): Promise<DataPlane> {
    const own = this.own?.subnet ?? null;
    const [routes, directRoutes, neighs, fdbs] = await Promise.all([
      ipJson<IpRouteJson[]>(["-4", "route", "show", "dev", this.dev]),
      this.cfg.directRouting
        ? ipJson<IpRouteJson[]>(["-4", "route", "show", "dev", this.iface.name])
        : Promise.resolve([] as IpRouteJson[]),
      ipJson<NeighJson[]>(["-4", "neigh", "show", "dev", this.dev]),
      bridgeJson<FdbJson[]>(["fdb", "show", "dev", this.dev]),
    ]);
    return {
      routes: [
        ...ownedRoutes(routes ?? [], this.dev, this.network, own),
        ...ownedRoutes(directRoutes ?? [], this.iface.name, this.network, own),
      ],
      neighs: (neighs ?? [])
        .filter((n) => n.lladdr && (n.state ?? []).includes("PERMANENT"))
        .map((n): NeighEntry => ({ ip: n.dst, mac: n.lladdr!.toLowerCase(), dev: this.dev })),
      fdbs: (fdbs ?? [])
        .filter((f) => f.dst && f.mac !== "00:00:00:00:00:00")
        .map((f): FdbEntry => ({ mac: f.mac.toLowerCase(), dst: f.dst!, dev: this.dev })),
    };
  }

  async applyEvents(events: PeerEvent[]): Promise<string> {
    const { add, replaced, remove } = splitPeerEvents(events);
    const plan = eventLines(this.desired(add), this.desired(remove), this.desired(replaced));
    const a = await ipBatch(plan.ipFirst);
    const b = await bridgeBatch(plan.bridge);
    const c = await ipBatch(plan.ipLast);
    return [a.errors, b.errors, c.errors].filter((x) => x).join("; ");
  }

  async reconcile(peers: Lease[]): Promise<ReconcileResult> {
    const res: ReconcileResult = {
      deviceChanged: false,
      deviceRecreated: false,
      added: 0,
      removed: 0,
      peersProgrammed: 0,
      errors: "",
    };
    const have = await ipJson<LinkDetails[]>(["-d", "addr", "show", "dev", this.dev]);
    const dplan = planDevice(this.deviceSpec(), have?.[0] ?? null);
    if (dplan.lines.length) {
      const r = await ipBatch(dplan.lines);
      res.deviceChanged = true;
      res.deviceRecreated = dplan.recreated;
      res.deviceReason = dplan.reason;
      if (!r.ok) throw new Error(`could not set up ${this.dev}: ${r.errors}`);
    }
    const want = this.desired(peers);
    const plan = planDataPlane(want, await this.actual());
    if (!emptyPlan(plan)) {
      const a = await ipBatch(plan.ipFirst);
      const b = await bridgeBatch(plan.bridge);
      const c = await ipBatch(plan.ipLast);
      res.errors = [a.errors, b.errors, c.errors].filter((x) => x).join("; ");
    }
    res.added = plan.added;
    res.removed = plan.removed;
    res.peersProgrammed = want.routes.length;
    return res;
  }
}
