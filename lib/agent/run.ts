// The network agent's entry point, called by cmd/agent.ts once a store client is ready.
import type { NetworkAgentOptions } from "./options.ts";
import { runAgentOnRegistry } from "./agent.ts";
import type { SubnetRegistry } from "../subnet/registry.ts";
import { EtcdHttpRegistry } from "../subnet/etcd_http.ts";
import { AgentState } from "./state.ts";
import { makeLogger } from "./log.ts";
export type { NetworkAgentOptions, StoreStatus } from "./options.ts";
export { NETWORK_AGENT_DEFAULTS, withDefaults } from "./options.ts";
export { AgentState } from "./state.ts";

/** Something that can reach the store: an EtcdClient-like object with endpoints, or a registry. */
export type AgentStore =
  | SubnetRegistry
  | { endpoints: string[]; token?: string }
  | { getEndpoints(): string[]; token?: string };

function isRegistry(x: unknown): x is SubnetRegistry {
  return typeof (x as SubnetRegistry).createIfAbsent === "function" &&
    typeof (x as SubnetRegistry).watch === "function";
}

/** Builds the registry the agent uses from whatever store handle the caller has. */
export function registryFor(kv: unknown): SubnetRegistry {
  if (isRegistry(kv)) return kv;
  const o = kv as { endpoints?: string[]; getEndpoints?: () => string[]; token?: string };
  const endpoints = o.getEndpoints ? o.getEndpoints() : o.endpoints;
  if (!endpoints?.length) {
    throw new Error("runNetworkAgent: the store client has no endpoints to reach the store");
  }
  return new EtcdHttpRegistry({ endpoints, token: o.token });
}

/**
 * Runs the node's network side until `signal` aborts: config, subnet lease, backend, subnet.env,
 * masquerade, health server, reconcile loop. Resolves when stopped (nothing is torn down);
 * rejects with an Error whose message is one clear line on a fatal error (bad config, out of
 * subnets, unknown --iface, host-gw behind NAT), which the caller prints and exits non-zero with.
 * `kv` is the store client (lib/store/client.ts's EtcdClient: its endpoints and token are used),
 * or a SubnetRegistry.
 */
export async function runNetworkAgent(
  opts: NetworkAgentOptions,
  kv: unknown,
  signal: AbortSignal,
  state: AgentState = new AgentState(),
): Promise<void> {
  await runAgentOnRegistry(opts, registryFor(kv), signal, makeLogger(opts.nodeName), state);
}
