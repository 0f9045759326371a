// net-conf.json, parsed and checked with Flannel's semantics and Flannel's error texts:
// keys are matched case-insensitively (as Go's encoding/json does), SubnetLen/SubnetMin/SubnetMax
// get Flannel's defaults, and an invalid config is refused with the message Flannel prints.
import {
  type CIDR,
  contains,
  formatIP,
  type IP,
  lastIP,
  nextSubnet,
  nthIP,
  parseCIDR,
  tryParseIP,
} from "../net/cidr.ts";

/**
 * A backend's part of net-conf.json: `Type` plus the fields its module in lib/backend parses.
 * Each backend module extends this with its own fields.
 */
export interface BackendConfig {
  readonly type: string;
}

/** Reads one field of the Backend object, matched as Go's encoding/json does. */
export type BackendField = (name: string) => unknown;

/**
 * Parses the Backend fields of one backend type (lower-cased); undefined when no backend of
 * that type is registered. Supplied by lib/backend/registry.ts, so this module names no backend.
 */
export type BackendConfigParser = (
  type: string,
) => ((field: BackendField) => BackendConfig) | undefined;

/** Flannel's backend when net-conf.json has no Backend. */
export const DEFAULT_BACKEND_TYPE = "vxlan";

export interface NetConfig {
  enableIPv4: boolean;
  enableIPv6: boolean;
  network: CIDR | null;
  subnetLen: number;
  subnetMin: IP | null;
  subnetMax: IP | null;
  ipv6Network: CIDR | null;
  ipv6SubnetLen: number;
  ipv6SubnetMin: IP | null;
  ipv6SubnetMax: IP | null;
  backend: BackendConfig;
  /** True when the config had no Backend and the default was assumed (the caller logs it). */
  backendDefaulted: boolean;
}

export class NetConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetConfigError";
  }
}

/** Go's encoding/json field matching: an exact name wins, else the first case-insensitive one. */
export function jsonField(obj: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(obj, name)) return obj[name];
  const lower = name.toLowerCase();
  for (const k of Object.keys(obj)) if (k.toLowerCase() === lower) return obj[k];
  return undefined;
}

export function asBool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== "boolean") throw new NetConfigError(`net-conf: ${name} must be true or false`);
  return v;
}

export function asUint(v: unknown, name: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new NetConfigError(`net-conf: ${name} must be a non-negative integer, not ${v}`);
  }
  return v;
}

function asCIDR(v: unknown, name: string, family: 4 | 6): CIDR | null {
  if (v === undefined || v === null || v === "") return null;
  if (typeof v !== "string") throw new NetConfigError(`net-conf: ${name} must be a CIDR string`);
  let c: CIDR;
  try {
    c = parseCIDR(v);
  } catch {
    throw new NetConfigError(`net-conf: ${name} is not a valid CIDR: ${v}`);
  }
  if (c.ip.family !== family) {
    throw new NetConfigError(`net-conf: ${name} must be an IPv${family} CIDR, not ${v}`);
  }
  return c;
}

function asIP(v: unknown, name: string, family: 4 | 6): IP | null {
  if (v === undefined || v === null || v === "") return null;
  const ip = typeof v === "string" ? tryParseIP(v) : null;
  if (!ip || ip.family !== family) {
    throw new NetConfigError(`net-conf: ${name} is not a valid IPv${family} address: ${v}`);
  }
  return ip;
}

function parseBackend(
  raw: unknown,
  backends: BackendConfigParser,
): { backend: BackendConfig; defaulted: boolean } {
  if (raw === undefined || raw === null) {
    return { backend: parseBackendOf(DEFAULT_BACKEND_TYPE, {}, backends), defaulted: true };
  }
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new NetConfigError(
      "error decoding Backend property of config: Backend must be an object",
    );
  }
  const b = raw as Record<string, unknown>;
  const t = jsonField(b, "Type");
  if (typeof t !== "string") {
    throw new NetConfigError(`unknown backend type: ${t === undefined ? "" : String(t)}`);
  }
  return { backend: parseBackendOf(t, b, backends), defaulted: false };
}

function parseBackendOf(
  type: string,
  b: Record<string, unknown>,
  backends: BackendConfigParser,
): BackendConfig {
  const parse = backends(type.toLowerCase());
  if (!parse) throw new NetConfigError(`unknown backend type: ${type}`);
  return parse((name) => jsonField(b, name));
}

/** Parses and checks net-conf.json text. Throws NetConfigError with Flannel's message. */
export function parseNetConfig(text: string, backends: BackendConfigParser): NetConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new NetConfigError(`net-conf is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new NetConfigError("net-conf must be a JSON object");
  }
  const o = raw as Record<string, unknown>;
  const { backend, defaulted } = parseBackend(jsonField(o, "Backend"), backends);
  const cfg: NetConfig = {
    enableIPv4: asBool(jsonField(o, "EnableIPv4"), "EnableIPv4", true),
    enableIPv6: asBool(jsonField(o, "EnableIPv6"), "EnableIPv6", false),
    network: asCIDR(jsonField(o, "Network"), "Network", 4),
    subnetLen: asUint(jsonField(o, "SubnetLen"), "SubnetLen"),
    subnetMin: asIP(jsonField(o, "SubnetMin"), "SubnetMin", 4),
    subnetMax: asIP(jsonField(o, "SubnetMax"), "SubnetMax", 4),
    ipv6Network: asCIDR(jsonField(o, "IPv6Network"), "IPv6Network", 6),
    ipv6SubnetLen: asUint(jsonField(o, "IPv6SubnetLen"), "IPv6SubnetLen"),
    ipv6SubnetMin: asIP(jsonField(o, "IPv6SubnetMin"), "IPv6SubnetMin", 6),
    ipv6SubnetMax: asIP(jsonField(o, "IPv6SubnetMax"), "IPv6SubnetMax", 6),
    backend,
    backendDefaulted: defaulted,
  };
  checkNetConfig(cfg);
  return cfg;
}

function alignedTo(ip: IP, len: number): boolean {
  const hostBits = BigInt((ip.family === 4 ? 32 : 128) - len);
  return (ip.value & ((1n << hostBits) - 1n)) === 0n;
}

/** Flannel's CheckNetworkConfig: validates and fills in the defaults, in place. */
export function checkNetConfig(cfg: NetConfig): void {
  if (cfg.enableIPv4) checkIPv4(cfg);
  if (cfg.enableIPv6) checkIPv6(cfg);
}

function checkIPv4(cfg: NetConfig): void {
  const net = cfg.network;
  if (!net || (net.ip.value === 0n && net.prefix === 0)) {
    throw new NetConfigError("please define a correct Network parameter in the flannel config");
  }
  if (cfg.subnetLen > 0) {
    if (cfg.subnetLen > 30) throw new NetConfigError("SubnetLen must be less than /31");
    if (cfg.subnetLen < net.prefix + 2) {
      throw new NetConfigError("network must be able to accommodate at least four subnets");
    }
  } else if (net.prefix > 28) {
    throw new NetConfigError("network is too small. Minimum useful network prefix is /28");
  } else {
    cfg.subnetLen = net.prefix <= 22 ? 24 : net.prefix + 2;
  }
  const size = 1n << BigInt(32 - cfg.subnetLen);
  if (!cfg.subnetMin || cfg.subnetMin.value === 0n) {
    cfg.subnetMin = nthIP(net, size);
  } else if (!contains(net, cfg.subnetMin)) {
    throw new NetConfigError("SubnetMin is not in the range of the Network");
  }
  if (!cfg.subnetMax || cfg.subnetMax.value === 0n) {
    cfg.subnetMax = { family: 4, value: lastIP(net).value + 1n - size };
  } else if (!contains(net, cfg.subnetMax)) {
    throw new NetConfigError("SubnetMax is not in the range of the Network");
  }
  if (!alignedTo(cfg.subnetMin, cfg.subnetLen)) {
    throw new NetConfigError(
      `SubnetMin is not on a SubnetLen boundary: ${formatIP(cfg.subnetMin)}`,
    );
  }
  if (!alignedTo(cfg.subnetMax, cfg.subnetLen)) {
    throw new NetConfigError(
      `SubnetMax is not on a SubnetLen boundary: ${formatIP(cfg.subnetMax)}`,
    );
  }
}

function checkIPv6(cfg: NetConfig): void {
  const net = cfg.ipv6Network;
  if (!net || (net.ip.value === 0n && net.prefix === 0)) {
    throw new NetConfigError(
      "please define a correct IPv6Network parameter in the flannel config",
    );
  }
  if (cfg.ipv6SubnetLen > 0) {
    if (cfg.ipv6SubnetLen > 126) throw new NetConfigError("SubnetLen must be less than /127");
    if (cfg.ipv6SubnetLen < net.prefix + 2) {
      throw new NetConfigError("network must be able to accommodate at least four subnets");
    }
  } else if (net.prefix > 124) {
    throw new NetConfigError(
      "IPv6Network is too small. Minimum useful network prefix is /124",
    );
  } else {
    cfg.ipv6SubnetLen = net.prefix <= 62 ? 64 : net.prefix + 2;
  }
  const size = 1n << BigInt(128 - cfg.ipv6SubnetLen);
  if (!cfg.ipv6SubnetMin || cfg.ipv6SubnetMin.value === 0n) {
    cfg.ipv6SubnetMin = nthIP(net, size);
  } else if (!contains(net, cfg.ipv6SubnetMin)) {
    throw new NetConfigError("IPv6SubnetMin is not in the range of the IPv6Network");
  }
  if (!cfg.ipv6SubnetMax || cfg.ipv6SubnetMax.value === 0n) {
    cfg.ipv6SubnetMax = { family: 6, value: lastIP(net).value + 1n - size };
  } else if (!contains(net, cfg.ipv6SubnetMax)) {
    throw new NetConfigError("IPv6SubnetMax is not in the range of the IPv6Network");
  }
  if (!alignedTo(cfg.ipv6SubnetMin, cfg.ipv6SubnetLen)) {
    throw new NetConfigError(
      `IPv6SubnetMin is not on a SubnetLen boundary: ${formatIP(cfg.ipv6SubnetMin)}`,
    );
  }
  if (!alignedTo(cfg.ipv6SubnetMax, cfg.ipv6SubnetLen)) {
    throw new NetConfigError(
      `IPv6SubnetMax is not on a SubnetLen boundary: ${formatIP(cfg.ipv6SubnetMax)}`,
    );
  }
}

/** Flannel's isSubnetConfigCompat: inside [SubnetMin, SubnetMax] with the configured length. */
export function isSubnetCompatible(cfg: NetConfig, sn: CIDR | null): boolean {
  if (!cfg.enableIPv4) return sn === null;
  if (!sn || !cfg.subnetMin || !cfg.subnetMax) return false;
  if (sn.ip.value < cfg.subnetMin.value || sn.ip.value > cfg.subnetMax.value) return false;
  return sn.prefix === cfg.subnetLen;
}

export function isIPv6SubnetCompatible(cfg: NetConfig, sn6: CIDR | null): boolean {
  if (!cfg.enableIPv6) return sn6 === null;
  if (!sn6 || !cfg.ipv6SubnetMin || !cfg.ipv6SubnetMax) return false;
  if (sn6.ip.value < cfg.ipv6SubnetMin.value || sn6.ip.value > cfg.ipv6SubnetMax.value) {
    return false;
  }
  return sn6.prefix === cfg.ipv6SubnetLen;
}

/** The subnets of the configured length from SubnetMin to SubnetMax, lazily. */
export function* candidateSubnets(min: IP, max: IP, len: number): Generator<CIDR> {
  let sn: CIDR = { ip: min, prefix: len };
  while (sn.ip.value <= max.value) {
    yield sn;
    sn = nextSubnet(sn, len);
  }
}
