// Step three of a `twill agent` start: the network agent (lib/agent/) against the store, which is
// this node's own member, the members a plain client was given, or an external etcd. Against the
// embedded store the agent acts with this node's credential over TLS verified by the cluster CA,
// and a credential the store no longer knows (remove-node) ends the agent: it logs
// `credential_revoked` and fails, leaving the data plane as it is (nothing is torn down on stop).
import type { StoreMember } from "../store/member/member.ts";
import type { Logger } from "../log.ts";
import type { TlsClientOptions } from "../http/client.ts";
import type { DaemonConfig } from "./config.ts";
import { readExternalEtcdAccess } from "./external_etcd.ts";
import { keepClientEndpoints } from "./client_endpoints.ts";

/** How the agent reaches its store: the credential it sends, and the CA that signs the store's
 *  certificates (absent for an external etcd, whose TLS flags are its own). */
export interface StoreAccess {
  endpoints: string[];
  token?: string;
  tls?: TlsClientOptions;
  /** True against the embedded store: a lasting 401 then means the credential was revoked. */
  ownCredential: boolean;
}

/** A 401 that lasts this long, and is confirmed by one more request, means revoked. */
export const REVOCATION_GRACE_MS = 2000;
/** The same before the store has ever accepted the credential: a fresh member answers 401 until
 *  it has caught up with the log that holds its own credential, which can take a while. */
export const FIRST_ACCEPT_GRACE_MS = 120_000;

/** Runs the network agent until `signal` aborts; rejects with one line on a fatal error,
 *  including a revoked credential. */
export async function runNetwork(
  cfg: DaemonConfig,
  access: StoreAccess,
  signal: AbortSignal,
  logger: Logger,
  member?: StoreMember,
): Promise<void> {
  // Loaded only here, so a --store-only member never loads the network agent.
  const { runNetworkAgent, withDefaults } = await import("../agent/run.ts");
  const { EtcdClient } = await import("../etcd/client.ts");
  const revoked = new AbortController();
  const watch = new RevocationWatch(
    REVOCATION_GRACE_MS,
    FIRST_ACCEPT_GRACE_MS,
    () => revoked.abort(),
  );
  // An external etcd's TLS and user come from Flannel's flags; twill's own store uses the
  // cluster CA and this node's credential (access).
  const external = cfg.etcdEndpoints.length > 0
    ? await readExternalEtcdAccess(
      cfg,
      (level, event, detail) => logger(level, event, { detail }),
      { sslCertFile: Deno.env.get("SSL_CERT_FILE") },
    )
    : {};
  const kv = new EtcdClient({
    endpoints: access.endpoints,
    token: access.token,
    tls: access.tls,
    ...external,
    onAuthenticated: access.ownCredential ? (ok) => watch.observe(ok) : undefined,
  });
  watch.probe = () => kv.range(`${cfg.etcdPrefix}/config`).then(() => {}, () => {});
  if (!member && cfg.etcdEndpoints.length === 0) {
    keepClientEndpoints({ dataDir: cfg.dataDir, ...access, client: kv, logger }, signal);
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
  logger("info", "network_agent_starting", { endpoints: kv.endpoints.join(",") });
  try {
    await runNetworkAgent(opts, kv, AbortSignal.any([signal, revoked.signal]));
  } finally {
    watch.stop();
  }
  if (revoked.signal.aborted && !signal.aborted) {
    logger("error", "credential_revoked", {
      node: cfg.name,
      detail: "the store refuses this node's credential; the data plane is left as it is",
    });
    throw new Error(
      `the store refuses ${cfg.name}'s credential (revoked by 'twill ctl remove-node'?); ` +
        `remove ${cfg.dataDir} and join again with a join token`,
    );
  }
}

/** Decides that the credential was revoked: a 401 with no accepted answer for `graceMs` (or
 *  `firstGraceMs` while no answer has ever accepted it), and a probe after that is refused with a
 *  401 too (a probe that gets no answer proves nothing, and the next 401 starts over). Any
 *  accepted answer clears the suspicion. */
export class RevocationWatch {
  probe: () => Promise<void> = () => Promise.resolve();
  #suspect = false;
  #refusals = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #done = false;
  #everAccepted = false;

  constructor(
    private readonly graceMs: number,
    private readonly firstGraceMs: number,
    private readonly onRevoked: () => void,
  ) {}

  observe(accepted: boolean): void {
    if (this.#done) return;
    if (accepted) {
      this.#everAccepted = true;
      this.#suspect = false;
      clearTimeout(this.#timer);
      this.#timer = undefined;
      return;
    }
    this.#refusals++;
    if (this.#suspect) return;
    this.#suspect = true;
    const grace = this.#everAccepted ? this.graceMs : this.firstGraceMs;
    this.#timer = setTimeout(() => this.#confirm(), grace);
  }

  async #confirm(): Promise<void> {
    this.#timer = undefined;
    if (!this.#suspect || this.#done) return;
    const before = this.#refusals;
    await this.probe();
    if (this.#suspect && this.#refusals > before && !this.#done) {
      this.#done = true;
      this.onRevoked();
    } else {
      this.#suspect = false;
    }
  }

  stop(): void {
    this.#done = true;
    clearTimeout(this.#timer);
  }
}
