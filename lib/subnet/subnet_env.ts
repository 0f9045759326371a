// subnet.env in Flannel's exact format and order, written atomically with mode 0644.
import { type CIDR, formatCIDR, tryParseCIDR } from "../net/cidr.ts";
import type { NetConfig } from "./config.ts";

export function renderSubnetEnv(
  cfg: NetConfig,
  sn: CIDR | null,
  sn6: CIDR | null,
  mtu: number,
  ipMasq: boolean,
): string {
  let s = "";
  if (cfg.enableIPv4 && cfg.network && sn) {
    s += `FLANNEL_NETWORK=${formatCIDR(cfg.network)}\n`;
    s += `FLANNEL_SUBNET=${formatCIDR(firstHost(sn))}\n`;
  }
  if (cfg.enableIPv6 && cfg.ipv6Network && sn6) {
    s += `FLANNEL_IPV6_NETWORK=${formatCIDR(cfg.ipv6Network)}\n`;
    s += `FLANNEL_IPV6_SUBNET=${formatCIDR(firstHost(sn6))}\n`;
  }
  s += `FLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=${ipMasq}\n`;
  return s;
}

function firstHost(c: CIDR): CIDR {
  return { ip: { family: c.ip.family, value: c.ip.value + 1n }, prefix: c.prefix };
}

/** Writes via a temporary file in the same directory and a rename; 0644 unless it existed. */
export async function writeSubnetEnv(path: string, text: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : ".";
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  let mode = 0o644;
  try {
    mode = (await Deno.stat(path)).mode! & 0o777;
  } catch { /* new file */ }
  const tmp = `${path}.tmp-${Deno.pid}`;
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode });
  try {
    await f.write(new TextEncoder().encode(text));
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.chmod(tmp, mode);
  await Deno.rename(tmp, path);
}

/** The subnets of an existing subnet.env (for reusing the previous subnet); nulls if none. */
export async function readPreviousSubnets(
  path: string,
): Promise<{ subnet: CIDR | null; ipv6Subnet: CIDR | null }> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return { subnet: null, ipv6Subnet: null };
  }
  return parseSubnetEnvSubnets(text);
}

export function parseSubnetEnvSubnets(
  text: string,
): { subnet: CIDR | null; ipv6Subnet: CIDR | null } {
  const vars = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) vars.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return {
    subnet: netOf(vars.get("FLANNEL_SUBNET")),
    ipv6Subnet: netOf(vars.get("FLANNEL_IPV6_SUBNET")),
  };
}

function netOf(v: string | undefined): CIDR | null {
  if (!v) return null;
  return tryParseCIDR(v); // host bits (the .1) are cleared
}
