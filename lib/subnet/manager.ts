// The subnet lease manager, Flannel's LocalManager semantics over a SubnetRegistry. It never
// touches the kernel. Randomness and the clock are injected so acquisition order is testable.
import { type CIDR, formatCIDR, formatIP } from "../net/cidr.ts";
import {
  type BackendConfigParser,
  candidateSubnets,
  isIPv6SubnetCompatible,
  isSubnetCompatible,
  type NetConfig,
  NetConfigError,
  parseNetConfig,
} from "./config.ts";
import {
  configKey,
  decodeLeaseAttrs,
  describeLease,
  encodeLeaseAttrs,
  type Lease,
  type LeaseAttrs,
  parseSubnetKey,
  sameCIDR,
  subnetKey,
  subnetsPrefix,
} from "./lease.ts";
import type { StoredKv, SubnetRegistry } from "./registry.ts";

export const RACE_RETRIES = 10;
export const CANDIDATES = 100;

export type LogFn = (level: "info" | "warn" | "error", event: string, fields: object) => void;

export interface LeaseManagerOptions {
  prefix: string;
  ttlSeconds: number;
  /** Milliseconds since the epoch. */
  now: () => number;
  /** An integer in [0, n). */
  randomInt: (n: number) => number;
  log?: LogFn;
}

/** Our lease is gone or was taken over: the fenced renewal found another mod revision. */
export class LeaseLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LeaseLostError";
  }
}

/** <prefix>/config is absent: the agent waits for it to be seeded (a bad config is fatal). */
export class NoNetworkConfigError extends NetConfigError {
  constructor(message: string) {
    super(message);
    this.name = "NoNetworkConfigError";
  }
}

/** No lease can be had (no free subnet, or every attempt lost a race): retrying cannot help. */
export class SubnetUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SubnetUnavailableError";
  }
}

export class LeaseManager {
  private log: LogFn;
  constructor(private reg: SubnetRegistry, private o: LeaseManagerOptions) {
    this.log = o.log ?? (() => {});
  }

  /** Reads and checks <prefix>/config; `backends` parses the Backend fields of each type. */
  async getNetworkConfig(backends: BackendConfigParser): Promise<NetConfig> {
    const kv = await this.reg.get(configKey(this.o.prefix));
    if (!kv) {
      throw new NoNetworkConfigError(
        `no network config at ${configKey(this.o.prefix)}: seed it with 'twill agent --init ` +
          `--net-config-path F' or 'twill ctl config set F'`,
      );
    }
    return parseNetConfig(kv.value, backends);
  }

  /** Every parseable lease under <prefix>/subnets/ plus the listing's revision. */
  async listLeases(): Promise<{ leases: Lease[]; revision: bigint }> {
    const { kvs, revision } = await this.reg.list(subnetsPrefix(this.o.prefix));
    const leases: Lease[] = [];
    for (const kv of kvs) {
      const l = leaseFromKv(kv);
      if (l) leases.push(l);
      else this.log("warn", "bad_subnet_key", { key: kv.key });
    }
    return { leases, revision };
  }

  /**
   * Flannel's order: the lease already holding our PublicIP if still compatible (deleted if not);
   * else the previous subnet (from subnet.env) when free; else a random one of the first 100 free
   * subnets from SubnetMin. Created with create-if-absent; a lost race is retried.
   */
  async acquire(
    cfg: NetConfig,
    attrs: LeaseAttrs,
    previous: { subnet: CIDR | null; ipv6Subnet: CIDR | null } | null,
  ): Promise<Lease> {
    for (let i = 0; i < RACE_RETRIES; i++) {
      const l = await this.tryAcquire(cfg, attrs, previous);
      if (l) return l;
    }
    throw new SubnetUnavailableError("Max retries reached trying to acquire a subnet");
  }

  private async tryAcquire(
    cfg: NetConfig,
    attrs: LeaseAttrs,
    previous: { subnet: CIDR | null; ipv6Subnet: CIDR | null } | null,
  ): Promise<Lease | null> {
    const { leases } = await this.listLeases();
    const value = encodeLeaseAttrs(attrs);

    const mine = leases.find((l) => l.attrs.publicIP === attrs.publicIP);
    if (mine) {
      if (isSubnetCompatible(cfg, mine.subnet) && isIPv6SubnetCompatible(cfg, mine.ipv6Subnet)) {
        return await this.reuse(mine, attrs, value);
      }
      this.log("info", "lease_incompatible_deleted", {
        subnet: describeLease(mine),
        public_ip: attrs.publicIP,
      });
      await this.reg.delete(subnetKey(this.o.prefix, mine.subnet, mine.ipv6Subnet));
    }
    let [sn, sn6] = this.previousIfFree(cfg, previous, leases);
    if (!sn && !sn6) [sn, sn6] = this.allocate(cfg, leases);
    return await this.create(sn, sn6, attrs, value, previous);
  }

  /** The lease already holding our PublicIP, refreshed (fenced on its mod revision). */
  private async reuse(mine: Lease, attrs: LeaseAttrs, value: string): Promise<Lease | null> {
    const key = subnetKey(this.o.prefix, mine.subnet, mine.ipv6Subnet);
    if (mine.storeLease === 0n) {
      // A reservation: keep it TTL-less, refresh the attributes.
      const r = await this.reg.putIfModRevision(key, value, 0n, mine.modRevision);
      if (!r.ok) return null;
      this.log("info", "lease_acquired", {
        subnet: describeLease(mine),
        how: "reservation",
        public_ip: attrs.publicIP,
      });
      return { ...mine, attrs, modRevision: r.modRevision, expiresAt: null };
    }
    const id = await this.reg.grant(this.o.ttlSeconds);
    const r = await this.reg.putIfModRevision(key, value, id, mine.modRevision);
    if (!r.ok) {
      await this.reg.revoke(id).catch(() => {});
      return null;
    }
    await this.reg.revoke(mine.storeLease).catch(() => {});
    this.log("info", "lease_acquired", {
      subnet: describeLease(mine),
      how: "reused",
      public_ip: attrs.publicIP,
    });
    return {
      ...mine,
      attrs,
      modRevision: r.modRevision,
      storeLease: id,
      expiresAt: this.o.now() + this.o.ttlSeconds * 1000,
    };
  }

  /** The previous subnets (from subnet.env) when no lease holds them and they still fit. */
  private previousIfFree(
    cfg: NetConfig,
    previous: { subnet: CIDR | null; ipv6Subnet: CIDR | null } | null,
    leases: Lease[],
  ): [CIDR | null, CIDR | null] {
    if (!previous || (!previous.subnet && !previous.ipv6Subnet)) return [null, null];
    const taken = leases.some((l) =>
      previous.subnet && l.subnet && sameCIDR(l.subnet, previous.subnet)
    );
    if (taken) return [null, null];
    if (
      isSubnetCompatible(cfg, previous.subnet) &&
      isIPv6SubnetCompatible(cfg, previous.ipv6Subnet)
    ) {
      return [previous.subnet, previous.ipv6Subnet];
    }
    this.log("warn", "previous_subnet_incompatible", {
      subnet: previous.subnet ? formatCIDR(previous.subnet) : "-",
    });
    return [null, null];
  }

  /** Creates the lease key if absent; null when another node took it first. */
  private async create(
    sn: CIDR | null,
    sn6: CIDR | null,
    attrs: LeaseAttrs,
    value: string,
    previous: { subnet: CIDR | null; ipv6Subnet: CIDR | null } | null,
  ): Promise<Lease | null> {
    const key = subnetKey(this.o.prefix, sn, sn6);
    const id = await this.reg.grant(this.o.ttlSeconds);
    const r = await this.reg.createIfAbsent(key, value, id);
    if (!r.ok) {
      await this.reg.revoke(id).catch(() => {});
      this.log("info", "lease_race_lost", { key });
      return null;
    }
    const lease: Lease = {
      subnet: sn,
      ipv6Subnet: sn6,
      attrs,
      modRevision: r.modRevision,
      storeLease: id,
      expiresAt: this.o.now() + this.o.ttlSeconds * 1000,
    };
    this.log("info", "lease_acquired", {
      subnet: describeLease(lease),
      how: previous && sameCIDR(previous.subnet, sn) ? "previous" : "allocated",
      public_ip: attrs.publicIP,
    });
    return lease;
  }

  private allocate(cfg: NetConfig, leases: Lease[]): [CIDR | null, CIDR | null] {
    let picked: CIDR | null = null;
    let picked6: CIDR | null = null;
    if (cfg.enableIPv4) {
      const free = freeSubnets(cfg.subnetMin!, cfg.subnetMax!, cfg.subnetLen, leases, false);
      if (!free.length) throw new SubnetUnavailableError("out of subnets");
      picked = free[this.o.randomInt(free.length)];
    }
    if (cfg.enableIPv6) {
      const free = freeSubnets(
        cfg.ipv6SubnetMin!,
        cfg.ipv6SubnetMax!,
        cfg.ipv6SubnetLen,
        leases,
        true,
      );
      if (!free.length) throw new SubnetUnavailableError("out of subnets");
      picked6 = free[this.o.randomInt(free.length)];
    }
    this.log("info", "subnet_picked", {
      range: cfg.enableIPv4 ? `${formatIP(cfg.subnetMin!)}...${formatIP(cfg.subnetMax!)}` : "-",
      subnet: picked ? formatCIDR(picked) : "-",
    });
    return [picked, picked6];
  }

  /**
   * Renews with a fresh store lease, fenced on the key's mod revision: if anyone else wrote
   * or deleted the key since we did, this fails with LeaseLostError and nothing is written.
   */
  async renew(lease: Lease): Promise<Lease> {
    if (lease.storeLease === 0n) return lease; // a reservation never expires
    const key = subnetKey(this.o.prefix, lease.subnet, lease.ipv6Subnet);
    const id = await this.reg.grant(this.o.ttlSeconds);
    const r = await this.reg.putIfModRevision(
      key,
      encodeLeaseAttrs(lease.attrs),
      id,
      lease.modRevision,
    );
    if (!r.ok) {
      await this.reg.revoke(id).catch(() => {});
      throw new LeaseLostError(
        `lease ${describeLease(lease)} changed or vanished in the store since revision ` +
          `${lease.modRevision}`,
      );
    }
    await this.reg.revoke(lease.storeLease).catch(() => {});
    return {
      ...lease,
      modRevision: r.modRevision,
      storeLease: id,
      expiresAt: this.o.now() + this.o.ttlSeconds * 1000,
    };
  }
}

/** When to renew: `margin` before expiry, but never later than halfway through the TTL. */
export function renewDelayMs(
  lease: Lease,
  now: number,
  marginMinutes: number,
  ttlSeconds: number,
): number | null {
  if (lease.expiresAt === null) return null;
  const margin = Math.min(marginMinutes * 60_000, (ttlSeconds * 1000) / 2);
  return Math.max(0, lease.expiresAt - margin - now);
}

function freeSubnets(
  min: { family: 4 | 6; value: bigint },
  max: { family: 4 | 6; value: bigint },
  len: number,
  leases: Lease[],
  v6: boolean,
): CIDR[] {
  const taken = leases.map((l) => (v6 ? l.ipv6Subnet : l.subnet)).filter((x): x is CIDR => !!x);
  const out: CIDR[] = [];
  for (const sn of candidateSubnets(min, max, len)) {
    if (out.length >= CANDIDATES) break;
    if (!taken.some((t) => overlapsCIDR(t, sn))) out.push(sn);
  }
  return out;
}

function overlapsCIDR(a: CIDR, b: CIDR): boolean {
  if (a.ip.family !== b.ip.family) return false;
  const p = Math.min(a.prefix, b.prefix);
  const bitsN = BigInt(a.ip.family === 4 ? 32 : 128);
  const shift = bitsN - BigInt(p);
  return (a.ip.value >> shift) === (b.ip.value >> shift);
}

/** A stored key/value as a Lease; null when the key is not a subnet key or the value is bad. */
export function leaseFromKv(kv: StoredKv): Lease | null {
  const k = parseSubnetKey(kv.key);
  if (!k) return null;
  let attrs: LeaseAttrs;
  try {
    attrs = decodeLeaseAttrs(kv.value);
  } catch {
    return null;
  }
  return {
    subnet: k.subnet,
    ipv6Subnet: k.ipv6Subnet,
    attrs,
    modRevision: kv.modRevision,
    storeLease: kv.lease,
    expiresAt: null,
  };
}
