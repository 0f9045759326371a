// `twill ctl check`, the wireguard part, pure: the peers the leases ask for on flannel-wg against
// the peers the device reports over UAPI → findings, one line each with its fix. check_node.ts
// reads the device (wireguard-go's socket in the node's data dir); a kernel device is not read.
import { type CIDR, formatCIDR } from "../net/cidr.ts";
import { keyToBase64 } from "../net/wireguard/keys.ts";
import { type Endpoint, formatEndpoint, type PeerState } from "../net/wireguard/uapi.ts";
import type { Finding } from "./check.ts";

/** A handshake older than this, for a peer with an endpoint, means the tunnel is not up:
 *  WireGuard re-handshakes every 2 minutes while traffic flows, and the probes just sent some. */
export const WG_HANDSHAKE_STALE_SEC = 180;

/** A peer a lease asks for. */
export interface WgWantPeer {
  publicKey: Uint8Array;
  endpoint: Endpoint;
  allowedIPs: CIDR[];
  /** The lease's subnet and public IP, to name it. */
  subnet: string;
  publicIP: string;
}

export interface WgCheckInput {
  device: string;
  /** This node's listen port (named in the fix of a handshake finding). */
  port: number;
  want: WgWantPeer[];
  /** The device's peers; null when they could not be read (`note` says why). */
  have: PeerState[] | null;
  note: string;
  /** Unix seconds, when `have` was read. */
  nowSec: number;
}

const cidrs = (cs: CIDR[]) => cs.map(formatCIDR).sort().join(",");
const ep = (e?: Endpoint) => (e ? formatEndpoint(e) : "(none)");

/** Missing, different and stale peers, then peers without a recent handshake. */
export function checkWireguardPeers(i: WgCheckInput): Finding[] {
  if (!i.have) return [];
  const dev = i.device;
  const out: Finding[] = [];
  const have = new Map(i.have.map((p) => [keyToBase64(p.publicKey), p]));
  const wanted = new Set(i.want.map((p) => keyToBase64(p.publicKey)));
  for (const w of i.want) {
    const key = keyToBase64(w.publicKey);
    const h = have.get(key);
    const name = `peer ${w.subnet} (${w.publicIP}, key ${key})`;
    const set = `wg set ${dev} peer ${key} endpoint ${ep(w.endpoint)} allowed-ips ` +
      cidrs(w.allowedIPs);
    if (!h) {
      out.push({
        check: "wireguard",
        problem: `${dev} lacks ${name}`,
        fix: `${set} (the agent adds it within its reconcile interval; if it stays, read its log)`,
      });
      continue;
    }
    const diffs: string[] = [];
    if (ep(h.endpoint) !== ep(w.endpoint)) {
      diffs.push(`endpoint ${ep(h.endpoint)}, want ${ep(w.endpoint)}`);
    }
    if (cidrs(h.allowedIPs) !== cidrs(w.allowedIPs)) {
      diffs.push(`allowed IPs ${cidrs(h.allowedIPs) || "(none)"}, want ${cidrs(w.allowedIPs)}`);
    }
    if (diffs.length) {
      out.push({
        check: "wireguard",
        problem: `${dev} has ${name} with ${diffs.join(" and ")}`,
        fix: set,
      });
      continue;
    }
    const age = h.lastHandshakeSec ? i.nowSec - h.lastHandshakeSec : Infinity;
    if (age > WG_HANDSHAKE_STALE_SEC) {
      out.push({
        check: "wireguard",
        problem: `${dev} has had no handshake with ${name} ` +
          (h.lastHandshakeSec ? `for ${age} s` : "since it started"),
        fix:
          `check UDP ${i.port} reachability both ways: to ${ep(w.endpoint)} from this node and ` +
          `to this node's port ${i.port} from ${w.publicIP} (host firewall, security group, NAT)`,
      });
    }
  }
  for (const [key, h] of have) {
    if (wanted.has(key)) continue;
    out.push({
      check: "wireguard",
      problem: `${dev} has stale peer ${key} (endpoint ${ep(h.endpoint)}, allowed IPs ` +
        `${cidrs(h.allowedIPs) || "(none)"}) for which no lease exists`,
      fix: `wg set ${dev} peer ${key} remove`,
    });
  }
  return out;
}
