// What a `twill agent` process is asked to do. cmd/agent.ts fills it from flags (and their
// FLANNELD_<FLAG> fallback); everything in lib/daemon/ works from this type alone.

export interface DaemonConfig {
  /** --init: create a cluster with this node as its only voter. */
  init: boolean;
  /** --join: members to join through (HOST:PORT). */
  join: string[];
  token?: string;
  tokenFile?: string;
  netConfigPath: string;
  /** True when --net-config-path was given explicitly (then a missing file is an error). */
  netConfigPathGiven: boolean;
  name: string;
  dataDir: string;
  listen: string;
  advertise?: string;
  voters: number;
  iface: string[];
  publicIp?: string;
  ipMasq: boolean;
  subnetFile: string;
  healthzIp: string;
  healthzPort: number;
  subnetLeaseRenewMarginMinutes: number;
  subnetLeaseTtlMs: number;
  /** Run a store member with no network backend. */
  storeOnly: boolean;
  /** Non-empty: no embedded store; the network agent talks to this etcd. */
  etcdEndpoints: string[];
  etcdPrefix: string;
  /** External etcd over TLS (Flannel's --etcd-cafile/-certfile/-keyfile): PEM file paths. */
  etcdCaFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
  /** External etcd's own user auth (Flannel's --etcd-username/--etcd-password). */
  etcdUsername?: string;
  etcdPassword?: string;
  deadVoterTimeoutMs: number;
  /** Take a state-machine snapshot and compact the log every this many applied entries. */
  snapshotCount: number;
  /** Store revisions of history the leader keeps before compacting older ones (0: never). */
  autoCompactionRetention: number;
  /** Raft tick length in milliseconds. */
  tickMs: number;
  /** Election timeout in ticks (randomised in [n, 2n)); heartbeats go every tick. */
  electionTicks: number;
}
