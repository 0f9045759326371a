// A `twill agent` process, put together in one place: (1) decide the start from the config and the
// data dir, (2) start the store member, (3) run the network agent against it (unless
// --store-only). With --etcd-endpoints there is no embedded store: the network agent talks to
// that etcd.
import { type Logger, makeLogger } from "../log.ts";
import type { StoreMember } from "../store/member/member.ts";
import type { DaemonConfig } from "./config.ts";
import { lockDataDir, readStartFacts } from "./data_dir.ts";
import { runNetwork, type StoreAccess } from "./network.ts";
import { decideStart, ignoresJoin, type StartDecision } from "./start.ts";
import { startStore, type StoreSide } from "./store_member.ts";

export type { DaemonConfig } from "./config.ts";

/** Runs the agent until `signal` aborts. Resolves 0 when stopped; rejects with one line when it
 *  cannot start or the store member fails. */
export async function runDaemon(cfg: DaemonConfig, signal: AbortSignal): Promise<number> {
  const logger = makeLogger({ context: { member: cfg.name } });
  const facts = await readStartFacts(cfg);
  const start = decideStart(cfg, facts);
  if (start.kind === "external") {
    logger("info", "external_etcd", {
      endpoints: start.endpoints.join(","),
      prefix: cfg.etcdPrefix,
    });
    const access = { endpoints: start.endpoints, token: start.token, ownCredential: false };
    await runNetwork(cfg, access, signal, logger);
    return 0;
  }
  // --init on a cluster's data dir says so even while that cluster's agent holds the lock.
  if (start.kind === "refuse" && start.refusal === "init-on-cluster") {
    throw new Error(start.message);
  }
  const lock = await lockDataDir(cfg.dataDir);
  try {
    if (ignoresJoin(cfg, facts)) {
      logger("info", "join_ignored", {
        detail: `${cfg.dataDir} already holds member ${facts.identity!.nodeId}; restarting it`,
      });
    }
    if (start.kind === "refuse") throw new Error(start.message);
    sayAboutToken(start, logger);
    const store = await startStore(cfg, start, logger);
    try {
      return await runUntilStopped(cfg, store, signal, logger);
    } finally {
      if (store.member) {
        await store.member.close();
        logger("info", "store_member_stopped", {});
      }
    }
  } finally {
    lock.release();
  }
}

/** Runs the network agent (or, with --store-only, just waits) until `signal` aborts or the store
 *  member fails; a member that cannot go on (damaged log, broken invariant) ends the agent with
 *  an error. */
async function runUntilStopped(
  cfg: DaemonConfig,
  store: StoreSide,
  signal: AbortSignal,
  logger: Logger,
): Promise<number> {
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  if (signal.aborted) stop.abort();
  const failure = memberFailure(store.member, stop);
  try {
    if (cfg.storeOnly) {
      const { serveMemberHealth } = await import("../agent/health.ts");
      const health = store.member &&
        serveMemberHealth(cfg.healthzIp, cfg.healthzPort, store.member, stop.signal);
      await Promise.race([aborted(stop.signal), failure]);
      stop.abort();
      await health?.finished;
    } else {
      const { member } = store;
      const access: StoreAccess = {
        endpoints: member ? [member.opts.identity.advertise] : store.clientEndpoints,
        token: store.credential,
        tls: { caCerts: [store.caPem] },
        ownCredential: true,
      };
      await Promise.race([runNetwork(cfg, access, stop.signal, logger, member), failure]);
    }
    const err = await Promise.race([failure, Promise.resolve(undefined)]);
    if (err) throw new Error(`the store member stopped: ${err.message}`);
    return 0;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/** One line about --token where the start does not use it as given. */
function sayAboutToken(start: StartDecision, logger: Logger): void {
  if (start.kind === "init" && start.warning) {
    logger("warn", "short_join_secret", {
      detail: start.warning,
    });
  }
  if ((start.kind === "restart" || start.kind === "client") && start.tokenIgnored) {
    logger("info", "token_ignored", {
      detail: "this data dir already belongs to a cluster; --token is not needed on a restart",
    });
  }
}

/** Resolves with the member's fatal error (aborting `stop`), or never when there is no member. */
function memberFailure(member: StoreMember | undefined, stop: AbortController): Promise<Error> {
  if (!member) return new Promise<Error>(() => {});
  return member.whenFailed().then((e) => {
    stop.abort();
    return e;
  });
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
