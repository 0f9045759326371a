// The network agent's one entry point: lib/daemon calls it once a store client is ready. It
// chooses the interface, serves health, and runs a NetworkAgent until the signal aborts.
import type { NetworkAgentOptions } from "./options.ts";
import { NetworkAgent } from "./agent.ts";
import { healthHandler, serveHealth } from "./health.ts";
import type { SubnetRegistry } from "../subnet/registry.ts";
import { EtcdClientRegistry } from "../subnet/etcd_client_registry.ts";
import { EtcdClient } from "../etcd/client.ts";
import { findInterface } from "../net/iface.ts";
import { AgentState } from "./state.ts";
import { type Logger, makeLogger } from "../log.ts";
export type { NetworkAgentOptions, StoreStatus } from "./options.ts";
export { NETWORK_AGENT_DEFAULTS, withDefaults } from "./options.ts";
export { AgentState } from "./state.ts";

function isRegistry(x: unknown): x is SubnetRegistry {
  return typeof (x as SubnetRegistry).createIfAbsent === "function" &&
    typeof (x as SubnetRegistry).watch === "function";
}

/**
 * The registry the agent uses, from whatever store handle the caller has: a SubnetRegistry as
 * is (the unit tests' in-memory one); otherwise an EtcdClientRegistry over the given EtcdClient,
 * or over a new EtcdClient for plain endpoints (+ token).
 */
export function registryFor(kv: unknown): SubnetRegistry {
  if (isRegistry(kv)) return kv;
  if (kv instanceof EtcdClient) return new EtcdClientRegistry(kv);
  const o = kv as { endpoints?: string[]; getEndpoints?: () => string[]; token?: string };
  const endpoints = o.getEndpoints ? o.getEndpoints() : o.endpoints;
  if (!endpoints?.length) {
    throw new Error("runNetworkAgent: the store client has no endpoints to reach the store");
  }
  return new EtcdClientRegistry(new EtcdClient({ endpoints, token: o.token }));
}

/**
 * Runs the node's network side until `signal` aborts: config, subnet lease, backend, subnet.env,
 * masquerade, health server, reconcile loop. Resolves when stopped (nothing is torn down);
 * rejects with an Error whose message is one clear line on a fatal error (bad config, out of
 * subnets, unknown --iface, a backend that cannot work on this node), which the caller prints
 * and exits non-zero with.
 * `kv`: see registryFor.
 */
export async function runNetworkAgent(
  opts: NetworkAgentOptions,
  kv: EtcdClient | SubnetRegistry | { endpoints: string[]; token?: string },
  signal: AbortSignal,
  state: AgentState = new AgentState(),
  log: Logger = makeLogger({ context: { node: opts.nodeName } }),
): Promise<void> {
  const reg = registryFor(kv);
  const iface = await findInterface(opts.iface);
  const publicIP = opts.publicIp || iface.address;
  log("info", "interface_chosen", {
    iface: iface.name,
    address: iface.address,
    address6: iface.address6 ?? undefined,
    mtu: iface.mtu,
    public_ip: publicIP,
    how: opts.iface.length ? "--iface" : "default route",
  });
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  const interval = opts.reconcileIntervalMs ?? 5000;
  const server = serveHealth(
    opts.healthzIp,
    opts.healthzPort,
    healthHandler(state, {
      now: () => Date.now(),
      storeThresholdMs: 30_000,
      reconcileStuckMs: Math.max(3 * interval, 30_000),
      storeStatus: opts.storeStatus,
    }),
    stop.signal,
  );
  try {
    await new NetworkAgent(opts, reg, iface, publicIP, stop.signal, log, state).run();
  } finally {
    signal.removeEventListener("abort", onAbort);
    stop.abort();
    await server?.finished;
  }
}
