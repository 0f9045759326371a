// The network agent's entry point: called by cmd/agent.ts once the store client is ready.
// (Body lands in the next commits; the signature is the contract with cmd/agent.ts.)
import type { NetworkAgentOptions } from "./options.ts";
export type { NetworkAgentOptions, StoreStatus } from "./options.ts";
export { NETWORK_AGENT_DEFAULTS, withDefaults } from "./options.ts";

/**
 * Runs the node's network side until `signal` aborts: config, subnet lease, backend, subnet.env,
 * masquerade, health server, reconcile loop. Resolves when stopped (nothing is torn down);
 * rejects with an Error whose message is one clear line on a fatal error (bad config, out of
 * subnets, unknown --iface), which the caller prints and exits non-zero with.
 * `kv` is lib/store/client.ts's EtcdClient.
 */
export function runNetworkAgent(
  _opts: NetworkAgentOptions,
  _kv: unknown,
  _signal: AbortSignal,
): Promise<void> {
  return Promise.reject(new Error("the network agent is not built yet"));
}
