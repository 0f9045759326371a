// /run/flannel/subnet.env, the file the twill (or Flannel) agent writes for this node: parsing is
// pure; reading waits a bounded time for the agent to write it.
import { type CIDR, parseCIDR } from "../net/cidr.ts";

export interface SubnetEnv {
  network?: CIDR;
  subnet?: CIDR; // host bits kept: FLANNEL_SUBNET is written as the gateway, e.g. 10.244.1.1/24
  ipv6Network?: CIDR;
  ipv6Subnet?: CIDR;
  mtu: number;
  ipMasq: boolean;
}

/** Parses the KEY=VALUE lines; throws an Error naming what is wrong or missing. */
export function parseSubnetEnv(text: string, path = "subnet.env"): SubnetEnv {
  const kv = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    kv.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
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
