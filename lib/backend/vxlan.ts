// The VXLAN backend (Flannel's vxlan semantics): device flannel.<VNI>; per peer a permanent
// neighbour <subnet>.0 → VtepMAC, an FDB entry VtepMAC → PublicIP, then the route
// <subnet> via <subnet>.0 dev flannel.<VNI> onlink. DirectRouting: a peer on our L2 gets
// <subnet> via <PublicIP> dev <iface> instead.
import { type CIDR, contains, formatCIDR, formatIP, parseCIDR, parseIP } from "../net/cidr.ts";
import { bridgeJson, ipBatch, ipJson } from "../net/ip_batch.ts";
import { applyPlan, kernelBatchesSpawn, rtnlReader } from "./kernel.ts";
import type { ChosenIface } from "../net/iface.ts";
import {
  asBool,
  asUint,
  type BackendConfig,
  type BackendField,
  jsonField,
  NetConfigError,
} from "../subnet/config.ts";
import type { Lease, LeaseAttrs } from "../subnet/lease.ts";
import { writeTextFileAtomic } from "../fs_atomic.ts";
import type {
  Backend,
  BackendContext,
  BackendType,
  ExpectContext,
  ExpectedState,
  ReconcileResult,
} from "./backend.ts";
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
import {
  type LinkDetails,
  planDevice,
  randomVtepMac,
  type VxlanDeviceSpec,
} from "./vxlan_device.ts";

const TYPE = "vxlan";

/** net-conf.json's Backend fields for vxlan. */
export interface VxlanConfig extends BackendConfig {
  type: typeof TYPE;
  vni: number;
  port: number;
  /** 0 = underlay MTU − 50 */
  mtu: number;
  directRouting: boolean;
}

export function parseVxlanConfig(field: BackendField): VxlanConfig {
  const vni = asUint(field("VNI"), "Backend.VNI") || 1;
  if (vni > 0xffffff) {
    throw new NetConfigError(`net-conf: Backend.VNI ${vni} is above 16777215`);
  }
  const port = asUint(field("Port"), "Backend.Port") || 8472;
  if (port > 65535) throw new NetConfigError(`net-conf: Backend.Port ${port} is above 65535`);
  return {
    type: TYPE,
    vni,
    port,
    mtu: asUint(field("MTU"), "Backend.MTU"),
    directRouting: asBool(field("DirectRouting"), "Backend.DirectRouting", false),
  };
}

/** vxlan's lease BackendData: {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}. */
export interface VxlanLeaseData {
  vni: number;
  vtepMAC: string;
}

export function encodeVxlanData(d: VxlanLeaseData): { VNI: number; VtepMAC: string } {
  return { VNI: d.vni, VtepMAC: d.vtepMAC };
}

/** Decodes BackendData (or, v6, BackendV6Data); null when absent or without a VtepMAC. */
export function vxlanData(attrs: LeaseAttrs, v6 = false): VxlanLeaseData | null {
  const d = v6 ? attrs.backendV6Data : attrs.backendData;
  if (typeof d !== "object" || d === null) return null;
  const vni = jsonField(d as Record<string, unknown>, "VNI");
  const mac = jsonField(d as Record<string, unknown>, "VtepMAC");
  if (typeof mac !== "string") return null;
  return { vni: typeof vni === "number" ? vni : 1, vtepMAC: mac.toLowerCase() };
}

/** Loads the VTEP MAC kept in the data dir, or chooses one and keeps it (crash-safely). */
export async function loadVtepMac(dataDir: string, file = "vtep-mac"): Promise<string> {
  const path = `${dataDir}/${file}`;
  try {
    const text = (await Deno.readTextFile(path)).trim().toLowerCase();
    if (/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(text)) return text;
  } catch { /* first start */ }
  const mac = randomVtepMac(crypto.getRandomValues(new Uint8Array(6)));
  await Deno.mkdir(dataDir, { recursive: true });
  await writeTextFileAtomic(path, mac + "\n", 0o644);
  return mac;
}

export const VXLAN: BackendType<VxlanConfig> = {
  type: TYPE,
  parseConfig: parseVxlanConfig,
  async init(cfg: VxlanConfig, ctx: BackendContext): Promise<Backend> {
    const mac = await loadVtepMac(ctx.dataDir);
    const v6 = ctx.network6
      ? {
        publicIPv6: ctx.iface.address6!,
        prefixLen: ctx.iface.prefixLen6,
        mac: await loadVtepMac(ctx.dataDir, "vtep-mac-v6"),
        network: ctx.network6,
      }
      : null;
    return new VxlanBackend(cfg, ctx.iface, ctx.publicIP, mac, ctx.network, v6);
  },
  expected: vxlanExpected,
};

/** Pure: flannel.<VNI> with <own subnet>.0/32, the per-peer entries, a ping of each peer's
 *  <subnet>.0 through the overlay (a peer reached by DirectRouting is not probed). */
export function vxlanExpected(cfg: VxlanConfig, ctx: ExpectContext): ExpectedState {
  const dev = vxlanDeviceName(cfg.vni);
  const { iface } = ctx;
  const direct = cfg.directRouting
    ? { iface: iface.name, underlay: parseCIDR(`${iface.address}/${iface.prefixLen}`) }
    : null;
  const mtu4 = cfg.mtu || iface.mtu - 50;
  const why = cfg.mtu ? "Backend.MTU" : `${iface.name} MTU ${iface.mtu} − 50`;
  const mtu = cfg.mtu || (ctx.ipv6 ? iface.mtu - 70 : mtu4);
  const dataPlane = vxlanDesired(ctx.peers, dev, ctx.publicIP, direct);
  const probes = ctx.peers.flatMap((p) => {
    const pub = p.attrs.publicIP;
    if (!p.subnet || !vxlanData(p.attrs) || !pub || pub === ctx.publicIP) return [];
    if (direct && contains(direct.underlay, parseIP(pub))) return [];
    return [{ peer: p, target: formatIP(p.subnet.ip), path: `UDP ${cfg.port}` }];
  });
  return {
    device: ctx.own.subnet
      ? { name: dev, address: `${formatIP(ctx.own.subnet.ip)}/32`, mtu: mtu4, mtuWhy: why }
      : null,
    mtu,
    mtuWhy: ctx.ipv6 && !cfg.mtu ? `${iface.name} MTU ${iface.mtu} − 70 (dual stack)` : why,
    dataPlane,
    probes,
  };
}

export function vxlanDeviceName(vni: number): string {
  return `flannel.${vni}`;
}

/** Pure: the entries wanted for the given peers (IPv4 overlay). */
export function vxlanDesired(
  peers: Lease[],
  dev: string,
  publicIP: string,
  direct: { iface: string; underlay: CIDR } | null,
): DataPlane {
  return vxlanDesiredFamily(peers, dev, publicIP, direct, false);
}

/**
 * Pure: the entries wanted for the given peers, for one family: IPv4 uses the lease's Subnet,
 * PublicIP and BackendData; IPv6 its IPv6Subnet, PublicIPv6 and BackendV6Data.
 */
export function vxlanDesiredFamily(
  peers: Lease[],
  dev: string,
  ownPublic: string,
  direct: { iface: string; underlay: CIDR } | null,
  v6: boolean,
): DataPlane {
  const dp: DataPlane = { routes: [], neighs: [], fdbs: [] };
  for (const p of peers) {
    const sn = v6 ? p.ipv6Subnet : p.subnet;
    const pub = v6 ? p.attrs.publicIPv6 : p.attrs.publicIP;
    const d = vxlanData(p.attrs, v6);
    if (!sn || !d || !pub || pub === ownPublic) continue;
    const gw = formatIP(sn.ip);
    dp.neighs.push({ ip: gw, mac: d.vtepMAC, dev });
    dp.fdbs.push({ mac: d.vtepMAC, dst: pub, dev });
    const sameL2 = direct && contains(direct.underlay, parseIP(pub));
    dp.routes.push(
      sameL2
        ? { dst: formatCIDR(sn), via: pub, dev: direct.iface, onlink: false }
        : { dst: formatCIDR(sn), via: gw, dev, onlink: true },
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

/** The IPv6 side of a dual-stack VXLAN backend (Flannel's flannel-v6.<VNI>). */
export interface VxlanV6 {
  /** Our underlay IPv6 address (VXLAN local, PublicIPv6). */
  publicIPv6: string;
  prefixLen: number;
  mac: string;
  network: CIDR;
}

/** One overlay family's device and view of the leases. */
interface Side {
  v6: boolean;
  dev: string;
  mac: string;
  local: string;
  mtu: number;
  network: CIDR;
  own: () => CIDR | null;
  direct: { iface: string; underlay: CIDR } | null;
}

export class VxlanBackend implements Backend {
  readonly type = TYPE;
  readonly mtu: number;
  readonly dev: string;
  private own: Lease | null = null;
  private sides: Side[];

  constructor(
    private cfg: VxlanConfig,
    private iface: ChosenIface,
    private publicIP: string,
    private mac: string,
    private network: CIDR,
    private v6: VxlanV6 | null = null,
  ) {
    this.dev = vxlanDeviceName(cfg.vni);
    const mtu4 = cfg.mtu || iface.mtu - 50;
    const mtu6 = cfg.mtu || iface.mtu - 70; // IPv6 outer header: 20 bytes more
    this.mtu = v6 ? Math.min(mtu4, mtu6) : mtu4;
    this.sides = [{
      v6: false,
      dev: this.dev,
      mac,
      local: iface.address,
      mtu: mtu4,
      network,
      own: () => this.own?.subnet ?? null,
      direct: cfg.directRouting
        ? { iface: iface.name, underlay: parseCIDR(`${iface.address}/${iface.prefixLen}`) }
        : null,
    }];
    if (v6) {
      this.sides.push({
        v6: true,
        dev: `flannel-v6.${cfg.vni}`,
        mac: v6.mac,
        local: v6.publicIPv6,
        mtu: mtu6,
        network: v6.network,
        own: () => this.own?.ipv6Subnet ?? null,
        direct: cfg.directRouting
          ? { iface: iface.name, underlay: parseCIDR(`${v6.publicIPv6}/${v6.prefixLen}`) }
          : null,
      });
    }
  }

  logFields(): Record<string, unknown> {
    return { vni: this.cfg.vni, vtep_mac: this.mac };
  }

  leaseAttrs(): LeaseAttrs {
    const vni = this.cfg.vni;
    return {
      publicIP: this.publicIP,
      publicIPv6: this.v6?.publicIPv6 ?? null,
      backendType: TYPE,
      backendData: encodeVxlanData({ vni, vtepMAC: this.mac }),
      ...(this.v6 ? { backendV6Data: encodeVxlanData({ vni, vtepMAC: this.v6.mac }) } : {}),
    };
  }

  setOwnLease(lease: Lease): void {
    this.own = lease;
  }

  private spec(side: Side): VxlanDeviceSpec {
    const sn = side.own();
    return {
      name: side.dev,
      vni: this.cfg.vni,
      local: side.local,
      link: this.iface.name,
      port: this.cfg.port,
      mac: side.mac,
      mtu: side.mtu,
      address: sn ? `${formatIP(sn.ip)}/${side.v6 ? 128 : 32}` : null,
    };
  }

  deviceSpec(): VxlanDeviceSpec {
    return this.spec(this.sides[0]);
  }

  private desiredSide(side: Side, peers: Lease[]): DataPlane {
    const ownPublic = side.v6 ? this.v6!.publicIPv6 : this.publicIP;
    return vxlanDesiredFamily(peers, side.dev, ownPublic, side.direct, side.v6);
  }

  desired(peers: Lease[]): DataPlane {
    return merge(this.sides.map((s) => this.desiredSide(s, peers)));
  }

  private async actualSide(side: Side): Promise<DataPlane> {
    const fam = side.v6 ? "-6" : "-4";
    const own = side.own();
    const family = side.v6 ? 6 : 4;
    const nl = rtnlReader();
    const [routes, directRoutes, neighs, fdbs] = nl
      ? [
        nl.routes(family, side.dev),
        side.direct ? nl.routes(family, this.iface.name) : [],
        nl.neighs(family, side.dev),
        nl.fdbs(side.dev),
      ]
      : await Promise.all([
        ipJson<IpRouteJson[]>([fam, "route", "show", "dev", side.dev]),
        side.direct
          ? ipJson<IpRouteJson[]>([fam, "route", "show", "dev", this.iface.name])
          : Promise.resolve([] as IpRouteJson[]),
        ipJson<NeighJson[]>([fam, "neigh", "show", "dev", side.dev]),
        bridgeJson<FdbJson[]>(["fdb", "show", "dev", side.dev]),
      ]);
    return {
      routes: [
        ...ownedRoutes(routes ?? [], side.dev, side.network, own),
        ...ownedRoutes(directRoutes ?? [], this.iface.name, side.network, own),
      ],
      neighs: (neighs ?? [])
        .filter((n) => n.lladdr && (n.state ?? []).includes("PERMANENT"))
        .map((n): NeighEntry => ({ ip: n.dst, mac: n.lladdr!.toLowerCase(), dev: side.dev })),
      fdbs: (fdbs ?? [])
        .filter((f) => f.dst && f.mac !== "00:00:00:00:00:00")
        .map((f): FdbEntry => ({ mac: f.mac.toLowerCase(), dst: f.dst!, dev: side.dev })),
    };
  }

  async actual(): Promise<DataPlane> {
    return merge(await Promise.all(this.sides.map((s) => this.actualSide(s))));
  }

  batchesSpawn(): boolean {
    return kernelBatchesSpawn();
  }

  async applyEvents(events: PeerEvent[]): Promise<string> {
    const { add, replaced, remove } = splitPeerEvents(events);
    return await applyPlan(
      eventLines(this.desired(add), this.desired(remove), this.desired(replaced)),
    );
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
    for (const side of this.sides) {
      const have = await ipJson<LinkDetails[]>(["-d", "addr", "show", "dev", side.dev]);
      const dplan = planDevice(this.spec(side), have?.[0] ?? null);
      if (dplan.lines.length) {
        const r = await ipBatch(dplan.lines);
        res.deviceChanged = true;
        res.deviceRecreated ||= dplan.recreated;
        res.deviceReason = [res.deviceReason, `${side.dev}: ${dplan.reason}`].filter((x) => x)
          .join("; ");
        if (!r.ok) throw new Error(`could not set up ${side.dev}: ${r.errors}`);
      }
    }
    const want = this.desired(peers);
    const plan = planDataPlane(want, await this.actual());
    if (!emptyPlan(plan)) res.errors = await applyPlan(plan);
    res.added = plan.added;
    res.removed = plan.removed;
    res.peersProgrammed = this.desiredSide(this.sides[0], peers).routes.length;
    return res;
  }
}

function merge(parts: DataPlane[]): DataPlane {
  return {
    routes: parts.flatMap((p) => p.routes),
    neighs: parts.flatMap((p) => p.neighs),
    fdbs: parts.flatMap((p) => p.fdbs),
  };
}
