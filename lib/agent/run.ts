// The network agent's entry point, called by cmd/agent.ts once a store client is ready.
import type { NetworkAgentOptions } from "./options.ts";
import { runAgentOnRegistry } from "./agent.ts";
import type { SubnetRegistry } from "../subnet/registry.ts";
import { EtcdClientRegistry } from "../subnet/etcd_client_registry.ts";
import { EtcdClient } from "../etcd/client.ts";
import { AgentState } from "./state.ts";
import { makeLogger } from "../log.ts";
export type { NetworkAgentOptions, StoreStatus } from "./options.ts";
export { NETWORK_AGENT_DEFAULTS, withDefaults } from "./options.ts";
export { AgentState } from "./state.ts";

function isRegistry(x: unknown): x is SubnetRegistry {
  return typeof (x as SubnetRegistry).createIfAbsent === "function" &&
    typeof (x as SubnetRegistry).watch === "function";
}

/** Builds the registry the agent uses from whatever store handle the caller has. */
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
 * subnets, unknown --iface, host-gw behind NAT), which the caller prints and exits non-zero with.
 * `kv` is the store client (lib/etcd/client.ts's EtcdClient), a SubnetRegistry, or plain
 * endpoints (+ token) for the agent's own etcd JSON registry.
 */
export async function runNetworkAgent(
  opts: NetworkAgentOptions,
  kv: EtcdClient | SubnetRegistry | { endpoints: string[]; token?: string },
  signal: AbortSignal,
  state: AgentState = new AgentState(),
): Promise<void> {
  await runAgentOnRegistry(
    opts,
    registryFor(kv),
    signal,
    makeLogger({ context: { node: opts.nodeName } }),
    state,
  );
}
