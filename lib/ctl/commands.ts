// `twill ctl` commands. Each returns an exit code and writes to the given output functions, so
// tests can call them without a process.
import type { MembersResponse, SelfStatus } from "../store/member/peer_routes.ts";
import { ClusterApi, CtlError, JOIN_SECRET_KEY } from "./cluster_api.ts";
import { ago, inDuration, table } from "./table.ts";
import { certificateSha256, parseCertificatePem } from "../pki/ca.ts";
import { formatJoinToken, generateJoinSecret } from "../pki/join_token.ts";

export interface CtlOptions {
  server: string;
  /** The credential sent as Bearer (never printed). */
  token?: string;
  /** The cluster CA (PEM) the server's certificate is verified against; the join token pins it. */
  caPem?: string;
  json: boolean;
  prefix: string;
  /** host:port of this node's health server (for readiness in `status`). */
  healthz?: string;
  /** This node's data dir (`twill ctl check` reads a userspace WireGuard device's socket). */
  dataDir?: string;
  out: (line: string) => void;
  err: (line: string) => void;
  signal?: AbortSignal;
}

export const CTL_COMMANDS =
  "status|members|leases|config get|config set F|get K|put K V|del K|watch PREFIX|check [F]|" +
  "join-token|rotate-join-token|remove-node NAME";

/** The cluster API as these options reach it: TLS verified by the CA when there is one. */
function apiOf(o: CtlOptions): ClusterApi {
  return ClusterApi.of(o);
}

/** The join token for a secret: K10<sha256 of the CA we verify the server with>::secret. */
function joinTokenOf(o: CtlOptions, secret: string): string {
  if (!o.caPem) {
    throw new CtlError("a join token names the cluster CA: give --data-dir of a node", 2);
  }
  return formatJoinToken({ caSha256: certificateSha256(parseCertificatePem(o.caPem)), secret });
}

export async function joinToken(o: CtlOptions): Promise<number> {
  const kvs = await apiOf(o).range(JOIN_SECRET_KEY);
  if (kvs.length === 0) {
    o.err(`no join secret at ${JOIN_SECRET_KEY}; run 'twill ctl rotate-join-token' to make one`);
    return 1;
  }
  const token = joinTokenOf(o, kvs[0].value);
  o.out(o.json ? JSON.stringify({ joinToken: token }) : token);
  return 0;
}

/** A new join secret: the old one is refused from now on; nodes already in keep working. */
export async function rotateJoinToken(o: CtlOptions): Promise<number> {
  const token = joinTokenOf(o, generateJoinSecret());
  await apiOf(o).put(JOIN_SECRET_KEY, token.slice(token.indexOf("::") + 2));
  o.out(o.json ? JSON.stringify({ joinToken: token }) : token);
  return 0;
}

export async function removeNode(o: CtlOptions, name: string): Promise<number> {
  const removed = await apiOf(o).removeNode(name);
  o.out(
    o.json ? JSON.stringify({ name, ...removed }) : `removed ${name}: ${removed.credentials} ` +
      `credential(s) revoked, ${removed.leases} lease(s) deleted` +
      (removed.member ? `, member ${removed.member} removed from the store` : ""),
  );
  return 0;
}

export interface MemberRow {
  id: number;
  name: string;
  address: string;
  role: string;
  term: number | null;
  applied: number | null;
  match: number;
  lastContactMs: number | null;
  reachable: boolean;
  /** twill's version on the member, from its /raft/status; null when it did not answer. */
  version: string | null;
}

export interface StatusReport {
  clusterId: string;
  leader: number;
  term: number;
  commit: number;
  members: MemberRow[];
  leases: LeaseRow[];
  thisNode: { server: string; role: string; ready: string };
}

async function collectMembers(
  api: ClusterApi,
): Promise<{ view: MembersResponse; rows: MemberRow[] }> {
  const view = await api.raftMembers();
  const rows = await Promise.all(view.members.map(async (m): Promise<MemberRow> => {
    let self: SelfStatus | undefined;
    try {
      self = await api.raftStatus(m.address, 1500);
    } catch {
      self = undefined;
    }
    return {
      id: m.id,
      name: m.name,
      address: m.address,
      role: m.isLeader ? "leader" : m.kind === "learner" ? "learner" : "follower",
      term: self?.term ?? null,
      applied: self?.applied ?? null,
      match: m.match,
      lastContactMs: m.lastContactMs,
      reachable: self !== undefined,
      version: self?.version ?? null,
    };
  }));
  return { view, rows };
}

async function readiness(healthz: string | undefined): Promise<string> {
  if (!healthz) return "unknown";
  try {
    const res = await fetch(`http://${healthz}/readyz`, { signal: AbortSignal.timeout(1500) });
    const body = (await res.text()).trim().split("\n")[0].slice(0, 80);
    return res.ok ? "ready" : `not ready (${res.status}${body ? `: ${body}` : ""})`;
  } catch {
    return `unknown (no health server at ${healthz})`;
  }
}

export async function status(o: CtlOptions): Promise<number> {
  const api = apiOf(o);
  const self = await api.raftStatus();
  const { view, rows } = await collectMembers(api);
  const report: StatusReport = {
    clusterId: view.clusterId,
    leader: view.leader,
    term: view.term,
    commit: view.commit,
    members: rows,
    leases: await collectLeases(api, o.prefix, view),
    thisNode: { server: o.server, role: self.role, ready: await readiness(o.healthz) },
  };
  if (o.json) {
    o.out(JSON.stringify(report, null, 2));
    return 0;
  }
  o.out(
    `cluster ${report.clusterId}  leader ${report.leader}  term ${report.term}  commit ${report.commit}`,
  );
  o.out(memberTable(rows));
  o.out("");
  o.out(leaseTable(report.leases, o.prefix));
  o.out("");
  o.out(`this node (${o.server}): ${self.role}, applied ${self.applied}, ${report.thisNode.ready}`);
  return 0;
}

function memberTable(rows: MemberRow[]): string {
  return table(
    ["ID", "NAME", "ADDRESS", "ROLE", "VERSION", "TERM", "APPLIED", "MATCH", "LAST CONTACT"],
    rows.map((r) => [
      r.id,
      r.name || "-",
      r.address,
      r.reachable ? r.role : `${r.role} (unreachable)`,
      r.version ?? "-",
      r.term ?? "-",
      r.applied ?? "-",
      r.match,
      r.role === "leader" ? "-" : ago(r.lastContactMs),
    ]),
  );
}

export async function members(o: CtlOptions): Promise<number> {
  const { rows } = await collectMembers(apiOf(o));
  o.out(o.json ? JSON.stringify(rows, null, 2) : memberTable(rows));
  return 0;
}

/** "10.5.52.0-24&fd00::-64" → "10.5.52.0/24,fd00::/64" */
export function subnetOfKey(key: string): string {
  const last = key.slice(key.lastIndexOf("/") + 1);
  return last.split("&").map((p) => p.replace(/-(\d+)$/, "/$1")).join(",");
}

export interface LeaseRow {
  subnet: string;
  node: string;
  publicIp: string;
  publicIpv6: string;
  backend: string;
  vtepMac: string;
  lease: string;
  expiresInSeconds: number | null;
}

/** The subnet leases under `prefix`, a node named where its public IP is a member's address. */
async function collectLeases(
  api: ClusterApi,
  prefix: string,
  view?: MembersResponse,
): Promise<LeaseRow[]> {
  const kvs = await api.range(`${prefix}/subnets/`, { prefix: true });
  // Flannel's lease value names no node: match its public IP to a store member's address.
  const nameByHost = new Map<string, string>();
  try {
    view ??= await api.raftMembers(2000);
    for (const m of view.members) {
      const host = m.address.replace(/^\[/, "").replace(/\]?:\d+$/, "");
      if (m.name) nameByHost.set(host, m.name);
    }
  } catch { /* an external etcd, or no leader: names stay unknown */ }
  return await Promise.all(kvs.map(async (kv): Promise<LeaseRow> => {
    let v: Record<string, unknown> = {};
    try {
      v = JSON.parse(kv.value);
    } catch { /* not Flannel JSON */ }
    const ttl = kv.lease !== "0" ? await api.leaseTtl(kv.lease) : null;
    const data = (v.BackendData ?? {}) as Record<string, unknown>;
    return {
      subnet: subnetOfKey(kv.key),
      node: String(v.Hostname ?? v.NodeName ?? nameByHost.get(String(v.PublicIP ?? "")) ?? ""),
      publicIp: String(v.PublicIP ?? ""),
      publicIpv6: v.PublicIPv6 ? String(v.PublicIPv6) : "",
      backend: String(v.BackendType ?? ""),
      vtepMac: String(data.VtepMAC ?? ""),
      lease: kv.lease,
      expiresInSeconds: ttl,
    };
  }));
}

function leaseTable(rows: LeaseRow[], prefix: string): string {
  if (rows.length === 0) return `no subnet leases under ${prefix}/subnets/`;
  return table(
    ["SUBNET", "NODE", "PUBLIC IP", "BACKEND", "VTEP MAC", "EXPIRES IN"],
    rows.map((r) => [
      r.subnet,
      r.node || "-",
      r.publicIp + (r.publicIpv6 ? `,${r.publicIpv6}` : ""),
      r.backend || "-",
      r.vtepMac || "-",
      inDuration(r.expiresInSeconds),
    ]),
  );
}

export async function leases(o: CtlOptions): Promise<number> {
  const rows = await collectLeases(apiOf(o), o.prefix);
  o.out(o.json ? JSON.stringify(rows, null, 2) : leaseTable(rows, o.prefix));
  return 0;
}

export async function configGet(o: CtlOptions): Promise<number> {
  const kvs = await apiOf(o).range(`${o.prefix}/config`);
  if (kvs.length === 0) {
    o.err(
      `no network config at ${o.prefix}/config; set one with 'twill ctl config set net-conf.json'`,
    );
    return 1;
  }
  o.out(
    o.json
      ? JSON.stringify({ key: kvs[0].key, value: kvs[0].value, modRevision: kvs[0].modRevision })
      : kvs[0].value,
  );
  return 0;
}

export async function configSet(o: CtlOptions, file: string): Promise<number> {
  let text: string;
  try {
    text = (await Deno.readTextFile(file)).trim();
  } catch (e) {
    throw new CtlError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (typeof v !== "object" || v === null || (!v.Network && !v.IPv6Network)) {
      throw new Error('it needs a "Network" (or "IPv6Network") field');
    }
  } catch (e) {
    throw new CtlError(`${file} is not a Flannel network config: ${(e as Error).message}`);
  }
  const rev = await apiOf(o).put(`${o.prefix}/config`, text);
  o.out(
    o.json
      ? JSON.stringify({ revision: rev })
      : `network config written to ${o.prefix}/config (revision ${rev})`,
  );
  return 0;
}

export async function get(o: CtlOptions, key: string): Promise<number> {
  const kvs = await apiOf(o).range(key);
  if (kvs.length === 0) {
    if (o.json) o.out("null");
    else o.err(`${key}: not found`);
    return 1;
  }
  o.out(o.json ? JSON.stringify(kvs[0]) : kvs[0].value);
  return 0;
}

export async function put(o: CtlOptions, key: string, value: string): Promise<number> {
  const rev = await apiOf(o).put(key, value);
  o.out(o.json ? JSON.stringify({ revision: rev }) : `OK (revision ${rev})`);
  return 0;
}

export async function del(o: CtlOptions, key: string): Promise<number> {
  const n = await apiOf(o).del(key);
  o.out(o.json ? JSON.stringify({ deleted: n }) : `deleted ${n}`);
  return n > 0 ? 0 : 1;
}

export async function watch(o: CtlOptions, prefix: string): Promise<number> {
  const signal = o.signal ?? new AbortController().signal;
  for await (const e of apiOf(o).watch(prefix, signal)) {
    o.out(
      o.json
        ? JSON.stringify(e)
        : `${e.type} ${e.kv.key}${e.type === "PUT" ? ` ${e.kv.value}` : ""}`,
    );
  }
  return 0;
}

/** Runs one ctl command line (after the global flags). */
export async function runCommand(o: CtlOptions, argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const need = (n: number, usage: string) => {
    if (rest.length !== n) throw new CtlError(`usage: twill ctl ${usage}`, 2);
  };
  switch (cmd) {
    case "status":
      need(0, "status");
      return await status(o);
    case "members":
      need(0, "members");
      return await members(o);
    case "leases":
      need(0, "leases");
      return await leases(o);
    case "config":
      if (rest[0] === "get" && rest.length === 1) return await configGet(o);
      if (rest[0] === "set" && rest.length === 2) return await configSet(o, rest[1]);
      throw new CtlError("usage: twill ctl config get | twill ctl config set FILE", 2);
    case "get":
      need(1, "get KEY");
      return await get(o, rest[0]);
    case "put":
      need(2, "put KEY VALUE");
      return await put(o, rest[0], rest[1]);
    case "del":
      need(1, "del KEY");
      return await del(o, rest[0]);
    case "watch":
      need(1, "watch PREFIX");
      return await watch(o, rest[0]);
    case "check":
      if (rest.length > 1) throw new CtlError("usage: twill ctl check [SUBNET_FILE]");
      return await (await import("./check_node.ts")).check(o, rest[0]);
    case "join-token":
      need(0, "join-token");
      return await joinToken(o);
    case "rotate-join-token":
      need(0, "rotate-join-token");
      return await rotateJoinToken(o);
    case "remove-node":
      need(1, "remove-node NAME");
      return await removeNode(o, rest[0]);
    case undefined:
      throw new CtlError(`a command is needed: ${CTL_COMMANDS}`, 2);
    default:
      throw new CtlError(`unknown command "${cmd}"; the commands are ${CTL_COMMANDS}`, 2);
  }
}
