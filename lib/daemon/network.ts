// Step three of a `twill agent` start: the network agent (lib/agent/) against the store, which is
// this node's own member, the members a plain client was given, or an external etcd.
import type { StoreMember } from "../store/member/member.ts";
import type { Logger } from "../log.ts";
import type { DaemonConfig } from "./config.ts";
import { readExternalEtcdAccess } from "./external_etcd.ts";
import { keepClientEndpoints } from "./client_endpoints.ts";
import { HttpClient } from "../http/client.ts";

/** Runs the network agent until `signal` aborts; rejects with one line on a fatal error. */
export async function runNetwork(
  cfg: DaemonConfig,
  endpoints: string[],
  token: string | undefined,
  signal: AbortSignal,
  logger: Logger,
  member?: StoreMember,
): Promise<void> {
  // Loaded only here, so a --store-only member never loads the network agent.
  const { runNetworkAgent, withDefaults } = await import("../agent/run.ts");
  const { EtcdClient } = await import("../etcd/client.ts");
  const urls = endpoints.map((e) => (e.includes("://") ? e : `http://${e}`));
  // An external etcd's TLS and user come from Flannel's flags; twill's own store needs neither.
  const access = cfg.etcdEndpoints.length > 0
    ? await readExternalEtcdAccess(
      cfg,
      (level, event, detail) => logger(level, event, { detail }),
      { sslCertFile: Deno.env.get("SSL_CERT_FILE") },
    )
    : {};
  const kv = new EtcdClient({ endpoints: urls, token, ...access });
  if (!member && cfg.etcdEndpoints.length === 0) {
    keepClientEndpoints({
      dataDir: cfg.dataDir,
      endpoints,
      http: new HttpClient({ token, timeoutMs: 3000 }),
      client: kv,
      logger,
    }, signal);
  }
  const opts = withDefaults({
    prefix: cfg.etcdPrefix,
    iface: cfg.iface,
    publicIp: cfg.publicIp ?? "",
    ipMasq: cfg.ipMasq,
    subnetFile: cfg.subnetFile,
    healthzIp: cfg.healthzIp,
    healthzPort: cfg.healthzPort,
    subnetLeaseRenewMarginMinutes: cfg.subnetLeaseRenewMarginMinutes,
    subnetLeaseTtlSeconds: Math.round(cfg.subnetLeaseTtlMs / 1000),
    dataDir: cfg.dataDir,
    nodeName: cfg.name,
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
