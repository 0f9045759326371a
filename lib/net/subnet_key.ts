// The name of a subnet lease's key, Flannel's: "10.1.2.0-24", dual stack "10.1.2.0-24&fd00::-64".
// Here, below lib/subnet, so that authorization (lib/pki) can recognise a subnet key without
// depending on the subnet registry and the etcd client.
import { type CIDR, formatIP, tryParseIP } from "./cidr.ts";

/** "10.1.2.0-24" or "10.1.2.0-24&fd00::-64". */
export function subnetKeyName(sn: CIDR | null, sn6: CIDR | null): string {
  const v4 = sn ? `${formatIP(sn.ip)}-${sn.prefix}` : "";
  if (!sn6) return v4;
  return `${v4}&${formatIP(sn6.ip)}-${sn6.prefix}`;
}

const KEY_RE = /(\d+\.\d+\.\d+\.\d+)-(\d+)(?:&([a-fA-F\d:]+)-(\d+))?$/;

/** Parses the last path element of a subnet key; null if it is not one. */
export function parseSubnetKey(key: string): { subnet: CIDR; ipv6Subnet: CIDR | null } | null {
  const m = KEY_RE.exec(key);
  if (!m) return null;
  const ip = tryParseIP(m[1]);
  const len = Number(m[2]);
  if (!ip || ip.family !== 4 || len > 32) return null;
  let sn6: CIDR | null = null;
  if (m[3]) {
    const ip6 = tryParseIP(m[3]);
    const len6 = Number(m[4]);
    if (!ip6 || ip6.family !== 6 || len6 > 128) return null;
    sn6 = { ip: ip6, prefix: len6 };
  }
  return { subnet: { ip, prefix: len }, ipv6Subnet: sn6 };
}
