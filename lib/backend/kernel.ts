// The backends' kernel adapter for per-peer entries. Reads: rtnetlink dumps, else `ip -j`/
// `bridge -j`. Writes: a Plan applied normally over one rtnetlink socket in this process
// (rtnl_batch.ts): deletions, neighbours, FDB, then routes, in that order, with no child process.
// Where that is unavailable (no FFI permission, or TWILL_KERNEL_BATCH=ip), the same lines go to
// one `ip -batch` (deletions, neighbours, then routes) and one `bridge -batch` (FDB) run at the
// same time: the two touch independent tables and the ordering that matters — a route after its
// neighbour — holds inside the ip batch; an FDB entry may then land a few microseconds after its
// route, and a packet sent in that window is dropped by the VXLAN device, as on any missing entry.
import { bridgeBatch, ipBatch } from "../net/ip_batch.ts";
import type { Plan } from "./dataplane.ts";
import { RtnlBatcher, type RtnlReader } from "./rtnl_batch.ts";

let rtnl: RtnlBatcher | null | undefined;

function batcher(): RtnlBatcher | null {
  if (rtnl === undefined) rtnl = useIpBatch() ? null : RtnlBatcher.open();
  return rtnl;
}

/** Dumps over rtnetlink, or null: read through `ip -j` / `bridge -j` instead. */
export function rtnlReader(): RtnlReader | null {
  return batcher()?.reader() ?? null;
}

/**
 * True when a kernel batch costs child processes (the ip/bridge fallback): a burst of events is
 * then worth gathering into one batch. Over rtnetlink a batch costs little beyond its entries,
 * so events go to the kernel as they arrive.
 */
export function kernelBatchesSpawn(): boolean {
  return batcher() === null;
}

function useIpBatch(): boolean {
  try {
    return Deno.env.get("TWILL_KERNEL_BATCH") === "ip";
  } catch {
    return false;
  }
}

/** stderr of the failed lines, "" when everything applied. */
export async function applyPlan(plan: Plan): Promise<string> {
  const b = batcher();
  if (b) {
    const r = b.apply([...plan.ipFirst, ...plan.bridge, ...plan.ipLast]);
    if (r !== null) return r;
  }
  return await applyPlanWithIpBatch(plan);
}

/** The same through ip(8) and bridge(8), both batches at once. */
export async function applyPlanWithIpBatch(plan: Plan): Promise<string> {
  const [ip, bridge] = await Promise.all([
    ipBatch(plan.ipFirst.length ? [...plan.ipFirst, ...plan.ipLast] : plan.ipLast),
    bridgeBatch(plan.bridge),
  ]);
  return [ip.errors, bridge.errors].filter((x) => x).join("; ");
}
