// The ipip backend (Flannel's ipip semantics): an IPv4-in-IPv4 tunnel flannel.ipip whose local end
// is the interface address, MTU = underlay − 20, address <own subnet>.0/32; per peer the route
// <subnet> via <PublicIP> dev flannel.ipip onlink, or with DirectRouting and a peer on our L2
// <subnet> via <PublicIP> dev <iface>. IPv4 only. No lease BackendData. A kernel without ipip is
// refused at start with one line naming the missing support.
import { type CIDR, contains, formatCIDR, formatIP, parseCIDR, parseIP } from "../net/cidr.ts";
import { ipBatch, ipJson } from "../net/ip_batch.ts";
import {
  createIpip,
  IPIP_DEVICE,
  type IpipSpec,
  IpipUnsupportedError,
  probeIpip,
} from "../net/netlink/ipip.ts";
import { getLink } from "../net/netlink/rtnl.ts";
import { NetlinkSocket } from "../net/netlink/socket.ts";
import type { ChosenIface } from "../net/iface.ts";
import { asBool, type BackendConfig, type BackendField } from "../subnet/config.ts";
import type { Lease, LeaseAttrs } from "../subnet/lease.ts";
import { type PeerEvent, splitPeerEvents } from "../subnet/watcher.ts";
import type { Backend, BackendContext, BackendType, ReconcileResult } from "./backend.ts";
import { type DataPlane, emptyPlan, eventLines, planDataPlane } from "./dataplane.ts";
import { applyPlan, kernelBatchesSpawn } from "./kernel.ts";
import { type IpRouteJson, ownedRoutes } from "./routes.ts";

const TYPE = "ipip";
/** The outer IPv4 header. */
export const IPIP_OVERHEAD = 20;

export interface IpipConfig extends BackendConfig {
  type: typeof TYPE;
  directRouting: boolean;
}

export function parseIpipConfig(field: BackendField): IpipConfig {
  return {
    type: TYPE,
    directRouting: asBool(field("DirectRouting"), "Backend.DirectRouting", false),
  };
}

/** Pure: the device ipip asks the kernel for on this interface. */
export function ipipDeviceSpec(iface: ChosenIface): IpipSpec {
  const mtu = iface.mtu - IPIP_OVERHEAD;
  if (mtu <= 0) throw new Error(`MTU ${iface.mtu} of ${iface.name} is too small for ipip`);
  return { name: IPIP_DEVICE, local: parseIP(iface.address), mtu };
}

/** Pure: the routes wanted for these peers. */
export function ipipDesired(
  peers: Lease[],
  publicIP: string,
  direct: { iface: string; underlay: CIDR } | null,
): DataPlane {
  const dp: DataPlane = { routes: [], neighs: [], fdbs: [] };
  for (const p of peers) {
    const pub = p.attrs.publicIP;
    if (!p.subnet || !pub || pub === publicIP || p.attrs.backendType !== TYPE) continue;
    const sameL2 = direct && contains(direct.underlay, parseIP(pub));
    dp.routes.push(
      sameL2
        ? { dst: formatCIDR(p.subnet), via: pub, dev: direct.iface, onlink: false }
        : { dst: formatCIDR(p.subnet), via: pub, dev: IPIP_DEVICE, onlink: true },
    );
  }
  return dp;
}

export const IPIP: BackendType<IpipConfig> = {
  type: TYPE,
  parseConfig: parseIpipConfig,
  init(cfg: IpipConfig, ctx: BackendContext): Promise<Backend> {
    if (ctx.network6) throw new Error("the ipip backend carries IPv4 only; disable IPv6");
    const spec = ipipDeviceSpec(ctx.iface);
    const s = NetlinkSocket.open();
    try {
      if (!getLink(s, IPIP_DEVICE)) {
        const probe = probeIpip(s);
        if (!probe.supported) throw new IpipUnsupportedError();
      }
    } finally {
      s.close();
    }
    return Promise.resolve(new IpipBackend(cfg, ctx, spec));
  },
};

interface LinkJson {
  mtu?: number;
  flags?: string[];
  link_type?: string;
  addr_info?: { local: string; prefixlen: number }[];
  linkinfo?: { info_kind?: string; info_data?: { local?: string } };
}

export class IpipBackend implements Backend {
  readonly type = TYPE;
  readonly mtu: number;
  private own: Lease | null = null;
  private direct: { iface: string; underlay: CIDR } | null;

  constructor(private cfg: IpipConfig, private ctx: BackendContext, private spec: IpipSpec) {
    this.mtu = spec.mtu;
    this.direct = cfg.directRouting
      ? {
        iface: ctx.iface.name,
        underlay: parseCIDR(`${ctx.iface.address}/${ctx.iface.prefixLen}`),
      }
      : null;
  }

  logFields(): Record<string, unknown> {
    return { device: IPIP_DEVICE, direct_routing: this.cfg.directRouting };
  }

  leaseAttrs(): LeaseAttrs {
    return { publicIP: this.ctx.publicIP, publicIPv6: null, backendType: TYPE };
  }

  setOwnLease(lease: Lease): void {
    this.own = lease;
  }

  batchesSpawn(): boolean {
    return kernelBatchesSpawn();
  }

  desired(peers: Lease[]): DataPlane {
    return ipipDesired(peers, this.ctx.publicIP, this.direct);
  }

  async applyEvents(events: PeerEvent[]): Promise<string> {
    const { add, replaced, remove } = splitPeerEvents(events);
    return await applyPlan(
      eventLines(this.desired(add), this.desired(remove), this.desired(replaced)),
    );
  }

  /** Creates the tunnel when missing (recreated when its local differs); ip lines for the rest. */
  private async deviceLines(): Promise<{ lines: string[]; created: boolean }> {
    const [have] = (await ipJson<LinkJson[]>(["-d", "addr", "show", "dev", IPIP_DEVICE])) ?? [];
    const local = have?.linkinfo?.info_data?.local;
    let created = false;
    if (!have || have.linkinfo?.info_kind !== "ipip" || local !== this.ctx.iface.address) {
      const s = NetlinkSocket.open();
      try {
        const old = getLink(s, IPIP_DEVICE);
        if (old) await ipBatch([`link del ${IPIP_DEVICE}`]);
        createIpip(s, this.spec);
      } finally {
        s.close();
      }
      created = true;
    }
    const lines: string[] = [];
    if (created || have?.mtu !== this.mtu || !(have?.flags ?? []).includes("UP")) {
      lines.push(`link set dev ${IPIP_DEVICE} mtu ${this.mtu} up`);
    }
    const sn = this.own?.subnet;
    const addrs = new Set((have?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
    if (sn && (created || !addrs.has(`${formatIP(sn.ip)}/32`))) {
      lines.push(`addr replace ${formatIP(sn.ip)}/32 dev ${IPIP_DEVICE}`);
    }
    return { lines, created };
  }

  async reconcile(peers: Lease[]): Promise<ReconcileResult> {
    const dev = await this.deviceLines();
    if (dev.lines.length) {
      const r = await ipBatch(dev.lines);
      if (!r.ok) throw new Error(`could not set up ${IPIP_DEVICE}: ${r.errors}`);
    }
    const own = this.own?.subnet ?? null;
    const net = this.ctx.network;
    const routes = (await ipJson<IpRouteJson[]>(["-4", "route", "show", "dev", IPIP_DEVICE])) ?? [];
    const direct = this.direct
      ? (await ipJson<IpRouteJson[]>(["-4", "route", "show", "dev", this.ctx.iface.name])) ?? []
      : [];
    const actual: DataPlane = {
      routes: [
        ...ownedRoutes(routes, IPIP_DEVICE, net, own),
        ...ownedRoutes(direct, this.ctx.iface.name, net, own),
      ],
      neighs: [],
      fdbs: [],
    };
    const want = this.desired(peers);
    const plan = planDataPlane(want, actual);
    const errors = emptyPlan(plan) ? "" : await applyPlan(plan);
    return {
      deviceChanged: dev.lines.length > 0,
      deviceRecreated: dev.created,
      deviceReason: dev.created ? `${IPIP_DEVICE} was missing or not ours` : undefined,
      added: plan.added,
      removed: plan.removed,
      peersProgrammed: want.routes.length,
      errors,
    };
  }
}
