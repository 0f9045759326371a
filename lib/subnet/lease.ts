// A subnet lease as Flannel stores it: the key <prefix>/subnets/10.1.2.0-24 (dual stack
// 10.1.2.0-24&fd00::-64) and the value Flannel's LeaseAttrs JSON, fields in Flannel's order:
// {"PublicIP":"…","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"…"}}
import { type CIDR, cidrEqual, formatCIDR, parseCIDR } from "../net/cidr.ts";
import { jsonField } from "./config.ts";
import { parseSubnetKey, subnetKeyName } from "../net/subnet_key.ts";

export { parseSubnetKey, subnetKeyName };

export interface LeaseAttrs {
  publicIP: string;
  publicIPv6: string | null;
  backendType: string;
  /** Raw backend data, kept as parsed JSON; its backend module in lib/backend decodes it. */
  backendData?: unknown;
  backendV6Data?: unknown;
}

export interface Lease {
  subnet: CIDR | null;
  ipv6Subnet: CIDR | null;
  attrs: LeaseAttrs;
  /** The store key's mod revision (for fenced renewals), 0n when unknown. */
  modRevision: bigint;
  /** The store lease id holding the key; 0n = no TTL (a reservation). */
  storeLease: bigint;
  /** Milliseconds since the epoch when the lease expires; null for a reservation. */
  expiresAt: number | null;
}

export function subnetKey(prefix: string, sn: CIDR | null, sn6: CIDR | null): string {
  return `${trimSlash(prefix)}/subnets/${subnetKeyName(sn, sn6)}`;
}

export function subnetsPrefix(prefix: string): string {
  return `${trimSlash(prefix)}/subnets/`;
}

export function configKey(prefix: string): string {
  return `${trimSlash(prefix)}/config`;
}

function trimSlash(p: string): string {
  return p.endsWith("/") ? p.slice(0, -1) : p;
}

/** Flannel's LeaseAttrs JSON, field order and omissions as Go's encoder writes them. */
export function encodeLeaseAttrs(a: LeaseAttrs): string {
  const o: Record<string, unknown> = { PublicIP: a.publicIP, PublicIPv6: a.publicIPv6 };
  if (a.backendType) o.BackendType = a.backendType;
  if (a.backendData !== undefined && a.backendData !== null) o.BackendData = a.backendData;
  if (a.backendV6Data !== undefined && a.backendV6Data !== null) o.BackendV6Data = a.backendV6Data;
  return JSON.stringify(o);
}

export function decodeLeaseAttrs(text: string): LeaseAttrs {
  const o = JSON.parse(text);
  if (typeof o !== "object" || o === null) throw new Error("lease value is not a JSON object");
  const pub = jsonField(o, "PublicIP");
  const pub6 = jsonField(o, "PublicIPv6");
  return {
    publicIP: typeof pub === "string" ? pub : "",
    publicIPv6: typeof pub6 === "string" ? pub6 : null,
    backendType: String(jsonField(o, "BackendType") ?? ""),
    backendData: jsonField(o, "BackendData") ?? undefined,
    backendV6Data: jsonField(o, "BackendV6Data") ?? undefined,
  };
}

export function sameSubnets(a: Lease, b: Lease): boolean {
  return sameCIDR(a.subnet, b.subnet) && sameCIDR(a.ipv6Subnet, b.ipv6Subnet);
}

/** cidrEqual for a lease's optional subnets: two absent ones are the same. */
export function sameCIDR(a: CIDR | null, b: CIDR | null): boolean {
  if (!a || !b) return a === b;
  return cidrEqual(a, b);
}

export function describeLease(l: Lease): string {
  const sn = l.subnet ? formatCIDR(l.subnet) : "-";
  return l.ipv6Subnet ? `${sn}&${formatCIDR(l.ipv6Subnet)}` : sn;
}

export { parseCIDR };
