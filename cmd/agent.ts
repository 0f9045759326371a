// `twill agent`: the long-running daemon of every node. This file owns the whole command line
// (flags, FLANNELD_<FLAG> environment fallback, --init / --join / restart) and maps it onto a
// DaemonConfig; lib/daemon/ decides how to start and runs the store member and the network agent.
import { parseArgs } from "node:util";
import type { DaemonConfig } from "../lib/daemon/config.ts";
import { parseDuration } from "../lib/daemon/duration.ts";
import { splitHostPort } from "../lib/net/address.ts";

/** The parsed command line: the daemon's config, plus --help. */
export interface AgentFlags extends DaemonConfig {
  help: boolean;
}

type FlagKind = "boolean" | "string" | "list" | "int" | "duration";
interface FlagSpec {
  name: string;
  kind: FlagKind;
  default?: string;
  help: string;
  hidden?: boolean;
}

/** Every flag of `twill agent`, with Flannel's name where Flannel has the flag. */
export const AGENT_FLAGS: FlagSpec[] = [
  { name: "init", kind: "boolean", help: "create a new cluster with this node as its only voter" },
  { name: "join", kind: "list", help: "HOST:PORT[,HOST:PORT...] of members to join through" },
  {
    name: "token",
    kind: "string",
    help:
      "--init: the join secret (else generated); --join: the join token K10…::… from `twill ctl join-token`",
  },
  { name: "token-file", kind: "string", help: "read --token's value from this file" },
  {
    name: "net-config-path",
    kind: "string",
    default: "/etc/kube-flannel/net-conf.json",
    help: "network config (Flannel's net-conf.json), read once at --init",
  },
  { name: "name", kind: "string", help: "this node's name (default: the host name)" },
  {
    name: "data-dir",
    kind: "string",
    default: "/var/lib/twill",
    help: "Raft log, snapshots, identity",
  },
  {
    name: "listen",
    kind: "string",
    default: "0.0.0.0:8473",
    help: "store API address (clients and peers)",
  },
  { name: "advertise", kind: "string", help: "address other members reach this one at" },
  { name: "voters", kind: "int", default: "3", help: "how many members vote (1..7)" },
  {
    name: "iface",
    kind: "list",
    help: "interface (name or address) for inter-node traffic; repeatable",
  },
  { name: "public-ip", kind: "string", help: "IP other nodes reach this node's pods through" },
  { name: "ip-masq", kind: "boolean", help: "masquerade traffic leaving the pod network" },
  {
    name: "subnet-file",
    kind: "string",
    default: "/run/flannel/subnet.env",
    help: "where to write subnet.env",
  },
  { name: "healthz-ip", kind: "string", default: "0.0.0.0", help: "health/metrics listen IP" },
  { name: "healthz-port", kind: "int", default: "9099", help: "health/metrics listen port" },
  {
    name: "subnet-lease-renew-margin",
    kind: "int",
    default: "60",
    help: "renew the subnet lease this many minutes before it expires",
  },
  { name: "subnet-lease-ttl", kind: "duration", default: "24h", help: "subnet lease lifetime" },
  { name: "store-only", kind: "boolean", help: "run a store member with no network backend" },
  {
    name: "etcd-endpoints",
    kind: "list",
    help: "use this external etcd instead of the embedded store",
  },
  {
    name: "etcd-prefix",
    kind: "string",
    default: "/coreos.com/network",
    help: "key prefix of the network",
  },
  {
    name: "etcd-cafile",
    kind: "string",
    help: "CA (PEM) that signs the external etcd's certificate (default: the system's CAs)",
  },
  { name: "etcd-certfile", kind: "string", help: "client certificate (PEM) for the external etcd" },
  { name: "etcd-keyfile", kind: "string", help: "private key (PEM) of --etcd-certfile" },
  { name: "etcd-username", kind: "string", help: "user for the external etcd's auth" },
  {
    name: "etcd-password",
    kind: "string",
    help: "password of --etcd-username (prefer FLANNELD_ETCD_PASSWORD: argv is visible)",
  },
  {
    name: "dead-voter-timeout",
    kind: "duration",
    default: "30s",
    help: "replace a voter unreachable this long by a caught-up learner",
  },
  {
    name: "snapshot-count",
    kind: "int",
    default: "10000",
    help: "snapshot the store every this many applied entries",
    hidden: true,
  },
  {
    name: "auto-compaction-retention",
    kind: "int",
    default: "10000",
    help: "store revisions of history kept (older ones are compacted; 0: never)",
    hidden: true,
  },
  { name: "tick", kind: "duration", default: "100ms", help: "Raft tick", hidden: true },
  {
    name: "election-ticks",
    kind: "int",
    default: "7",
    help: "election timeout in ticks (randomised in [n, 2n))",
    hidden: true,
  },
  { name: "help", kind: "boolean", help: "show this help" },
];

export function agentUsage(): string {
  const lines = [
    "usage:",
    "  twill agent --init [--net-config-path F] [--token SECRET | --token-file F] [flags]  first node, once",
    "  twill agent --join HOST:PORT[,HOST:PORT...] --token K10... [flags]                every other node",
    "  twill agent [flags]                                      restart: the data dir says who it is",
    "",
    "flags (each may also come from FLANNELD_<FLAG>, e.g. FLANNELD_IP_MASQ=true; the command line wins):",
  ];
  for (const f of AGENT_FLAGS) {
    if (f.hidden) continue;
    const arg = f.kind === "boolean" ? "" : f.kind === "list" ? " V[,V]" : " V";
    const def = f.default !== undefined ? ` (default ${f.default})` : "";
    lines.push(`  --${(f.name + arg).padEnd(34)} ${f.help}${def}`);
  }
  return lines.join("\n");
}

export function envName(flag: string): string {
  return "FLANNELD_" + flag.toUpperCase().replaceAll("-", "_");
}

function parseBool(flag: string, text: string): boolean {
  const t = text.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(t)) return true;
  if (["0", "false", "no", "off", ""].includes(t)) return false;
  throw new Error(`${envName(flag)}="${text}" is not a boolean; use true or false`);
}

function splitList(values: string[]): string[] {
  return values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}

type FlagValue = string | boolean | string[] | undefined;

/** The flags given on the command line, by name (no environment, no defaults). */
function parseCommandLine(args: string[]): Record<string, FlagValue> {
  const options: Record<string, { type: "boolean" | "string"; multiple?: boolean }> = {};
  for (const f of AGENT_FLAGS) {
    options[f.name] = f.kind === "boolean"
      ? { type: "boolean" }
      : { type: "string", multiple: f.kind === "list" };
  }
  // Go's flag package (Flannel's) accepts --ip-masq=false; node's parseArgs does not.
  const explicitBools: Record<string, boolean> = {};
  const rest: string[] = [];
  for (const a of args) {
    const m = /^--([a-z-]+)=(.*)$/.exec(a);
    const spec = m && AGENT_FLAGS.find((f) => f.name === m[1]);
    if (m && spec && spec.kind === "boolean") {
      const v = m[2].toLowerCase();
      if (!["true", "false", "1", "0"].includes(v)) {
        throw new Error(`--${m[1]}=${m[2]}: use true or false`);
      }
      explicitBools[m[1]] = v === "true" || v === "1";
    } else rest.push(a);
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new Error(`${(e as Error).message.split("\n")[0]}; run 'twill agent --help'`);
  }
  if (parsed.positionals.length > 0) {
    throw new Error(`unexpected argument "${parsed.positionals[0]}"; run 'twill agent --help'`);
  }
  return { ...parsed.values, ...explicitBools } as Record<string, FlagValue>;
}

/**
 * Parses `twill agent` arguments. The command line wins over FLANNELD_<FLAG> variables, which win
 * over defaults. Throws an Error with one line saying what is wrong.
 */
export function parseAgentFlags(args: string[], env: Record<string, string>): AgentFlags {
  const cli = parseCommandLine(args);
  const raw = (f: FlagSpec): FlagValue => {
    if (cli[f.name] !== undefined) return cli[f.name];
    const e = env[envName(f.name)];
    if (e !== undefined) {
      if (f.kind === "boolean") return parseBool(f.name, e);
      if (f.kind === "list") return [e];
      return e;
    }
    if (f.default !== undefined) return f.kind === "list" ? [f.default] : f.default;
    return undefined;
  };
  const get = (name: string) => raw(AGENT_FLAGS.find((f) => f.name === name)!);
  const str = (name: string) => get(name) as string | undefined;
  const int = (name: string, min: number, max: number): number => {
    const v = str(name)!;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new Error(`--${name} must be a whole number from ${min} to ${max}, got "${v}"`);
    }
    return n;
  };
  const dur = (name: string): number => {
    try {
      return parseDuration(str(name)!);
    } catch (e) {
      throw new Error(`--${name}: ${(e as Error).message}`);
    }
  };
  const flags: AgentFlags = {
    init: (get("init") as boolean | undefined) ?? false,
    join: splitList((get("join") as string[] | undefined) ?? []),
    token: str("token"),
    tokenFile: str("token-file"),
    netConfigPath: str("net-config-path")!,
    netConfigPathGiven: cli["net-config-path"] !== undefined ||
      env[envName("net-config-path")] !== undefined,
    name: str("name") ?? Deno.hostname(),
    dataDir: str("data-dir")!,
    listen: str("listen")!,
    advertise: str("advertise"),
    voters: int("voters", 1, 7),
    iface: splitList((get("iface") as string[] | undefined) ?? []),
    publicIp: str("public-ip"),
    ipMasq: (get("ip-masq") as boolean | undefined) ?? false,
    subnetFile: str("subnet-file")!,
    healthzIp: str("healthz-ip")!,
    healthzPort: int("healthz-port", 0, 65535),
    subnetLeaseRenewMarginMinutes: int("subnet-lease-renew-margin", 1, 1440 * 365),
    subnetLeaseTtlMs: dur("subnet-lease-ttl"),
    storeOnly: (get("store-only") as boolean | undefined) ?? false,
    etcdEndpoints: splitList((get("etcd-endpoints") as string[] | undefined) ?? []),
    etcdPrefix: str("etcd-prefix")!,
    etcdCaFile: str("etcd-cafile"),
    etcdCertFile: str("etcd-certfile"),
    etcdKeyFile: str("etcd-keyfile"),
    etcdUsername: str("etcd-username"),
    etcdPassword: str("etcd-password"),
    deadVoterTimeoutMs: dur("dead-voter-timeout"),
    snapshotCount: int("snapshot-count", 1, 1e9),
    autoCompactionRetention: int("auto-compaction-retention", 0, 1e9),
    tickMs: dur("tick"),
    electionTicks: int("election-ticks", 3, 1000),
    help: (get("help") as boolean | undefined) ?? false,
  };
  validate(flags);
  return flags;
}

function validate(f: AgentFlags): void {
  if (f.help) return;
  if (f.init && f.join.length > 0) {
    throw new Error(
      "--init and --join exclude each other: --init starts a cluster, --join enters one",
    );
  }
  if (f.token !== undefined && f.tokenFile !== undefined) {
    throw new Error("give the token once: either --token or --token-file, not both");
  }
  if (f.etcdEndpoints.length > 0 && (f.init || f.join.length > 0 || f.storeOnly)) {
    throw new Error(
      "--etcd-endpoints means no embedded store; it cannot be combined with --init, --join or --store-only",
    );
  }
  for (const a of [f.listen, ...(f.advertise ? [f.advertise] : []), ...f.join]) {
    splitHostPort(a);
  }
  if (f.tickMs < 1) throw new Error("--tick must be at least 1ms");
}

export async function runAgent(args: string[], env: Record<string, string>): Promise<number> {
  let flags: AgentFlags;
  try {
    flags = parseAgentFlags(args, env);
  } catch (e) {
    console.error(`twill agent: ${(e as Error).message}`);
    return 2;
  }
  if (flags.help) {
    console.log(agentUsage());
    return 0;
  }
  const { runDaemon } = await import("../lib/daemon/daemon.ts");
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    return await runDaemon(flags, abort.signal);
  } catch (e) {
    console.error(`twill agent: ${(e as Error).message}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGTERM", onSignal);
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}
