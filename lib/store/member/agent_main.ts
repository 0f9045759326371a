// What `twill agent` does once its flags are parsed: decide from the data dir and the flags
// whether this node creates a cluster (--init), enters one (--join) or restarts (neither), start
// the store member, then run the network agent against it (unless --store-only). With
// --etcd-endpoints there is no embedded store: the network agent talks to that etcd.
import { join } from "node:path";
import type { AgentFlags } from "../../../cmd/agent.ts";
import { createApiApp } from "../api/app.ts";
import { readPeers, StoreMember, writePeers } from "./member.ts";
import {
  generateClusterId,
  generateToken,
  type MemberIdentity,
  readIdentity,
  readToken,
  writeIdentity,
  writeToken,
} from "./identity.ts";
import { requestJoin } from "./join.ts";
import { type Logger, makeLogger } from "../../log.ts";
import { joinHostPort, splitHostPort } from "./address.ts";

export async function runAgentWithFlags(f: AgentFlags, signal: AbortSignal): Promise<number> {
  const logger = makeLogger({ context: { member: f.name } });
  if (f.etcdEndpoints.length > 0) {
    const token = f.token ?? (f.tokenFile ? await readTokenFile(f.tokenFile) : undefined);
    logger("info", "external_etcd", { endpoints: f.etcdEndpoints.join(","), prefix: f.etcdPrefix });
    await runNetwork(f, f.etcdEndpoints, token, signal, logger);
    return 0;
  }

  const identity = await readIdentity(f.dataDir);
  let member: StoreMember | undefined;
  let token: string;
  let clientEndpoints: string[] = [];

  if (f.init && identity) {
    throw new Error(
      `${f.dataDir} already holds cluster ${identity.clusterId} (this node is member ${identity.nodeId}); ` +
        `run without --init to restart it, or remove ${f.dataDir} to start over`,
    );
  }
  await lockDataDir(f.dataDir);

  if (f.init) {
    if (identity) {
      throw new Error(
        `${f.dataDir} already holds cluster ${identity.clusterId} (this node is member ${identity.nodeId}); ` +
          `run without --init to restart it, or remove ${f.dataDir} to start over`,
      );
    }
    if (await hasRaftLog(f.dataDir)) {
      throw new Error(
        `${f.dataDir} holds a Raft log but no member.json; refusing to create a second cluster — remove ${f.dataDir} to start over`,
      );
    }
    const given = f.token ?? (f.tokenFile ? await readTokenFile(f.tokenFile) : undefined);
    token = given ?? generateToken();
    const netConfig = await readNetConfig(f);
    const id: MemberIdentity = {
      clusterId: generateClusterId(),
      nodeId: 1,
      name: f.name,
      advertise: resolveAdvertise(f),
    };
    await writeToken(f.dataDir, token);
    member = await startMember(f, id, token, logger, { bootstrap: true });
    await writeIdentity(f.dataDir, id);
    if (!given) {
      console.log(`twill: generated cluster token ${token} (kept in ${join(f.dataDir, "token")})`);
    }
    logger("info", "cluster_created", {
      cluster: id.clusterId,
      node: id.nodeId,
      advertise: id.advertise,
    });
    await member.ready();
    if (netConfig !== undefined) {
      const enc = new TextEncoder();
      await member.kv.write({
        op: "put",
        requestId: `init-config-${id.clusterId}`,
        key: enc.encode(`${f.etcdPrefix}/config`),
        value: enc.encode(netConfig),
        lease: "0",
        prevKv: false,
      });
      logger("info", "network_config_written", {
        key: `${f.etcdPrefix}/config`,
        from: f.netConfigPath,
      });
    }
  } else if (identity) {
    if (f.join.length > 0) {
      logger("info", "join_ignored", {
        detail: `${f.dataDir} already holds member ${identity.nodeId}; restarting it`,
      });
    }
    const kept = await readToken(f.dataDir);
    const given = f.token ?? (f.tokenFile ? await readTokenFile(f.tokenFile) : undefined);
    if (kept && given && kept !== given) {
      throw new Error(
        `the token given differs from the one kept in ${
          join(f.dataDir, "token")
        }; drop --token to restart with the kept one`,
      );
    }
    const t = kept ?? given;
    if (!t) {
      throw new Error(
        `no token in ${join(f.dataDir, "token")}; give the cluster token with --token`,
      );
    }
    token = t;
    if (identity.nodeId === 0) {
      // A plain client of the cluster (admitted when the store had members enough).
      clientEndpoints = (await readPeers(f.dataDir)).map((m) => m.address).filter((a) => a !== "");
      if (clientEndpoints.length === 0) {
        throw new Error(
          `${f.dataDir} says this node is a client but lists no members; remove it and re-join`,
        );
      }
      logger("info", "restarting_as_client", { endpoints: clientEndpoints.join(",") });
    } else {
      member = await startMember(f, identity, token, logger, {});
    }
  } else if (f.join.length > 0) {
    const given = f.token ?? (f.tokenFile ? await readTokenFile(f.tokenFile) : undefined);
    if (!given) throw new Error("--join needs the cluster token: give --token T or --token-file F");
    token = given;
    const advertise = resolveAdvertise(f);
    const resp = await requestJoin(f.join, token, {
      address: advertise,
      name: f.name,
      wantMember: f.storeOnly,
      joinId: crypto.randomUUID(),
    }, logger);
    if (resp.role === "client") {
      clientEndpoints = resp.members.map((m) => m.address).filter((a) => a !== "");
      await writeToken(f.dataDir, token);
      await writePeers(f.dataDir, resp.members);
      await writeIdentity(f.dataDir, {
        clusterId: resp.clusterId,
        nodeId: 0,
        name: f.name,
        advertise,
      });
      logger("info", "joined_as_client", {
        cluster: resp.clusterId,
        endpoints: clientEndpoints.join(","),
      });
    } else {
      const id: MemberIdentity = {
        clusterId: resp.clusterId,
        nodeId: resp.nodeId,
        name: f.name,
        advertise,
      };
      await writeToken(f.dataDir, token);
      await writeIdentity(f.dataDir, id);
      member = await startMember(f, id, token, logger, { initialMembers: resp.members });
      logger("info", "joined", { cluster: resp.clusterId, node: resp.nodeId, role: resp.role });
    }
  } else {
    throw new Error(
      `${f.dataDir} holds no cluster: run with --init to start one, or --join HOST:PORT --token T to enter one`,
    );
  }

  try {
    // A member that cannot go on (damaged log, broken invariant) ends the agent with an error.
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    if (signal.aborted) stop.abort();
    const failure = member
      ? member.whenFailed().then((e) => {
        stop.abort();
        return e;
      })
      : new Promise<Error>(() => {});
    try {
      if (f.storeOnly) {
        await Promise.race([
          new Promise<void>((resolve) => {
            if (stop.signal.aborted) resolve();
            stop.signal.addEventListener("abort", () => resolve(), { once: true });
          }),
          failure,
        ]);
      } else {
        const endpoints = member ? [member.opts.identity.advertise] : clientEndpoints;
        await Promise.race([runNetwork(f, endpoints, token, stop.signal, logger, member), failure]);
      }
      const err = await Promise.race([failure, Promise.resolve(undefined)]);
      if (err) throw new Error(`the store member stopped: ${err.message}`);
      return 0;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  } finally {
    if (member) {
      await member.close();
      logger("info", "store_member_stopped", {});
    }
  }
}

function startMember(
  f: AgentFlags,
  identity: MemberIdentity,
  token: string,
  logger: Logger,
  extra: Partial<Parameters<typeof StoreMember.start>[0]>,
): Promise<StoreMember> {
  return StoreMember.start({
    dataDir: f.dataDir,
    listen: f.listen,
    identity,
    token,
    voters: f.voters,
    deadVoterTimeoutMs: f.deadVoterTimeoutMs,
    snapshotCount: f.snapshotCount,
    retainRevisions: f.autoCompactionRetention,
    tickMs: f.tickMs,
    electionTick: f.electionTicks,
    logger,
    createApiApp: (kv, t) => createApiApp(kv, { token: t }),
    ...extra,
  });
}

async function runNetwork(
  f: AgentFlags,
  endpoints: string[],
  token: string | undefined,
  signal: AbortSignal,
  logger: Logger,
  member?: StoreMember,
): Promise<void> {
  const { runNetworkAgent, withDefaults } = await import("../../agent/run.ts");
  const { EtcdClient } = await import("../../etcd/client.ts");
  const urls = endpoints.map((e) => (e.includes("://") ? e : `http://${e}`));
  const kv = new EtcdClient({ endpoints: urls, token });
  const opts = withDefaults({
    prefix: f.etcdPrefix,
    iface: f.iface,
    publicIp: f.publicIp ?? "",
    ipMasq: f.ipMasq,
    subnetFile: f.subnetFile,
    healthzIp: f.healthzIp,
    healthzPort: f.healthzPort,
    subnetLeaseRenewMarginMinutes: f.subnetLeaseRenewMarginMinutes,
    subnetLeaseTtlSeconds: Math.round(f.subnetLeaseTtlMs / 1000),
    dataDir: f.dataDir,
    nodeName: f.name,
    storeStatus: member
      ? () => {
        const s = member.status();
        return { role: s.role, term: s.term, commitIndex: s.commit, appliedIndex: s.applied };
      }
      : undefined,
  });
  logger("info", "network_agent_starting", { endpoints: urls.join(",") });
  await runNetworkAgent(opts, kv, signal);
}

async function readTokenFile(path: string): Promise<string> {
  try {
    const t = (await Deno.readTextFile(path)).trim();
    if (t === "") throw new Error("it is empty");
    return t;
  } catch (e) {
    throw new Error(`cannot read the token from ${path}: ${(e as Error).message}`);
  }
}

async function readNetConfig(f: AgentFlags): Promise<string | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(f.netConfigPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && !f.netConfigPathGiven) return undefined;
    throw new Error(`cannot read the network config ${f.netConfigPath}: ${(e as Error).message}`);
  }
  try {
    JSON.parse(text);
  } catch (e) {
    throw new Error(
      `${f.netConfigPath} is not valid JSON (${(e as Error).message}); fix it and run --init again`,
    );
  }
  return text.trim();
}

async function hasRaftLog(dataDir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(join(dataDir, "raft", "wal"))) return true;
  } catch {
    // no such dir
  }
  return false;
}

/** The address other members reach this one at: --advertise, a specific --listen host,
 *  --public-ip, the first --iface, the default-route interface, else the first ordinary
 *  interface (never a pod-network device such as flannel.1 or cni0). */
export function resolveAdvertise(f: AgentFlags): string {
  if (f.advertise) return f.advertise;
  const [host, port] = splitHostPort(f.listen);
  if (host !== "0.0.0.0" && host !== "::") return joinHostPort(host, port);
  if (f.publicIp) return joinHostPort(f.publicIp, port);
  const v4 = Deno.networkInterfaces().filter((i) => i.family === "IPv4");
  const ifaceOf = (name: string) => v4.find((i) => i.name === name)?.address;
  for (const want of f.iface) {
    if (/^\d+\.\d+\.\d+\.\d+$/.test(want)) return joinHostPort(want, port);
    const a = ifaceOf(want);
    if (a) return joinHostPort(a, port);
  }
  const viaDefault = defaultRouteInterface();
  const a = viaDefault ? ifaceOf(viaDefault) : undefined;
  if (a) return joinHostPort(a, port);
  const ordinary = v4.filter((i) =>
    !i.address.startsWith("127.") && !/^(flannel|cni|docker|veth|cali|virbr|kube)/.test(i.name)
  );
  if (ordinary.length === 0) {
    throw new Error(
      `cannot tell which address peers reach this node at; give --advertise HOST:PORT`,
    );
  }
  return joinHostPort(ordinary[0].address, port);
}

/** The interface of the IPv4 default route, from /proc/net/route. */
function defaultRouteInterface(): string | undefined {
  try {
    const lines = Deno.readTextFileSync("/proc/net/route").split("\n").slice(1);
    for (const line of lines) {
      const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
      if (dest === "00000000" && mask === "00000000") return iface;
    }
  } catch {
    // not Linux, or no procfs
  }
  return undefined;
}

/** Holds an exclusive lock on <data-dir>/lock for the life of the process, so two agents never
 *  share one data dir. Refuses at once when another process holds it. */
async function lockDataDir(dataDir: string): Promise<void> {
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = await Deno.open(join(dataDir, "lock"), { read: true, write: true, create: true });
  const got = await Promise.race([
    file.lock(true).then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 500)),
  ]);
  if (!got) {
    throw new Error(
      `${dataDir} is in use by another twill agent; stop it first or give this one its own --data-dir`,
    );
  }
  // Kept open (and locked) until the process exits.
  (globalThis as { __twillDataDirLock?: Deno.FsFile }).__twillDataDirLock = file;
}
