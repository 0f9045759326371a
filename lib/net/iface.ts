// Finds the underlay interface: --iface (names or addresses, in order), else the interface of the
// default route. Reads `ip -j addr` / `ip -j route`; pure selection in chooseInterface().
import { ipJson } from "./ip_batch.ts";

export interface IfaceAddr {
  family: "inet" | "inet6";
  local: string;
  prefixlen: number;
  scope?: string;
}

export interface LinkAddrs {
  ifindex: number;
  ifname: string;
  mtu: number;
  flags?: string[];
  addr_info: IfaceAddr[];
}

export interface ChosenIface {
  name: string;
  index: number;
  mtu: number;
  /** The interface's IPv4 address used as the VXLAN local address. */
  address: string;
  /** Its prefix length (for DirectRouting's same-L2 check). */
  prefixLen: number;
  /** The interface's first global IPv6 address (dual stack), or null. */
  address6: string | null;
  prefixLen6: number;
}

export class IfaceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IfaceError";
  }
}

function firstV6(l: LinkAddrs): IfaceAddr | undefined {
  return l.addr_info.find((a) => a.family === "inet6" && (a.scope ?? "global") === "global");
}

function firstV4(l: LinkAddrs): IfaceAddr | undefined {
  return l.addr_info.find((a) => a.family === "inet" && a.scope !== "host");
}

/** Pure: picks from the links per the --iface list or the default-route device. */
export function chooseInterface(
  links: LinkAddrs[],
  wanted: string[],
  defaultDev: string | null,
): ChosenIface {
  const pick = (l: LinkAddrs, a: IfaceAddr | undefined): ChosenIface => {
    if (!a) {
      throw new IfaceError(
        `interface ${l.ifname} has no IPv4 address; give --iface or --public-ip`,
      );
    }
    return {
      name: l.ifname,
      index: l.ifindex,
      mtu: l.mtu,
      address: a.local,
      prefixLen: a.prefixlen,
      address6: firstV6(l)?.local ?? null,
      prefixLen6: firstV6(l)?.prefixlen ?? 0,
    };
  };
  if (wanted.length) {
    for (const w of wanted) {
      const byName = links.find((l) => l.ifname === w);
      if (byName && firstV4(byName)) return pick(byName, firstV4(byName));
      for (const l of links) {
        const a = l.addr_info.find((x) => x.local === w);
        if (a) return pick(l, a);
      }
    }
    throw new IfaceError(
      `no interface matches --iface ${wanted.join(",")}: give an existing interface name or one ` +
        `of its addresses (have: ${links.map((l) => l.ifname).join(", ")})`,
    );
  }
  if (!defaultDev) {
    throw new IfaceError("no default route to pick the interface from: give --iface NAME");
  }
  const l = links.find((x) => x.ifname === defaultDev);
  if (!l) throw new IfaceError(`default-route interface ${defaultDev} not found; give --iface`);
  return pick(l, firstV4(l));
}

/** Reads the links and the default route, then chooses. */
export async function findInterface(wanted: string[]): Promise<ChosenIface> {
  const links = (await ipJson<LinkAddrs[]>(["addr", "show"])) ?? [];
  let defaultDev: string | null = null;
  if (!wanted.length) {
    const routes = (await ipJson<{ dev?: string }[]>(["-4", "route", "show", "default"])) ?? [];
    defaultDev = routes.find((r) => r.dev)?.dev ?? null;
  }
  return chooseInterface(links, wanted, defaultDev);
}
