// Step two of a `twill agent` start: bring up the embedded store's side of this node as decided,
// by creating a cluster (--init), joining one (--join) or restarting what the data dir holds.
// Every store call goes over TLS verified by the cluster CA, carrying this node's credential.
import { StoreMember, writePeers } from "../store/member/member.ts";
import { generateClusterId, type MemberIdentity, writeIdentity } from "../store/member/identity.ts";
import { requestJoin } from "../store/member/join.ts";
import type { JoinRequest, JoinResponse } from "../store/member/peer_routes.ts";
import type { Logger } from "../log.ts";
import { resolveAdvertise, splitHostPort } from "../net/address.ts";
import { CaPinError, fetchPinnedCa } from "../pki/ca_fetch.ts";
import type { JoinToken } from "../pki/join_token.ts";
import { createCertificateRequest, readMemberCertificate } from "../pki/member_cert.ts";
import { caKeyPath, readTextOrNull } from "../pki/ca.ts";
import type { DaemonConfig } from "./config.ts";
import { readCaPem, resolveCredential } from "./credentials.ts";
import type { StartDecision } from "./start.ts";
import { createFounderTrust, type JoinedTrust, writeJoinedTrust } from "./trust_files.ts";

/** A decision that has this node use the embedded store. */
export type StoreStart = Extract<StartDecision, { kind: "init" | "join" | "restart" | "client" }>;

/** The node's store side: its member (none for a plain client), the node's credential, the
 *  cluster CA, and the store endpoints a plain client talks to. */
export interface StoreSide {
  member?: StoreMember;
  credential: string;
  caPem: string;
  clientEndpoints: string[];
}

export async function startStore(
  cfg: DaemonConfig,
  start: StoreStart,
  logger: Logger,
): Promise<StoreSide> {
  switch (start.kind) {
    case "init":
      return await createCluster(cfg, start.secret, logger);
    case "join":
      return await joinCluster(cfg, start.seeds, start.joinToken, logger);
    case "restart": {
      const { credential, caPem } = await readKept(cfg.dataDir);
      const pki = await readMemberPki(cfg.dataDir, caPem);
      const member = await startMember(cfg, start.identity, { credential }, pki, logger, {});
      return { member, credential, caPem, clientEndpoints: [] };
    }
    case "client": {
      // A plain client of the cluster (admitted when the store had members enough).
      logger("info", "restarting_as_client", { endpoints: start.endpoints.join(",") });
      const { credential, caPem } = await readKept(cfg.dataDir);
      return { credential, caPem, clientEndpoints: start.endpoints };
    }
  }
}

/** The PKI files a member serves and verifies with. */
export interface MemberPki {
  certPem: string;
  keyPem: string;
  caPem: string;
  caKeyPem?: string;
}

async function readMemberPki(dataDir: string, caPem: string): Promise<MemberPki> {
  const serving = await readMemberCertificate(dataDir);
  if (!serving) {
    throw new Error(
      `${dataDir}/pki/member.crt or member.key is missing; restore them, or run 'twill ctl ` +
        `remove-node' for this node on a member, remove ${dataDir} and join again`,
    );
  }
  const caKeyPem = await readTextOrNull(caKeyPath(dataDir));
  return {
    certPem: serving.chainPem,
    keyPem: serving.keyPem,
    caPem,
    ...(caKeyPem === null ? {} : { caKeyPem }),
  };
}

/** The credential and CA a restart acts with (decideStart has checked that both exist). */
async function readKept(dataDir: string): Promise<{ credential: string; caPem: string }> {
  const cred = await resolveCredential({ dataDir, preferAdmin: false });
  const caPem = await readCaPem(dataDir);
  if (!cred || caPem === null) throw new Error(`${dataDir} lost its credential or pki/ca.crt`);
  return { credential: cred.credential, caPem };
}

async function createCluster(
  cfg: DaemonConfig,
  secret: string | undefined,
  logger: Logger,
): Promise<StoreSide> {
  const netConfig = await readNetConfig(cfg);
  const id: MemberIdentity = {
    clusterId: generateClusterId(),
    nodeId: 1,
    name: cfg.name,
    advertise: resolveAdvertise(cfg),
  };
  const trust = await createFounderTrust(cfg.dataDir, { ...id, secret });
  const caPem = trust.ca.certPem;
  const pki: MemberPki = {
    certPem: trust.serving.chainPem,
    keyPem: trust.serving.keyPem,
    caPem,
    caKeyPem: trust.ca.keyPem!,
  };
  // The member seeds /twill/ (join secret, CA, credential records) before start() resolves.
  const member = await startMember(
    cfg,
    id,
    {
      credential: trust.credential,
      init: { joinSecret: trust.secret, adminCredential: trust.adminCredential },
    },
    pki,
    logger,
    { bootstrap: true },
  );
  await writeIdentity(cfg.dataDir, id);
  logger("info", "cluster_created", {
    cluster: id.clusterId,
    node: id.nodeId,
    advertise: id.advertise,
  });
  await member.ready();
  if (netConfig !== undefined) await writeNetConfig(cfg, member, id.clusterId, netConfig, logger);
  // The join token is the one line on stdout: scripts capture it.
  console.log(trust.joinToken);
  return { member, credential: trust.credential, caPem, clientEndpoints: [] };
}

async function writeNetConfig(
  cfg: DaemonConfig,
  member: StoreMember,
  clusterId: string,
  netConfig: string,
  logger: Logger,
): Promise<void> {
  const enc = new TextEncoder();
  await member.kv.write({
    op: "put",
    requestId: `init-config-${clusterId}`,
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

/** The join request with the trust fields (the member's side reads them). */
type TrustJoinRequest = JoinRequest & { secret: string; csrPem: string };
type TrustJoinResponse =
  & JoinResponse
  & Partial<{ credential: string; caPem: string; certPem: string }>;

async function joinCluster(
  cfg: DaemonConfig,
  seeds: string[],
  token: JoinToken,
  logger: Logger,
): Promise<StoreSide> {
  const advertise = resolveAdvertise(cfg);
  // Nothing secret goes out before the CA a seed presents matches the token's hash.
  const caPem = await fetchCaFromSeeds(seeds, token.caSha256, logger);
  const { csrPem, keyPem } = await createCertificateRequest(cfg.name);
  const req: JoinRequest = {
    address: advertise,
    name: cfg.name,
    wantMember: cfg.storeOnly,
    joinId: crypto.randomUUID(),
    secret: token.secret,
    csrPem,
  };
  const resp: JoinResponse = await requestJoin(seeds, req, logger, { caCerts: [caPem] });
  const got: JoinedTrust = {
    caPem: resp.caPem || caPem,
    credential: resp.credential,
    ...(resp.role === "client" ? {} : { certPem: resp.certPem, keyPem }),
  };
  await writeJoinedTrust(cfg.dataDir, caPem, got);
  if (resp.role === "client") {
    const clientEndpoints = resp.members.map((m) => m.address).filter((a) => a !== "");
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
    return { credential: got.credential, caPem, clientEndpoints };
  }
  const id: MemberIdentity = {
    clusterId: resp.clusterId,
    nodeId: resp.nodeId,
    name: cfg.name,
    advertise,
  };
  await writeIdentity(cfg.dataDir, id);
  const pki: MemberPki = { certPem: resp.certPem, keyPem, caPem };
  const member = await startMember(cfg, id, { credential: got.credential }, pki, logger, {
    initialMembers: resp.members,
  });
  logger("info", "joined", { cluster: resp.clusterId, node: resp.nodeId, role: resp.role });
  return { member, credential: got.credential, caPem, clientEndpoints: [] };
}

/** The cluster CA from the first seed whose presented chain holds the pinned certificate. A seed
 *  that presents another CA ends the join at once (exit 1, one line naming the mismatch). */
async function fetchCaFromSeeds(seeds: string[], caSha256: string, logger: Logger) {
  const end = Date.now() + 60_000;
  for (let attempt = 0;; attempt++) {
    const seed = seeds[attempt % seeds.length];
    try {
      const [host, port] = splitHostPort(seed);
      return await fetchPinnedCa(host, port, caSha256);
    } catch (e) {
      if (e instanceof CaPinError) throw new Error(`join refused: ${e.message}`);
      if (Date.now() > end) {
        throw new Error(
          `could not fetch the cluster CA from ${seeds.join(",")}: ${(e as Error).message}`,
        );
      }
      logger("info", "ca_fetch_retry", { seed, attempt, error: (e as Error).message });
      await new Promise((r) => setTimeout(r, Math.min(2000, 200 * (attempt + 1))));
    }
  }
}

type MemberOptions = Parameters<typeof StoreMember.start>[0];

function startMember(
  cfg: DaemonConfig,
  identity: MemberIdentity,
  trust: MemberOptions["trust"],
  pki: MemberPki,
  logger: Logger,
  extra: Partial<MemberOptions>,
): Promise<StoreMember> {
  return StoreMember.start({
    dataDir: cfg.dataDir,
    listen: cfg.listen,
    identity,
    trust,
    // The member's authorizer confines node credentials to this network's keys.
    etcdPrefix: cfg.etcdPrefix,
    tls: pki,
    voters: cfg.voters,
    deadVoterTimeoutMs: cfg.deadVoterTimeoutMs,
    snapshotCount: cfg.snapshotCount,
    retainRevisions: cfg.autoCompactionRetention,
    tickMs: cfg.tickMs,
    electionTick: cfg.electionTicks,
    logger,
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
