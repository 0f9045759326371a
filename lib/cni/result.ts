// The ADD result, kept in the 1.x shape inside twill and written in the exact shape of the version
// the runtime asked for: 0.3.x and 0.4.0 carry "version" on each IP; 1.x does not.
import { type CIDR, formatCIDR, formatIP, type IP, parseCIDR, parseIP } from "../net/cidr.ts";
import { CniError, ERR } from "./errors.ts";
import { compareVersions } from "./versions.ts";

export interface ResultInterface {
  name: string;
  mac: string;
  sandbox?: string;
}

export interface ResultIP {
  /** Address with its prefix length (host bits kept). */
  address: CIDR;
  gateway?: IP;
  interface?: number;
}

export interface ResultRoute {
  dst: CIDR;
  gw?: IP;
}

export interface Result {
  interfaces: ResultInterface[];
  ips: ResultIP[];
  routes: ResultRoute[];
  dns: Record<string, unknown>;
}

export function resultJSON(r: Result, version: string): Record<string, unknown> {
  const legacy = compareVersions(version, "1.0.0") < 0;
  return {
    cniVersion: version,
    interfaces: r.interfaces.map((i) => ({ ...i })),
    ips: r.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (legacy) o.version = ip.address.ip.family === 4 ? "4" : "6";
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = formatCIDR(ip.address);
      if (ip.gateway) o.gateway = formatIP(ip.gateway);
      return o;
    }),
    routes: r.routes.map((rt) => {
      const o: Record<string, unknown> = { dst: formatCIDR(rt.dst) };
      if (rt.gw) o.gw = formatIP(rt.gw);
      return o;
    }),
    dns: r.dns,
  };
}

/** Reads a prevResult of any supported version back into the 1.x shape. */
export function parseResult(o: Record<string, unknown>): Result {
  try {
    const interfaces = ((o.interfaces ?? []) as Record<string, unknown>[]).map((i) => {
      const itf: ResultInterface = { name: String(i.name ?? ""), mac: String(i.mac ?? "") };
      if (i.sandbox !== undefined) itf.sandbox = String(i.sandbox);
      return itf;
    });
    const ips = ((o.ips ?? []) as Record<string, unknown>[]).map((ip) => {
      const out: ResultIP = { address: parseCIDR(String(ip.address), true) };
      if (ip.gateway) out.gateway = parseIP(String(ip.gateway));
      if (typeof ip.interface === "number") out.interface = ip.interface;
      return out;
    });
    const routes = ((o.routes ?? []) as Record<string, unknown>[]).map((r) => {
      const out: ResultRoute = { dst: parseCIDR(String(r.dst)) };
      if (r.gw) out.gw = parseIP(String(r.gw));
      return out;
    });
    return { interfaces, ips, routes, dns: (o.dns ?? {}) as Record<string, unknown> };
  } catch (e) {
    throw new CniError(
      ERR.decode,
      `prevResult does not parse as a CNI result: ${(e as Error).message}`,
    );
  }
}
