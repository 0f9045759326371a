// subnet.env, the file the agent writes for this node and the CNI plugin reads: Flannel's exact
// format and order. Rendering and parsing are pure; writing is crash-safe (lib/fs_atomic.ts).
import { type CIDR, formatCIDR, parseCIDR, tryParseCIDR } from "../net/cidr.ts";
import { writeTextFileAtomic } from "../fs_atomic.ts";
import type { NetConfig } from "./config.ts";

export interface SubnetEnv {
  network?: CIDR;
  subnet?: CIDR; // host bits kept: FLANNEL_SUBNET is written as the gateway, e.g. 10.244.1.1/24
  ipv6Network?: CIDR;
  ipv6Subnet?: CIDR;
  mtu: number;
  ipMasq: boolean;
}

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

/** Writes crash-safely; 0644 unless the file existed (its mode is kept). */
export async function writeSubnetEnv(path: string, text: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : ".";
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  let mode = 0o644;
  try {
    mode = (await Deno.stat(path)).mode! & 0o777;
  } catch { /* new file */ }
  await writeTextFileAtomic(path, text, mode);
}

function envVars(text: string): Map<string, string> {
  const kv = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return kv;
}

/**
 * The lenient reading the agent does at start: the subnets of a previous subnet.env (to ask for
 * the same subnet again), host bits cleared; nulls for what is absent or unreadable.
 */
export function parseSubnetEnvSubnets(
  text: string,
): { subnet: CIDR | null; ipv6Subnet: CIDR | null } {
  const vars = envVars(text);
  const netOf = (v: string | undefined) => v ? tryParseCIDR(v) : null;
  return {
    subnet: netOf(vars.get("FLANNEL_SUBNET")),
    ipv6Subnet: netOf(vars.get("FLANNEL_IPV6_SUBNET")),
  };
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

/** The strict reading the CNI plugin does; throws an Error naming what is wrong or missing. */
export function parseSubnetEnv(text: string, path = "subnet.env"): SubnetEnv {
  const kv = envVars(text);
  const cidr = (k: string, keepHost: boolean): CIDR | undefined => {
    const v = kv.get(k);
    if (v === undefined || v === "") return undefined;
    try {
      return parseCIDR(v, keepHost);
    } catch {
      throw new Error(`${path}: ${k}=${v} is not a CIDR`);
    }
  };
  const network = cidr("FLANNEL_NETWORK", false);
  const subnet = cidr("FLANNEL_SUBNET", true);
  const ipv6Network = cidr("FLANNEL_IPV6_NETWORK", false);
  const ipv6Subnet = cidr("FLANNEL_IPV6_SUBNET", true);
  const missing: string[] = [];
  if (!network && !ipv6Network) missing.push("FLANNEL_NETWORK (or FLANNEL_IPV6_NETWORK)");
  if (!subnet && !ipv6Subnet) missing.push("FLANNEL_SUBNET (or FLANNEL_IPV6_SUBNET)");
  const mtuText = kv.get("FLANNEL_MTU");
  if (mtuText === undefined) missing.push("FLANNEL_MTU");
  const masqText = kv.get("FLANNEL_IPMASQ");
  if (masqText === undefined) missing.push("FLANNEL_IPMASQ");
  if (missing.length) throw new Error(`${path} is missing ${missing.join(", ")}`);
  const mtu = Number(mtuText);
  if (!/^\d+$/.test(mtuText!) || mtu < 68 || mtu > 65535) {
    throw new Error(`${path}: FLANNEL_MTU=${mtuText} is not an MTU (68..65535)`);
  }
  if (subnet && subnet.ip.family !== 4) throw new Error(`${path}: FLANNEL_SUBNET is not IPv4`);
  if (ipv6Subnet && ipv6Subnet.ip.family !== 6) {
    throw new Error(`${path}: FLANNEL_IPV6_SUBNET is not IPv6`);
  }
  return { network, subnet, ipv6Network, ipv6Subnet, mtu, ipMasq: masqText === "true" };
}

/** Reads and parses the file now; null when it does not exist yet. */
export function readSubnetEnv(path: string): SubnetEnv | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return parseSubnetEnv(text, path);
}

/**
 * Waits up to `waitMs` for the file to exist and parse (the agent may be starting while kubelet
 * already runs pods). Returns the last problem when time runs out.
 */
export async function waitSubnetEnv(
  path: string,
  waitMs: number,
  sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)),
): Promise<{ env: SubnetEnv } | { problem: string }> {
  const deadline = performance.now() + waitMs;
  let problem = `${path} does not exist`;
  for (;;) {
    try {
      const env = readSubnetEnv(path);
      if (env) return { env };
      problem = `${path} does not exist`;
    } catch (e) {
      problem = (e as Error).message;
    }
    const left = deadline - performance.now();
    if (left <= 0) return { problem };
    await sleep(Math.min(100, left));
  }
}
