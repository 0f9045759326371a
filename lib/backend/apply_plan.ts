// Applies a Plan to the kernel: one `ip -batch` (route/neighbour deletions, neighbour
// replacements, then routes, in that order) and one `bridge -batch` (FDB) run at the same time.
// The two touch independent tables; the one ordering that matters — a route after its
// neighbour — holds inside the ip batch. An FDB entry may land a few microseconds after its
// route; a packet sent in that window is dropped by the VXLAN device, as on any missing entry.
import { bridgeBatch, ipBatch } from "../net/ip_batch.ts";
import type { Plan } from "./dataplane.ts";

/** stderr of the failed lines of both batches, "" when everything applied. */
export async function applyPlan(plan: Plan): Promise<string> {
  const [ip, bridge] = await Promise.all([
    ipBatch(plan.ipFirst.length ? [...plan.ipFirst, ...plan.ipLast] : plan.ipLast),
    bridgeBatch(plan.bridge),
  ]);
  return [ip.errors, bridge.errors].filter((x) => x).join("; ");
}
