// Step two of a `twill agent` start: bring up the embedded store's side of this node as decided,
// by creating a cluster (--init), joining one (--join) or restarting what the data dir holds.
import { join } from "node:path";
import { createApiApp } from "../store/api/app.ts";
import { StoreMember, writePeers } from "../store/member/member.ts";
import {
  generateClusterId,
  generateToken,
  type MemberIdentity,
  writeIdentity,
  writeToken,
} from "../store/member/identity.ts";
import { requestJoin } from "../store/member/join.ts";
import type { Logger } from "../log.ts";
import { resolveAdvertise } from "../net/address.ts";
import type { DaemonConfig } from "./config.ts";
import type { StartDecision } from "./start.ts";

/** A decision that has this node use the embedded store. */
export type StoreStart = Extract<StartDecision, { kind: "init" | "join" | "restart" | "client" }>;

/** The node's store side: its member (none for a plain client), the cluster token, and the store
 *  endpoints a plain client talks to. */
export interface StoreSide {
  member?: StoreMember;
  token: string;
  clientEndpoints: string[];
}

export async function startStore(
  cfg: DaemonConfig,
  start: StoreStart,
  logger: Logger,
): Promise<StoreSide> {
  switch (start.kind) {
    case "init":
      return await createCluster(cfg, start.token, logger);
    case "join":
      return await joinCluster(cfg, start.seeds, start.token, logger);
    case "restart": {
      const member = await startMember(cfg, start.identity, start.token, logger, {});
      return { member, token: start.token, clientEndpoints: [] };
    }
    case "client":
      // A plain client of the cluster (admitted when the store had members enough).
      logger("info", "restarting_as_client", { endpoints: start.endpoints.join(",") });
      return { token: start.token, clientEndpoints: start.endpoints };
  }
}

async function createCluster(
  cfg: DaemonConfig,
  given: string | undefined,
  logger: Logger,
): Promise<StoreSide> {
  const token = given ?? generateToken();
  const netConfig = await readNetConfig(cfg);
  const id: MemberIdentity = {
    clusterId: generateClusterId(),
    nodeId: 1,
    name: cfg.name,
    advertise: resolveAdvertise(cfg),
  };
  await writeToken(cfg.dataDir, token);
  const member = await startMember(cfg, id, token, logger, { bootstrap: true });
  await writeIdentity(cfg.dataDir, id);
  if (!given) {
    console.log(`twill: generated cluster token ${token} (kept in ${join(cfg.dataDir, "token")})`);
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
      key: enc.encode(`${cfg.etcdPrefix}/config`),
      value: enc.encode(netConfig),
      lease: "0",
      prevKv: false,
    });
    logger("info", "network_config_written", {
      key: `${cfg.etcdPrefix}/config`,
      from: cfg.netConfigPath,
    });
  }
  return { member, token, clientEndpoints: [] };
}

async function joinCluster(
  cfg: DaemonConfig,
  seeds: string[],
  token: string,
  logger: Logger,
): Promise<StoreSide> {
  const advertise = resolveAdvertise(cfg);
  const resp = await requestJoin(seeds, token, {
    address: advertise,
    name: cfg.name,
    wantMember: cfg.storeOnly,
    joinId: crypto.randomUUID(),
  }, logger);
  if (resp.role === "client") {
    const clientEndpoints = resp.members.map((m) => m.address).filter((a) => a !== "");
    await writeToken(cfg.dataDir, token);
    await writePeers(cfg.dataDir, resp.members);
    await writeIdentity(cfg.dataDir, {
      clusterId: resp.clusterId,
      nodeId: 0,
      name: cfg.name,
      advertise,
    });
    logger("info", "joined_as_client", {
      cluster: resp.clusterId,
      endpoints: clientEndpoints.join(","),
    });
    return { token, clientEndpoints };
  }
  const id: MemberIdentity = {
    clusterId: resp.clusterId,
    nodeId: resp.nodeId,
    name: cfg.name,
    advertise,
  };
  await writeToken(cfg.dataDir, token);
  await writeIdentity(cfg.dataDir, id);
  const member = await startMember(cfg, id, token, logger, { initialMembers: resp.members });
  logger("info", "joined", { cluster: resp.clusterId, node: resp.nodeId, role: resp.role });
  return { member, token, clientEndpoints: [] };
}

function startMember(
  cfg: DaemonConfig,
  identity: MemberIdentity,
  token: string,
  logger: Logger,
  extra: Partial<Parameters<typeof StoreMember.start>[0]>,
): Promise<StoreMember> {
  return StoreMember.start({
    dataDir: cfg.dataDir,
    listen: cfg.listen,
    identity,
    token,
    voters: cfg.voters,
    deadVoterTimeoutMs: cfg.deadVoterTimeoutMs,
    snapshotCount: cfg.snapshotCount,
    retainRevisions: cfg.autoCompactionRetention,
    tickMs: cfg.tickMs,
    electionTick: cfg.electionTicks,
    logger,
    createApiApp: (kv, t) => createApiApp(kv, { token: t }),
    ...extra,
  });
}

/** The network config to write at --init: the file's text, or undefined when the default path
 *  does not exist. One line when it cannot be read or is not JSON. */
async function readNetConfig(cfg: DaemonConfig): Promise<string | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(cfg.netConfigPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && !cfg.netConfigPathGiven) return undefined;
    throw new Error(`cannot read the network config ${cfg.netConfigPath}: ${(e as Error).message}`);
  }
  try {
    JSON.parse(text);
  } catch (e) {
    throw new Error(
      `${cfg.netConfigPath} is not valid JSON (${
        (e as Error).message
      }); fix it and run --init again`,
    );
  }
  return text.trim();
}
