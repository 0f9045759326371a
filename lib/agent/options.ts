// What the network agent needs to know, as parsed by cmd/agent.ts (which owns all flag parsing).
// Defaults follow Flannel's flags.

/** Store health figures for /metrics and /healthz, supplied by whoever runs the store. */
export interface StoreStatus {
  /** "leader" | "follower" | "learner" | "candidate" | "client" (external etcd) … */
  role: string;
  term: number;
  commitIndex: number;
  appliedIndex?: number;
}

export interface NetworkAgentOptions {
  /** Key prefix in the store (Flannel's --etcd-prefix). Default "/coreos.com/network". */
  prefix: string;
  /** --iface: interface names or addresses, tried in order. Empty = default-route interface. */
  iface: string[];
  /** --public-ip: the address other nodes use to reach this one. "" = the interface's address. */
  publicIp: string;
  /** --ip-masq: install masquerade rules for traffic leaving the cluster network. */
  ipMasq: boolean;
  /** --subnet-file. Default "/run/flannel/subnet.env". */
  subnetFile: string;
  /** --healthz-ip, --healthz-port. Defaults "0.0.0.0" and 9099. Port 0 disables the server. */
  healthzIp: string;
  healthzPort: number;
  /** --subnet-lease-renew-margin in minutes. Default 60. */
  subnetLeaseRenewMarginMinutes: number;
  /** --subnet-lease-ttl in seconds. Default 86400 (24 h). */
  subnetLeaseTtlSeconds: number;
  /** Data dir, where a backend keeps state that must survive restarts. Default "/var/lib/twill". */
  dataDir: string;
  /** This node's name (for logs and metrics labels). */
  nodeName: string;
  /** Optional: the embedded store's role/term/commit index for /metrics. */
  storeStatus?: () => StoreStatus | Promise<StoreStatus>;
  /** Optional: how often the reconcile loop runs, in ms. Default 5000. */
  reconcileIntervalMs?: number;
}

export const NETWORK_AGENT_DEFAULTS: NetworkAgentOptions = {
  prefix: "/coreos.com/network",
  iface: [],
  publicIp: "",
  ipMasq: false,
  subnetFile: "/run/flannel/subnet.env",
  healthzIp: "0.0.0.0",
  healthzPort: 9099,
  subnetLeaseRenewMarginMinutes: 60,
  subnetLeaseTtlSeconds: 24 * 60 * 60,
  dataDir: "/var/lib/twill",
  nodeName: "",
  reconcileIntervalMs: 5000,
};

/** Fills the unset fields with the defaults. */
export function withDefaults(partial: Partial<NetworkAgentOptions>): NetworkAgentOptions {
  const out = { ...NETWORK_AGENT_DEFAULTS };
  for (const [k, v] of Object.entries(partial)) {
    if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
