// The ipsec backend (Flannel's ipsec semantics): strongSwan's charon, driven over VICI, keys the
// traffic between every pair of pod subnets. Per peer lease: its PSK (owner = the peer's public
// IP), one IKEv2 connection `<ourIP>-<ourSubnet>-<peerSubnet>-<peerIP>` (IKE proposal
// aes256-sha256-modp4096) and one tunnel-mode CHILD_SA `<ourSubnet>-<peerSubnet>`; all unloaded
// when the lease goes. The lease carries no BackendData, as Flannel's. charon is started detached
// (lib/net/vici/charon.ts) so SAs and traffic survive an agent restart; a restarted agent reuses
// it. Where the kernel has no ESP, charon runs kernel-libipsec (userspace ESP over a TUN device):
// UDP encapsulation is then always on, and the pod MTU is capped at what that device carries.
import { type CIDR, contains, formatCIDR, formatIP, parseIP } from "../net/cidr.ts";
import { runCommand } from "../net/ip_batch.ts";
import {
  ensureCharon,
  type IpsecMode,
  ipsecMtu,
  kernelHasEsp,
  LIBIPSEC_TUN_MTU,
  type RunningCharon,
  stopCharonProcess,
} from "../net/vici/charon.ts";
import { type ViciClient, ViciCommandError } from "../net/vici/client.ts";
import type { ViciSection } from "../net/vici/message.ts";
import { asBool, type BackendConfig, type BackendField, NetConfigError } from "../subnet/config.ts";
import type { Lease, LeaseAttrs } from "../subnet/lease.ts";
import { type PeerEvent, splitPeerEvents } from "../subnet/watcher.ts";
import type { Backend, BackendContext, BackendType, ReconcileResult } from "./backend.ts";

const TYPE = "ipsec";
/** Flannel's minimum PSK length, and its message for a shorter one. */
export const MIN_PSK_LENGTH = 96;
export const SHORT_PSK_ERROR = "config error, password is too short";
/** A PSK travels in one VICI value; far below its 64 KiB limit. */
export const MAX_PSK_LENGTH = 4096;
export const DEFAULT_ESP_PROPOSAL = "aes128gcm16-sha256-prfsha256-ecp256";
export const IKE_PROPOSAL = "aes256-sha256-modp4096";

/** net-conf.json's Backend fields for ipsec. */
export interface IpsecConfig extends BackendConfig {
  type: typeof TYPE;
  psk: string;
  udpEncap: boolean;
  espProposal: string;
}

function asString(v: unknown, name: string, dflt: string): string {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "string") throw new NetConfigError(`net-conf: ${name} must be a string`);
  return v;
}

export function parseIpsecConfig(field: BackendField): IpsecConfig {
  const psk = asString(field("PSK"), "Backend.PSK", "");
  if (psk.length < MIN_PSK_LENGTH) throw new NetConfigError(SHORT_PSK_ERROR);
  if (psk.length > MAX_PSK_LENGTH) {
    throw new NetConfigError(`net-conf: Backend.PSK is longer than ${MAX_PSK_LENGTH} characters`);
  }
  const espProposal = asString(field("ESPProposal"), "Backend.ESPProposal", DEFAULT_ESP_PROPOSAL);
  // One strongSwan proposal: algorithm names joined by '-' (charon judges the names themselves).
  if (!/^[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*$/.test(espProposal) || espProposal.length > 200) {
    throw new NetConfigError(
      `net-conf: Backend.ESPProposal ${JSON.stringify(espProposal.slice(0, 60))} is not a ` +
        "strongSwan proposal such as " + DEFAULT_ESP_PROPOSAL,
    );
  }
  return {
    type: TYPE,
    psk,
    udpEncap: asBool(field("UDPEncap"), "Backend.UDPEncap", false),
    espProposal,
  };
}

/** SA lifetimes. Flannel rekeys CHILD_SAs hourly; IKE_SAs keep charon's 4 h. */
export interface IpsecTimers {
  ikeRekeySeconds: number;
  childRekeySeconds: number;
}
export const DEFAULT_TIMERS: IpsecTimers = { ikeRekeySeconds: 4 * 3600, childRekeySeconds: 3600 };

/** One side of a tunnel: where IKE binds, the identity peers know it by, its pod subnet. */
export interface IpsecEndpoint {
  /** The underlay address charon sends from. */
  address: string;
  /** The lease's PublicIP: the IKE identity and the PSK owner. */
  publicIP: string;
  subnet: CIDR;
}

/** What is loaded into charon for one peer. */
export interface PeerSections {
  /** The IKE connection's name (Flannel's). */
  name: string;
  child: string;
  peerIP: string;
  conn: ViciSection;
  shared: { id: string; data: string; owners: string[] };
  /** Whether this side starts the SA (one side per pair does, so a pair has one IKE_SA). */
  initiator: boolean;
}

export interface PeerParams {
  cfg: IpsecConfig;
  /** UDP encapsulation in effect (configured, or forced by libipsec). */
  encap: boolean;
  timers: IpsecTimers;
}

export function ipsecConnName(local: IpsecEndpoint, remote: IpsecEndpoint): string {
  return `${local.publicIP}-${formatCIDR(local.subnet)}-${formatCIDR(remote.subnet)}-` +
    remote.publicIP;
}

export function ipsecChildName(local: CIDR, remote: CIDR): string {
  return `${formatCIDR(local)}-${formatCIDR(remote)}`;
}

/** The shared secret's id in charon: one per peer public IP. */
export function ipsecSharedId(peerIP: string): string {
  return `psk-${peerIP}`;
}

/** The lower public IP initiates; the other answers (and steps in only when no SA comes up). */
export function initiatesTo(ownIP: string, peerIP: string): boolean {
  return parseIP(ownIP).value < parseIP(peerIP).value;
}

/** Pure: the connection and secret charon gets for one peer. */
export function ipsecPeerSections(
  own: IpsecEndpoint,
  peer: IpsecEndpoint,
  p: PeerParams,
): PeerSections {
  const name = ipsecConnName(own, peer);
  const child = ipsecChildName(own.subnet, peer.subnet);
  const secs = (n: number) => `${n}s`;
  return {
    name,
    child,
    peerIP: peer.publicIP,
    initiator: initiatesTo(own.publicIP, peer.publicIP),
    shared: { id: ipsecSharedId(peer.publicIP), data: p.cfg.psk, owners: [peer.publicIP] },
    conn: {
      local_addrs: [own.address],
      remote_addrs: [peer.publicIP],
      version: "2",
      proposals: [IKE_PROPOSAL],
      encap: p.encap ? "yes" : "no",
      // keep trying for as long as the peer's lease exists
      keyingtries: "0",
      rekey_time: secs(p.timers.ikeRekeySeconds),
      dpd_delay: "30s",
      // A node's underlay address is its identity; without this every pod address added on the
      // node would be announced to every peer (MOBIKE), for nothing.
      mobike: "no",
      local: { auth: "psk", id: own.publicIP },
      remote: { auth: "psk", id: peer.publicIP },
      children: {
        [child]: {
          local_ts: [formatCIDR(own.subnet)],
          remote_ts: [formatCIDR(peer.subnet)],
          esp_proposals: [p.cfg.espProposal],
          mode: "tunnel",
          // IKEv2 rekeying installs the new CHILD_SA before deleting the old one.
          rekey_time: secs(p.timers.childRekeySeconds),
          dpd_action: "restart",
          // charon installs the policies (Flannel's fixed reqid 11 served its own XFRM policies).
        },
      },
    },
  };
}

/** The endpoint a lease describes, or null for a lease this backend cannot key. */
export function leaseEndpoint(l: Lease): IpsecEndpoint | null {
  if (!l.subnet || !l.attrs.publicIP || l.attrs.backendType !== TYPE) return null;
  if (l.subnet.ip.family !== 4) return null;
  return { address: l.attrs.publicIP, publicIP: l.attrs.publicIP, subnet: l.subnet };
}

/** Pure: every peer's sections, by connection name. Leases of other backends are skipped. */
export function ipsecDesired(
  own: IpsecEndpoint,
  peers: Lease[],
  p: PeerParams,
): Map<string, PeerSections> {
  const out = new Map<string, PeerSections>();
  for (const l of peers) {
    const e = leaseEndpoint(l);
    if (!e || e.publicIP === own.publicIP) continue;
    const s = ipsecPeerSections(own, e, p);
    out.set(s.name, s);
  }
  return out;
}

export type SaState = "up" | "pending";
const UP_CHILD = new Set(["INSTALLED", "REKEYING", "REKEYED"]);

/** Pure: per connection name, whether list-sas shows its tunnel up or on its way. */
export function saStates(events: ViciSection[]): Map<string, SaState> {
  const out = new Map<string, SaState>();
  for (const ev of events) {
    for (const [name, v] of Object.entries(ev)) {
      if (typeof v !== "object" || Array.isArray(v)) continue;
      const children = typeof v["child-sas"] === "object" && !Array.isArray(v["child-sas"])
        ? Object.values(v["child-sas"] as ViciSection)
        : [];
      const up = v.state === "ESTABLISHED" &&
        children.some((c) =>
          typeof c === "object" && !Array.isArray(c) && UP_CHILD.has(
            String(c.state),
          )
        );
      const pending = v.state === "CONNECTING" || v.state === "ESTABLISHED";
      if (up) out.set(name, "up");
      else if (pending && !out.has(name)) out.set(name, "pending");
    }
  }
  return out;
}

/** Test and embedding knobs; the agent uses the defaults. */
export interface IpsecOptions {
  charonBinary?: string;
  /** Run charon and the address change in this named network namespace. */
  netns?: string;
  timers?: IpsecTimers;
  /** How long the answering side waits for its peer to start an SA before starting one. */
  takeoverMs?: number;
}

/** The ipsec backend type with these options (the registry holds the default one). */
export function ipsecBackendType(opts: IpsecOptions = {}): BackendType<IpsecConfig> {
  return {
    type: TYPE,
    parseConfig: parseIpsecConfig,
    init: (cfg, ctx) => initIpsec(cfg, ctx, opts),
  };
}

export const IPSEC: BackendType<IpsecConfig> = ipsecBackendType();

async function initIpsec(
  cfg: IpsecConfig,
  ctx: BackendContext,
  opts: IpsecOptions,
): Promise<Backend> {
  if (ctx.network6) {
    throw new Error("the ipsec backend carries IPv4 only (as Flannel's): disable EnableIPv6");
  }
  const esp = await kernelHasEsp();
  const mode: IpsecMode = esp.esp ? "kernel" : "libipsec";
  const netns = opts.netns ? `/run/netns/${opts.netns}` : undefined;
  const charon = await ensureCharon({
    dataDir: ctx.dataDir,
    mode,
    binary: opts.charonBinary,
    netns,
  });
  const b = new IpsecBackend(cfg, ctx, mode, charon, opts);
  try {
    await b.preflight();
  } catch (e) {
    charon.client.close();
    if (!charon.reused && charon.pid) await stopCharonProcess(charon.pid);
    const why = e instanceof ViciCommandError ? `charon refused ${e.command}: ${e.errmsg}` : e;
    throw new Error(`ipsec: ${why instanceof Error ? why.message : why} (see ${charon.paths.log})`);
  }
  await b.ensureLeakGuard();
  b.logStart(esp.detail);
  return b;
}

/** ip(8), inside the backend's namespace when it has one. */
async function ip(netns: string | undefined, args: string[]): Promise<string> {
  const r = await runCommand("ip", netns ? ["-n", netns, ...args] : args);
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class IpsecBackend implements Backend {
  readonly type = TYPE;
  readonly mtu: number;
  /** UDP encapsulation in effect. */
  readonly encap: boolean;
  private own: Lease | null = null;
  private client: ViciClient;
  /** What we loaded per connection name (JSON), so unchanged peers are not reloaded. */
  private loaded = new Map<string, string>();
  /** When an answering side first saw no SA for a connection. */
  private missingSince = new Map<string, number>();
  private timers: IpsecTimers;

  constructor(
    private cfg: IpsecConfig,
    private ctx: BackendContext,
    readonly mode: IpsecMode,
    private charon: RunningCharon,
    private opts: IpsecOptions = {},
  ) {
    this.encap = cfg.udpEncap || mode === "libipsec";
    this.mtu = ipsecMtu(mode, ctx.iface.mtu, cfg.udpEncap);
    this.client = charon.client;
    this.timers = opts.timers ?? DEFAULT_TIMERS;
  }

  /** Start-up checks against charon: it answers, and it accepts our proposals and encap. */
  async preflight(): Promise<void> {
    await this.client.version();
    const probe = "twill-preflight";
    const net = this.ctx.network;
    const me = { address: this.ctx.iface.address, publicIP: this.ctx.publicIP, subnet: net };
    const s = ipsecPeerSections(me, { ...me, publicIP: "192.0.2.1" }, this.params());
    await this.client.loadConn(probe, s.conn);
    await this.client.unloadConn(probe);
  }

  logStart(espDetail: string): void {
    const log = this.ctx.log;
    log("info", "ipsec_mode", {
      mode: this.mode,
      reason: this.mode === "kernel"
        ? "the kernel accepts ESP states"
        : `no ESP in the kernel (${espDetail}): ESP in charon over a TUN device`,
      charon: this.charon.reused ? "reused" : "started",
      pid: this.charon.pid,
    });
    if (this.encap) {
      log("info", "ipsec_udp_encap", {
        configured: this.cfg.udpEncap,
        reason: this.cfg.udpEncap
          ? "UDPEncap is set"
          : "forced: charon 5.9.8's libipsec sends ESP only inside UDP 4500",
      });
    }
    const flannel = this.ctx.iface.mtu - 77 - (this.encap ? 8 : 0);
    if (this.mtu < flannel) {
      log("info", "ipsec_mtu_capped", {
        mtu: this.mtu,
        flannel_mtu: flannel,
        reason: `libipsec's TUN device carries at most ${LIBIPSEC_TUN_MTU}-byte packets`,
      });
    }
  }

  private params(): PeerParams {
    return { cfg: this.cfg, encap: this.encap, timers: this.timers };
  }

  logFields(): Record<string, unknown> {
    return { mode: this.mode, udp_encap: this.encap, esp_proposal: this.cfg.espProposal };
  }

  leaseAttrs(): LeaseAttrs {
    return { publicIP: this.ctx.publicIP, publicIPv6: null, backendType: TYPE };
  }

  setOwnLease(lease: Lease): void {
    this.own = lease;
  }

  batchesSpawn(): boolean {
    return false;
  }

  private endpoint(): IpsecEndpoint | null {
    const sn = this.own?.subnet;
    return sn ? { address: this.ctx.iface.address, publicIP: this.ctx.publicIP, subnet: sn } : null;
  }

  async applyEvents(events: PeerEvent[]): Promise<string> {
    const own = this.endpoint();
    if (!own) return "own lease not known yet";
    const errors: string[] = [];
    const fail = (name: string) => (e: unknown) => errors.push(`${name}: ${errText(e)}`);
    const { add, replaced, remove } = splitPeerEvents(events);
    const want = ipsecDesired(own, add, this.params());
    for (const s of ipsecDesired(own, [...replaced, ...remove], this.params()).values()) {
      if (!want.has(s.name)) await this.removePeer(s.name, s.peerIP).catch(fail(s.name));
    }
    for (const s of want.values()) await this.loadPeer(s).catch(fail(s.name));
    await this.startMissingSas(want, fail).catch(fail("list-sas"));
    return errors.join("\n");
  }

  /** Loads the peer's PSK and connection unless exactly these are loaded already. */
  private async loadPeer(s: PeerSections): Promise<boolean> {
    const key = JSON.stringify([s.conn, s.shared]);
    if (this.loaded.get(s.name) === key) return false;
    await this.client.loadShared(s.shared);
    await this.client.loadConn(s.name, s.conn);
    this.loaded.set(s.name, key);
    this.ctx.log("info", "ipsec_peer_loaded", { conn: s.name, initiator: s.initiator });
    return true;
  }

  /** Terminates the peer's SAs, unloads its connection and, unless still used, its PSK. */
  private async removePeer(name: string, peerIP: string | null): Promise<void> {
    await this.client.terminate({ ike: name, force: true, timeoutMs: 5000 }).catch((e) => {
      if (!(e instanceof ViciCommandError)) throw e; // no SA to terminate is fine
    });
    await this.client.unloadConn(name).catch((e) => {
      if (!(e instanceof ViciCommandError)) throw e; // not loaded is fine
    });
    this.loaded.delete(name);
    this.missingSince.delete(name);
    if (peerIP && !this.sharedInUse(peerIP)) {
      await this.client.unloadShared(ipsecSharedId(peerIP)).catch(() => {});
    }
    this.ctx.log("info", "ipsec_peer_unloaded", { conn: name });
  }

  private sharedInUse(peerIP: string): boolean {
    for (const name of this.loaded.keys()) if (name.endsWith(`-${peerIP}`)) return true;
    return false;
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
    const own = this.endpoint();
    if (!own) return res;
    await this.ensureCharonAnswers(res);
    await this.ensureLeakGuard(res);
    if (this.mode === "libipsec") await this.ensureOwnAddress(own, res);
    const want = ipsecDesired(own, peers, this.params());
    const errors: string[] = [];
    const fail = (name: string) => (e: unknown) => errors.push(`${name}: ${errText(e)}`);
    for (const name of await this.client.getConns()) {
      if (want.has(name)) continue;
      await this.removePeer(name, null).then(() => res.removed++, fail(name));
    }
    const wantKeys = new Set([...want.values()].map((s) => s.shared.id));
    for (const id of await this.client.getShared()) {
      if (!wantKeys.has(id)) await this.client.unloadShared(id).catch(fail(id));
    }
    for (const s of want.values()) {
      await this.loadPeer(s).then((changed) => changed && res.added++, fail(s.name));
    }
    res.peersProgrammed = await this.startMissingSas(want, fail);
    res.errors = errors.join("\n");
    return res;
  }

  /** Starts the SAs that are neither up nor on their way; returns how many are up. */
  private async startMissingSas(
    want: Map<string, PeerSections>,
    fail: (name: string) => (e: unknown) => void,
  ): Promise<number> {
    const states = saStates(await this.client.listSas());
    const now = Date.now();
    let up = 0;
    for (const s of want.values()) {
      const st = states.get(s.name);
      if (st) {
        this.missingSince.delete(s.name);
        if (st === "up") up++;
        continue;
      }
      const since = this.missingSince.get(s.name) ?? now;
      this.missingSince.set(s.name, since);
      // The answering side starts the SA itself once its peer has not for a while (say the
      // peer's charon restarted and lost the SA while ours still had it).
      if (!s.initiator && now - since < (this.opts.takeoverMs ?? 20_000)) continue;
      await this.client.initiate({ ike: s.name, child: s.child, timeoutMs: -1 }).catch(
        fail(s.name),
      );
    }
    return up;
  }

  /** Reconnects to charon, restarting it when it died; what it had loaded is loaded again. */
  private async ensureCharonAnswers(res: ReconcileResult): Promise<void> {
    try {
      await this.client.version();
      return;
    } catch (e) {
      this.ctx.log("warn", "ipsec_charon_unreachable", { error: errText(e) });
    }
    this.client.close();
    const netns = this.opts.netns ? `/run/netns/${this.opts.netns}` : undefined;
    this.charon = await ensureCharon({
      dataDir: this.ctx.dataDir,
      mode: this.mode,
      binary: this.opts.charonBinary,
      netns,
    });
    this.client = this.charon.client;
    this.loaded.clear();
    res.deviceChanged = true;
    res.deviceReason = this.charon.reused ? "reconnected to charon" : "charon restarted";
    this.ctx.log("info", "ipsec_charon_back", {
      charon: this.charon.reused ? "reused" : "started",
    });
  }

  /**
   * Until a peer's CHILD_SA is installed, nothing routes its subnet through the tunnel, so a pod's
   * first packets to it would follow the default route and cross the underlay in clear. A
   * blackhole route for the whole Network in the main table drops them instead: charon installs
   * each SA's route in its own table (220), which the kernel consults before main, and the node's
   * own subnet on cni0 is more specific than the blackhole.
   */
  async ensureLeakGuard(res?: ReconcileResult): Promise<void> {
    const net = formatCIDR(this.ctx.network);
    const have = await ip(this.opts.netns, ["-4", "route", "show", "type", "blackhole", net]);
    if (have.trim() !== "") return;
    await ip(this.opts.netns, ["route", "replace", "blackhole", net]);
    if (!res) return;
    res.deviceChanged = true;
    res.deviceReason = `blackhole ${net} (no pod packet leaves in clear before its SA is up)`;
  }

  /**
   * libipsec routes a CHILD_SA's traffic through its TUN device only from a local address inside
   * the local traffic selector; a node has one on cni0 once it runs a pod, so until then (and for
   * traffic from the node itself) it gets <subnet>.0/32 on lo, as flannel.1 gets it in vxlan.
   */
  private async ensureOwnAddress(own: IpsecEndpoint, res: ReconcileResult): Promise<void> {
    const want = formatIP(own.subnet.ip);
    const have = JSON.parse(
      await ip(this.opts.netns, ["-j", "-4", "addr", "show", "dev", "lo"]) ||
        "[]",
    ) as { addr_info?: { local: string; prefixlen: number }[] }[];
    const addrs = have.flatMap((l) => l.addr_info ?? []);
    for (const a of addrs) {
      // an earlier lease's address (our subnet changed) goes
      if (a.local !== want && a.prefixlen === 32 && contains(this.ctx.network, parseIP(a.local))) {
        await ip(this.opts.netns, ["addr", "del", `${a.local}/32`, "dev", "lo"]);
      }
    }
    if (addrs.some((a) => a.local === want && a.prefixlen === 32)) return;
    await ip(this.opts.netns, ["addr", "replace", `${want}/32`, "dev", "lo"]);
    res.deviceChanged = true;
    res.deviceReason = `${want}/32 on lo (libipsec routes from an address in the subnet)`;
  }
}
