// Burst batching between the lease watch and the backend: responses already buffered go in one
// batch, events of one peer merge, and what arrives during an apply is the next batch.
import assert from "node:assert/strict";
import { BURST_EVENTS, PeerEventBatcher } from "../../lib/agent/burst.ts";
import { parseCIDR } from "../../lib/net/cidr.ts";
import type { Lease } from "../../lib/subnet/lease.ts";
import type { PeerEvent } from "../../lib/subnet/watcher.ts";

function lease(i: number): Lease {
  return {
    subnet: parseCIDR(`10.9.${i}.0/24`),
    ipv6Subnet: null,
    attrs: { publicIP: `192.168.0.${i}`, publicIPv6: null, backendType: "test" },
    modRevision: BigInt(i),
    storeLease: 0n,
    expiresAt: null,
  };
}
const added = (i: number): PeerEvent => ({ type: "added", lease: lease(i) });

function recorder() {
  const batches: { size: number; responses: number; since: number }[] = [];
  let release: (() => void) | null = null;
  const apply = async (evs: PeerEvent[], since: number, got: { responses: number }) => {
    batches.push({ size: evs.length, responses: got.responses, since });
    if (release === null) return;
    await new Promise<void>((r) => (release = r));
  };
  return { batches, apply, hold: () => (release = () => {}), release: () => release?.() };
}

const turn = () => new Promise((r) => setTimeout(r, 5));

Deno.test("burst: responses queued in one turn are one batch; one peer's events merge", async () => {
  const rec = recorder();
  const b = new PeerEventBatcher(rec.apply, () => false);
  b.queue([added(1), added(2)], 10);
  b.queue([added(3), { type: "removed", lease: lease(1) }], 11);
  b.queue([], 12); // nothing to apply adds no response
  await turn();
  // peer 1, added and removed before it was programmed, needs nothing
  assert.deepEqual(rec.batches, [{ size: 2, responses: 2, since: 10 }]);
});

Deno.test("burst: what arrives while a batch is applied goes in the next one", async () => {
  const rec = recorder();
  rec.hold();
  const b = new PeerEventBatcher(rec.apply, () => false);
  b.queue([added(1)], 1);
  await turn();
  b.queue([added(2)], 2);
  b.queue([added(3)], 3);
  rec.release();
  await turn();
  rec.release();
  await turn();
  assert.deepEqual(rec.batches.map((x) => [x.size, x.responses, x.since]), [[1, 1, 1], [2, 2, 2]]);
});

Deno.test("burst: when an apply costs child processes, a big batch waits for the burst's rest", async () => {
  const rec = recorder();
  const b = new PeerEventBatcher(rec.apply, () => true);
  const first = Array.from({ length: BURST_EVENTS }, (_, i) => added(i));
  b.queue(first, 1);
  await new Promise((r) => setTimeout(r, 1));
  b.queue([added(200)], 2); // within the quiet window: joins the same batch
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(rec.batches.map((x) => [x.size, x.responses]), [[BURST_EVENTS + 1, 2]]);
});
