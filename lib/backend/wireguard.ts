// The wireguard backend (Flannel's wireguard semantics): device flannel-wg (plus flannel-wg-v6 in
// separate mode with dual stack) holding <own subnet>.0/32 and a route for the whole Network; one
// peer per lease with endpoint PublicIP:Port and AllowedIPs = the peer's subnet(s); MTU = underlay
// − 80. Lease BackendData {"PublicKey":"<base64>","Port":51820}. The private key is created once
// (0600 in the data dir). The kernel's WireGuard is configured over generic netlink where the
// kernel has the family; otherwise a detached wireguard-go per device over its UAPI socket, which
// outlives the agent so pod traffic keeps flowing across a restart.
import { type CIDR, formatCIDR, formatIP, parseIP } from "../net/cidr.ts";
import { ipBatch, ipJson } from "../net/ip_batch.ts";
import { NETLINK_GENERIC, resolveFamily } from "../net/netlink/genl.ts";
import { NetlinkSocket } from "../net/netlink/socket.ts";
import { setDevice, WG_GENL_NAME, type WgPeerSet } from "../net/wireguard/genetlink.ts";
import { keyFromBase64, keyToBase64, loadOrCreateKeyPair } from "../net/wireguard/keys.ts";
import {
  type DeviceState,
  encodeSet,
  type Endpoint,
  formatEndpoint,
  type PeerConfig,
  type UapiClient,
} from "../net/wireguard/uapi.ts";
import { ensureWireguardGo } from "../net/wireguard/userspace.ts";
import {
  asUint,
  type BackendConfig,
  type BackendField,
  jsonField,
  NetConfigError,
} from "../subnet/config.ts";
import type { Lease, LeaseAttrs } from "../subnet/lease.ts";
import { type PeerEvent, splitPeerEvents } from "../subnet/watcher.ts";
import type { Logger } from "../log.ts";
import type {
  Backend,
  BackendContext,
  BackendType,
  ExpectContext,
  ExpectedState,
  ReconcileResult,
} from "./backend.ts";

const TYPE = "wireguard";
/** Outer IPv4/IPv6 header, UDP, WireGuard's type, index, nonce and tag: Flannel's figure. */
export const WG_OVERHEAD = 80;
export const WG_DEVICE = "flannel-wg";
export const WG_DEVICE_V6 = "flannel-wg-v6";
export const WG_KEY_FILE = "wireguard-key";
export const WG_MODES = ["separate", "auto", "ipv4", "ipv6"] as const;
export type WgMode = typeof WG_MODES[number];

/** net-conf.json's Backend fields for wireguard. */
export interface WireguardConfig extends BackendConfig {
  type: typeof TYPE;
  listenPort: number;
  listenPortV6: number;
  /** The underlay MTU the device is sized from; 0 = the interface's. */
  mtu: number;
  psk: Uint8Array | null;
  /** Seconds; 0 = off. */
  keepalive: number;
  mode: WgMode;
}

function asPort(v: unknown, name: string, dflt: number): number {
  const p = asUint(v, name) || dflt;
  if (p > 65535) throw new NetConfigError(`net-conf: ${name} ${p} is above 65535`);
  return p;
}

export function parseWireguardConfig(field: BackendField): WireguardConfig {
  const mode = field("Mode") ?? "separate";
  if (typeof mode !== "string" || !(WG_MODES as readonly string[]).includes(mode)) {
    throw new NetConfigError(
      `net-conf: Backend.Mode ${JSON.stringify(mode)} is not a valid Mode ` +
        `(one of ${WG_MODES.join(", ")})`,
    );
  }
  const psk = field("PSK");
  if (psk !== undefined && psk !== null && typeof psk !== "string") {
    throw new NetConfigError("net-conf: Backend.PSK must be a base64 string");
  }
  let pskKey: Uint8Array | null = null;
  if (psk) {
    try {
      pskKey = keyFromBase64(psk, "Backend.PSK");
    } catch (e) {
      throw new NetConfigError(`net-conf: could not parse psk: ${(e as Error).message}`);
    }
  }
  const keepalive = asUint(
    field("PersistentKeepaliveInterval"),
    "Backend.PersistentKeepaliveInterval",
  );
  if (keepalive > 65535) {
    throw new NetConfigError(
      `net-conf: Backend.PersistentKeepaliveInterval ${keepalive} is above 65535`,
    );
  }
  return {
    type: TYPE,
    listenPort: asPort(field("ListenPort"), "Backend.ListenPort", 51820),
    listenPortV6: asPort(field("ListenPortV6"), "Backend.ListenPortV6", 51821),
    mtu: asUint(field("MTU"), "Backend.MTU"),
    psk: pskKey,
    keepalive,
    mode: mode as WgMode,
  };
}

/** wireguard's lease BackendData (and BackendV6Data). */
export interface WgLeaseData {
  publicKey: Uint8Array;
  port: number;
}

export function encodeWgData(
  publicKey: Uint8Array,
  port: number,
): { PublicKey: string; Port: number } {
  return { PublicKey: keyToBase64(publicKey), Port: port };
}

/** Decodes BackendData (v6: BackendV6Data); null when absent or without a usable key. */
export function wgData(attrs: LeaseAttrs, v6 = false): WgLeaseData | null {
  const d = v6 ? attrs.backendV6Data : attrs.backendData;
  if (typeof d !== "object" || d === null) return null;
  const k = jsonField(d as Record<string, unknown>, "PublicKey");
  const port = jsonField(d as Record<string, unknown>, "Port");
  if (typeof k !== "string") return null;
  try {
    const p = typeof port === "number" && Number.isInteger(port) && port > 0 && port < 65536;
    return { publicKey: keyFromBase64(k), port: p ? port as number : 0 };
  } catch {
    return null;
  }
}

/** One WireGuard device and what it carries. */
export interface WgSide {
  dev: string;
  port: number;
  /** Address families whose subnets the device's peers carry (AllowedIPs). */
  families: (4 | 6)[];
  /** Which lease address a peer's endpoint uses. */
  endpointFamily: 4 | 6 | "auto";
  /** Networks routed through the device. */
  networks: CIDR[];
}

/** The devices a mode asks for (Flannel: separate → one per family, else one for both). */
export function wgSides(cfg: WireguardConfig, network: CIDR, network6: CIDR | null): WgSide[] {
  if (cfg.mode === "separate") {
    const sides: WgSide[] = [{
      dev: WG_DEVICE,
      port: cfg.listenPort,
      families: [4],
      endpointFamily: 4,
      networks: [network],
    }];
    if (network6) {
      sides.push({
        dev: WG_DEVICE_V6,
        port: cfg.listenPortV6,
        families: [6],
        endpointFamily: 6,
        networks: [network6],
      });
    }
    return sides;
  }
  return [{
    dev: WG_DEVICE,
    port: cfg.listenPort,
    families: network6 ? [4, 6] : [4],
    endpointFamily: cfg.mode === "auto" ? "auto" : cfg.mode === "ipv6" ? 6 : 4,
    networks: network6 ? [network, network6] : [network],
  }];
}

/** Pure: the peer a lease asks for on a device, or null (own lease, other backend, no data). */
export function wgPeerOf(
  l: Lease,
  side: WgSide,
  ownPublic: { v4: string; v6: string | null },
  opts: { psk: Uint8Array | null; keepalive: number },
): PeerConfig | null {
  if (l.attrs.backendType !== TYPE) return null;
  if (l.attrs.publicIP === ownPublic.v4) return null;
  const fam = side.endpointFamily === "auto" ? (l.attrs.publicIP ? 4 : 6) : side.endpointFamily;
  const data = wgData(l.attrs, fam === 6) ?? wgData(l.attrs, fam !== 6);
  const host = fam === 6 ? l.attrs.publicIPv6 : l.attrs.publicIP;
  if (!data || !host) return null;
  const allowedIPs: CIDR[] = [];
  if (side.families.includes(4) && l.subnet) allowedIPs.push(l.subnet);
  if (side.families.includes(6) && l.ipv6Subnet) allowedIPs.push(l.ipv6Subnet);
  if (!allowedIPs.length) return null;
  return {
    publicKey: data.publicKey,
    presharedKey: opts.psk ?? undefined,
    endpoint: { ip: parseIP(host), port: data.port || side.port },
    allowedIPs,
    persistentKeepalive: opts.keepalive,
  };
}

const b64 = (k: Uint8Array) => keyToBase64(k);

function samePeer(want: PeerConfig, have: DeviceState["peers"][number]): boolean {
  const cidrs = (cs: CIDR[]) => cs.map(formatCIDR).sort().join(",");
  const ep = (e?: Endpoint) => (e ? formatEndpoint(e) : "");
  return ep(want.endpoint) === ep(have.endpoint) &&
    cidrs(want.allowedIPs) === cidrs(have.allowedIPs) &&
    (want.persistentKeepalive ?? 0) === have.persistentKeepalive &&
    (want.presharedKey ? b64(want.presharedKey) : "") ===
      (have.presharedKey ? b64(have.presharedKey) : "");
}

/** Pure: the peers to set (missing or different) and to remove (not wanted) on one device. */
export function planPeers(
  want: PeerConfig[],
  have: DeviceState["peers"],
): { set: PeerConfig[]; remove: Uint8Array[] } {
  const haveByKey = new Map(have.map((p) => [b64(p.publicKey), p]));
  const wantKeys = new Set(want.map((p) => b64(p.publicKey)));
  return {
    set: want.filter((p) => {
      const h = haveByKey.get(b64(p.publicKey));
      return !h || !samePeer(p, h);
    }),
    remove: have.filter((p) => !wantKeys.has(b64(p.publicKey))).map((p) => p.publicKey),
  };
}

/** How one device is driven: the kernel (generic netlink) or wireguard-go (UAPI). */
export interface WgDriver {
  readonly mode: "kernel" | "userspace";
  /** The device exists (created or started when missing); true when it had to be. */
  ensureDevice(dev: string): Promise<boolean>;
  /** Key and port set; the peers made exactly `want` (a full pass). Returns the change count. */
  syncPeers(dev: string, port: number, want: PeerConfig[]): Promise<number>;
  /** Peers added/updated and removed without reading the device first. */
  changePeers(dev: string, set: PeerConfig[], remove: Uint8Array[]): Promise<void>;
}

class UserspaceDriver implements WgDriver {
  readonly mode = "userspace";
  private clients = new Map<string, UapiClient>();
  constructor(private dataDir: string, private privateKey: Uint8Array, private log: Logger) {}

  async ensureDevice(dev: string): Promise<boolean> {
    const d = await ensureWireguardGo({ dataDir: this.dataDir, device: dev });
    this.clients.set(dev, d.client);
    if (!d.reused) this.log("info", "wireguard_go_started", { device: dev, pid: d.pid });
    return !d.reused;
  }

  private client(dev: string): UapiClient {
    const c = this.clients.get(dev);
    if (!c) throw new Error(`wireguard device ${dev} is not set up`);
    return c;
  }

  async syncPeers(dev: string, port: number, want: PeerConfig[]): Promise<number> {
    const c = this.client(dev);
    const state = await c.get();
    let changes = 0;
    const keyOk = state.privateKey && b64(state.privateKey) === b64(this.privateKey);
    if (!keyOk || state.listenPort !== port) {
      await c.configureDevice({ privateKey: this.privateKey, listenPort: port });
      changes++;
    }
    const plan = planPeers(want, state.peers);
    if (plan.set.length || plan.remove.length) await this.changePeers(dev, plan.set, plan.remove);
    return changes + plan.set.length + plan.remove.length;
  }

  async changePeers(dev: string, set: PeerConfig[], remove: Uint8Array[]): Promise<void> {
    if (!set.length && !remove.length) return;
    await this.client(dev).exchange("set peers", encodeSet({ peers: set, removePeers: remove }));
  }
}

/**
 * The kernel's WireGuard. The kernel device cannot be read back here, so a full pass sets every
 * wanted peer in place (sessions survive) and removes the peers this agent has seen go; the first
 * pass after start replaces the peer list, dropping any stale peer from before.
 */
class KernelDriver implements WgDriver {
  readonly mode = "kernel";
  private replaced = new Set<string>();
  private known = new Map<string, Set<string>>();
  constructor(private s: NetlinkSocket, private family: number, private privateKey: Uint8Array) {}

  async ensureDevice(dev: string): Promise<boolean> {
    const have = await ipJson<unknown[]>(["link", "show", "dev", dev]);
    if (have?.length) return false;
    const r = await ipBatch([`link add ${dev} type wireguard`]);
    if (!r.ok) throw new Error(`could not create ${dev}: ${r.errors}`);
    this.replaced.delete(dev);
    return true;
  }

  syncPeers(dev: string, port: number, want: PeerConfig[]): Promise<number> {
    const known = this.known.get(dev) ?? new Set<string>();
    const wanted = new Set(want.map((p) => b64(p.publicKey)));
    const gone = [...known].filter((k) => !wanted.has(k)).map((k) => keyFromBase64(k));
    setDevice(this.s, this.family, {
      ifname: dev,
      privateKey: this.privateKey,
      listenPort: port,
      replacePeers: !this.replaced.has(dev),
      peers: [...want.map(kernelPeer), ...gone.map((k) => ({ publicKey: k, remove: true }))],
    });
    this.replaced.add(dev);
    this.known.set(dev, wanted);
    return Promise.resolve(gone.length);
  }

  changePeers(dev: string, set: PeerConfig[], remove: Uint8Array[]): Promise<void> {
    if (!set.length && !remove.length) return Promise.resolve();
    setDevice(this.s, this.family, {
      ifname: dev,
      peers: [...set.map(kernelPeer), ...remove.map((k) => ({ publicKey: k, remove: true }))],
    });
    const known = this.known.get(dev) ?? new Set<string>();
    for (const p of set) known.add(b64(p.publicKey));
    for (const k of remove) known.delete(b64(k));
    this.known.set(dev, known);
    return Promise.resolve();
  }
}

function kernelPeer(p: PeerConfig): WgPeerSet {
  return {
    publicKey: p.publicKey,
    presharedKey: p.presharedKey,
    endpoint: p.endpoint,
    persistentKeepalive: p.persistentKeepalive,
    allowedIPs: p.allowedIPs,
  };
}

/** The kernel driver when the kernel has the wireguard family, else why not (for the log). */
function kernelDriver(privateKey: Uint8Array): { driver: WgDriver | null; reason: string } {
  if (Deno.env.get("TWILL_WIREGUARD") === "userspace") {
    return { driver: null, reason: "TWILL_WIREGUARD=userspace" };
  }
  let s: NetlinkSocket;
  try {
    s = NetlinkSocket.open(NETLINK_GENERIC);
  } catch (e) {
    return { driver: null, reason: `no generic netlink socket: ${(e as Error).message}` };
  }
  const family = resolveFamily(s, WG_GENL_NAME);
  if (family === null) {
    s.close();
    return { driver: null, reason: "the kernel has no wireguard generic netlink family" };
  }
  return { driver: new KernelDriver(s, family, privateKey), reason: "kernel wireguard family" };
}

export const WIREGUARD: BackendType<WireguardConfig> = {
  type: TYPE,
  parseConfig: parseWireguardConfig,
  async init(cfg: WireguardConfig, ctx: BackendContext): Promise<Backend> {
    await Deno.mkdir(ctx.dataDir, { recursive: true });
    const keys = await loadOrCreateKeyPair(`${ctx.dataDir}/${WG_KEY_FILE}`);
    if (keys.created) ctx.log("info", "wireguard_key_created", { file: WG_KEY_FILE });
    const k = kernelDriver(keys.privateKey);
    const driver = k.driver ?? new UserspaceDriver(ctx.dataDir, keys.privateKey, ctx.log);
    ctx.log("info", "wireguard_mode", { mode: driver.mode, reason: k.reason });
    const be = new WireguardBackend(cfg, ctx, keys.publicKey, driver);
    // Devices up front, so a missing wireguard-go or a refusing device stops the start.
    for (const side of be.sides) await driver.ensureDevice(side.dev);
    return be;
  },
  expected: wireguardExpected,
};

/** Pure: flannel-wg with <own subnet>.0/32, one route for the whole Network through it, no
 *  per-peer neighbour or FDB entry, and a ping of each peer's <subnet>.0 through the tunnel. */
export function wireguardExpected(cfg: WireguardConfig, ctx: ExpectContext): ExpectedState {
  const { iface } = ctx;
  const mtu = (cfg.mtu || iface.mtu) - WG_OVERHEAD;
  const why = cfg.mtu ? `Backend.MTU ${cfg.mtu} − ${WG_OVERHEAD}` : `${iface.name} MTU ` +
    `${iface.mtu} − ${WG_OVERHEAD}`;
  const probes = ctx.peers.flatMap((p) => {
    const pub = p.attrs.publicIP;
    const data = wgData(p.attrs);
    if (!p.subnet || !data || !pub || pub === ctx.publicIP) return [];
    const path = `UDP ${data.port || cfg.listenPort} to ${pub}`;
    return [{ peer: p, target: formatIP(p.subnet.ip), path }];
  });
  const routes = ctx.network
    ? [{ dst: formatCIDR(ctx.network), via: "", dev: WG_DEVICE, onlink: false }]
    : [];
  return {
    device: ctx.own.subnet
      ? { name: WG_DEVICE, address: `${formatIP(ctx.own.subnet.ip)}/32`, mtu, mtuWhy: why }
      : null,
    mtu,
    mtuWhy: why,
    dataPlane: { routes, neighs: [], fdbs: [] },
    probes,
  };
}

interface AddrJson {
  mtu?: number;
  flags?: string[];
  addr_info?: { local: string; prefixlen: number }[];
}

export class WireguardBackend implements Backend {
  readonly type = TYPE;
  readonly mtu: number;
  readonly sides: WgSide[];
  private own: Lease | null = null;

  constructor(
    private cfg: WireguardConfig,
    private ctx: BackendContext,
    private publicKey: Uint8Array,
    private driver: WgDriver,
  ) {
    this.mtu = (cfg.mtu || ctx.iface.mtu) - WG_OVERHEAD;
    if (this.mtu < 1280 && ctx.network6) {
      throw new Error(`wireguard MTU ${this.mtu} is below IPv6's 1280`);
    }
    if (this.mtu < 576) throw new Error(`wireguard MTU ${this.mtu} is too small`);
    this.sides = wgSides(cfg, ctx.network, ctx.network6);
  }

  logFields(): Record<string, unknown> {
    return {
      mode: this.driver.mode,
      wg_mode: this.cfg.mode,
      devices: this.sides.map((s) => s.dev).join(","),
      public_key: b64(this.publicKey),
      listen_port: this.cfg.listenPort,
    };
  }

  leaseAttrs(): LeaseAttrs {
    const v6 = this.ctx.network6 !== null;
    return {
      publicIP: this.ctx.publicIP,
      publicIPv6: v6 ? this.ctx.iface.address6 : null,
      backendType: TYPE,
      backendData: encodeWgData(this.publicKey, this.cfg.listenPort),
      ...(v6 ? { backendV6Data: encodeWgData(this.publicKey, this.cfg.listenPortV6) } : {}),
    };
  }

  setOwnLease(lease: Lease): void {
    this.own = lease;
  }

  batchesSpawn(): boolean {
    return false;
  }

  private ownPublic() {
    return { v4: this.ctx.publicIP, v6: this.ctx.network6 ? this.ctx.iface.address6 : null };
  }

  /** Pure view: the peers wanted on one device for these leases. */
  desiredPeers(side: WgSide, peers: Lease[]): PeerConfig[] {
    const opts = { psk: this.cfg.psk, keepalive: this.cfg.keepalive };
    return peers.map((l) => wgPeerOf(l, side, this.ownPublic(), opts))
      .filter((p): p is PeerConfig => p !== null);
  }

  async applyEvents(events: PeerEvent[]): Promise<string> {
    const { add, replaced, remove } = splitPeerEvents(events);
    const errors: string[] = [];
    for (const side of this.sides) {
      const set = this.desiredPeers(side, add);
      const setKeys = new Set(set.map((p) => b64(p.publicKey)));
      const gone = this.desiredPeers(side, [...remove, ...replaced])
        .filter((p) => !setKeys.has(b64(p.publicKey))).map((p) => p.publicKey);
      try {
        await this.driver.changePeers(side.dev, set, gone);
      } catch (e) {
        errors.push(`${side.dev}: ${(e as Error).message}`);
      }
    }
    return errors.join("; ");
  }

  /** ip lines that bring the device to MTU, up, its address and its routes; [] when in place. */
  async deviceLines(side: WgSide): Promise<string[]> {
    const [link] = (await ipJson<AddrJson[]>(["addr", "show", "dev", side.dev])) ?? [];
    if (!link) return [];
    const lines: string[] = [];
    if (link.mtu !== this.mtu || !(link.flags ?? []).includes("UP")) {
      lines.push(`link set dev ${side.dev} mtu ${this.mtu} up`);
    }
    const have = new Set((link.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
    for (const sn of [this.own?.subnet, this.own?.ipv6Subnet]) {
      if (!sn || !side.networks.some((n) => n.ip.family === sn.ip.family)) continue;
      const a = `${formatIP(sn.ip)}/${sn.ip.family === 4 ? 32 : 128}`;
      if (!have.has(a)) lines.push(`addr replace ${a} dev ${side.dev}`);
    }
    for (const n of side.networks) {
      const fam = n.ip.family === 4 ? "-4" : "-6";
      const rs = (await ipJson<{ dst: string }[]>([fam, "route", "show", "dev", side.dev])) ?? [];
      if (!rs.some((r) => r.dst === formatCIDR(n))) {
        lines.push(`route replace ${formatCIDR(n)} dev ${side.dev}`);
      }
    }
    return lines;
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
    const errors: string[] = [];
    for (const side of this.sides) {
      if (await this.driver.ensureDevice(side.dev)) {
        res.deviceChanged = res.deviceRecreated = true;
        res.deviceReason = `${side.dev} was missing`;
      }
      const lines = await this.deviceLines(side);
      if (lines.length) {
        const r = await ipBatch(lines);
        res.deviceChanged = true;
        res.deviceReason ??= `${side.dev}: ${lines.join(", ")}`;
        if (!r.ok) throw new Error(`could not set up ${side.dev}: ${r.errors}`);
      }
      const want = this.desiredPeers(side, peers);
      try {
        res.added += await this.driver.syncPeers(side.dev, side.port, want);
      } catch (e) {
        errors.push(`${side.dev}: ${(e as Error).message}`);
      }
      if (side === this.sides[0]) res.peersProgrammed = want.length;
    }
    res.errors = errors.join("; ");
    return res;
  }
}
