// The VXLAN device flannel.<VNI>: wanted shape, what the kernel has (`ip -d -j addr show dev`),
// and the ip lines that make them match. An incompatible device is recreated; a compatible one
// is adjusted in place (MAC, MTU, up, address) so pod traffic is not interrupted.

export interface VxlanDeviceSpec {
  name: string;
  vni: number;
  /** Underlay address (VXLAN local). */
  local: string;
  /** Underlay interface name. */
  link: string;
  port: number;
  mac: string;
  mtu: number;
  /** "<own subnet>.0/32", or null before a lease is held. */
  address: string | null;
}

/** The parts of `ip -d -j addr show dev X` we read. */
export interface LinkDetails {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  linkinfo?: {
    info_kind?: string;
    info_data?: {
      id?: number;
      local?: string;
      /** iproute2 names an IPv6 local address local6 */
      local6?: string;
      link?: string;
      port?: number;
      learning?: boolean;
    };
  };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export interface DevicePlan {
  lines: string[];
  recreated: boolean;
  created: boolean;
  /** Why it was (re)created, for the log. */
  reason: string;
}

export function createLines(s: VxlanDeviceSpec): string[] {
  const out = [
    `link add ${s.name} address ${s.mac} mtu ${s.mtu} type vxlan id ${s.vni} local ${s.local} ` +
    `dev ${s.link} dstport ${s.port} nolearning`,
    `link set ${s.name} up`,
  ];
  if (s.address) out.push(`addr add ${s.address} dev ${s.name}`);
  return out;
}

/** Why an existing device cannot be reused, or null when it can. */
export function incompatibility(s: VxlanDeviceSpec, have: LinkDetails): string | null {
  const kind = have.linkinfo?.info_kind;
  if (kind !== "vxlan") return `kind ${kind ?? "unknown"} is not vxlan`;
  const d = have.linkinfo?.info_data ?? {};
  if (d.id !== s.vni) return `VNI ${d.id} != ${s.vni}`;
  const local = d.local ?? d.local6;
  if (local !== s.local) return `local ${local} != ${s.local}`;
  if (d.link !== undefined && d.link !== s.link) return `dev ${d.link} != ${s.link}`;
  if ((d.port ?? 8472) !== s.port) return `dstport ${d.port} != ${s.port}`;
  if (d.learning) return "learning is on";
  return null;
}

export function planDevice(s: VxlanDeviceSpec, have: LinkDetails | null): DevicePlan {
  if (!have) return { lines: createLines(s), recreated: false, created: true, reason: "missing" };
  const why = incompatibility(s, have);
  if (why) {
    return {
      lines: [`link del ${s.name}`, ...createLines(s)],
      recreated: true,
      created: true,
      reason: why,
    };
  }
  const lines: string[] = [];
  if (have.address.toLowerCase() !== s.mac.toLowerCase()) {
    lines.push(`link set ${s.name} address ${s.mac}`);
  }
  if (have.mtu !== s.mtu) lines.push(`link set ${s.name} mtu ${s.mtu}`);
  if (!have.flags.includes("UP")) lines.push(`link set ${s.name} up`);
  const family = s.local.includes(":") ? "inet6" : "inet";
  const v4 = (have.addr_info ?? []).filter((a) =>
    a.family === family && !(family === "inet6" && a.local.toLowerCase().startsWith("fe80:"))
  );
  for (const a of v4) {
    if (`${a.local}/${a.prefixlen}` !== s.address) {
      lines.push(`addr del ${a.local}/${a.prefixlen} dev ${s.name}`);
    }
  }
  if (s.address && !v4.some((a) => `${a.local}/${a.prefixlen}` === s.address)) {
    lines.push(`addr add ${s.address} dev ${s.name}`);
  }
  return { lines, recreated: false, created: false, reason: lines.length ? "adjusted" : "" };
}

/** A locally administered unicast MAC from 5 random bytes (first octet 0x02 | random bits). */
export function randomVtepMac(bytes: Uint8Array): string {
  const b = [...bytes.slice(0, 6)];
  b[0] = (b[0] & 0xfe) | 0x02;
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}
