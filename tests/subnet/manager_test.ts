import assert from "node:assert/strict";
import { MemoryRegistry } from "../../lib/subnet/memory_registry.ts";
import { LeaseLostError, LeaseManager, renewDelayMs } from "../../lib/subnet/manager.ts";
import { parseNetConfig } from "../../lib/subnet/config.ts";
import { backendConfigParser } from "../../lib/backend/registry.ts";
import { formatCIDR, parseCIDR } from "../../lib/net/cidr.ts";
import { encodeLeaseAttrs, type LeaseAttrs } from "../../lib/subnet/lease.ts";
import { LeaseWatcher } from "../../lib/subnet/watcher.ts";
import { leaseFromKv } from "../../lib/subnet/manager.ts";

const P = "/coreos.com/network";
const cfgText = '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}';

function attrs(ip: string): LeaseAttrs {
  return {
    publicIP: ip,
    publicIPv6: null,
    backendType: "vxlan",
    backendData: { VNI: 1, VtepMAC: "02:00:00:00:00:01" },
  };
}

function setup(pick = 0) {
  let now = 1_000_000;
  const reg = new MemoryRegistry(() => now);
  reg.put(`${P}/config`, cfgText);
  const picks: number[] = [];
  const m = new LeaseManager(reg, {
    prefix: P,
    ttlSeconds: 3600,
    now: () => now,
    randomInt: (n) => {
      picks.push(n);
      return Math.min(pick, n - 1);
    },
  });
  return {
    reg,
    m,
    picks,
    advance: (ms: number) => (now += ms),
    cfg: parseNetConfig(cfgText, backendConfigParser),
  };
}

Deno.test("acquire: a random pick among the first 100 free subnets from SubnetMin", async () => {
  const { reg, m, picks, cfg } = setup(3);
  reg.put(`${P}/subnets/10.5.2.0-24`, encodeLeaseAttrs(attrs("192.0.2.2")));
  const l = await m.acquire(cfg, attrs("192.0.2.1"), null);
  assert.deepEqual(picks, [100]);
  // free list is 10.5.1, 10.5.3, 10.5.4, 10.5.5 … → index 3 is 10.5.5.0
  assert.equal(formatCIDR(l.subnet!), "10.5.5.0/24");
  const kv = await reg.get(`${P}/subnets/10.5.5.0-24`);
  assert.equal(kv!.value, encodeLeaseAttrs(attrs("192.0.2.1")));
  assert.notEqual(kv!.lease, 0n);
  assert.equal(l.expiresAt, 1_000_000 + 3600_000);
});

Deno.test("acquire: reuses the lease holding our PublicIP before anything else", async () => {
  const { reg, m, cfg } = setup();
  const old = await reg.grant(100);
  reg.put(`${P}/subnets/10.5.9.0-24`, encodeLeaseAttrs(attrs("192.0.2.1")), old);
  const l = await m.acquire(cfg, attrs("192.0.2.1"), {
    subnet: parseCIDR("10.5.7.0/24"),
    ipv6Subnet: null,
  });
  assert.equal(formatCIDR(l.subnet!), "10.5.9.0/24");
  const kv = await reg.get(`${P}/subnets/10.5.9.0-24`);
  assert.notEqual(kv!.lease, old, "renewed with a fresh store lease");
  assert.equal(reg.leaseDeadline(old), undefined, "the old store lease was revoked");
});

Deno.test("acquire: an incompatible lease of ours is deleted, then the previous subnet is used", async () => {
  const { reg, m, cfg } = setup();
  reg.put(`${P}/subnets/10.6.1.0-24`, encodeLeaseAttrs(attrs("192.0.2.1")));
  const l = await m.acquire(cfg, attrs("192.0.2.1"), {
    subnet: parseCIDR("10.5.7.0/24"),
    ipv6Subnet: null,
  });
  assert.equal(formatCIDR(l.subnet!), "10.5.7.0/24");
  assert.equal(await reg.get(`${P}/subnets/10.6.1.0-24`), null);
});

Deno.test("acquire: the previous subnet is skipped when someone holds it", async () => {
  const { reg, m, cfg } = setup(0);
  reg.put(`${P}/subnets/10.5.7.0-24`, encodeLeaseAttrs(attrs("192.0.2.7")));
  const l = await m.acquire(cfg, attrs("192.0.2.1"), {
    subnet: parseCIDR("10.5.7.0/24"),
    ipv6Subnet: null,
  });
  assert.equal(formatCIDR(l.subnet!), "10.5.1.0/24");
});

Deno.test("acquire: a reservation (no TTL) for our PublicIP is honoured and stays TTL-less", async () => {
  const { reg, m, cfg } = setup();
  reg.put(`${P}/subnets/10.5.42.0-24`, '{"PublicIP":"192.0.2.1","PublicIPv6":null}');
  const l = await m.acquire(cfg, attrs("192.0.2.1"), null);
  assert.equal(formatCIDR(l.subnet!), "10.5.42.0/24");
  assert.equal(l.storeLease, 0n);
  assert.equal(l.expiresAt, null);
  assert.equal((await reg.get(`${P}/subnets/10.5.42.0-24`))!.lease, 0n);
  // and someone else's reservation is never picked
  const other = setup(0);
  other.reg.put(`${P}/subnets/10.5.1.0-24`, '{"PublicIP":"192.0.2.50","PublicIPv6":null}');
  const l2 = await other.m.acquire(other.cfg, attrs("192.0.2.1"), null);
  assert.equal(formatCIDR(l2.subnet!), "10.5.2.0/24");
});

Deno.test("acquire: a lost create race is retried with a fresh listing", async () => {
  const { reg, m, cfg } = setup(0);
  reg.raceOnCreate = (k) => k.endsWith("10.5.1.0-24");
  const l = await m.acquire(cfg, attrs("192.0.2.1"), null);
  assert.equal(formatCIDR(l.subnet!), "10.5.2.0/24");
  assert.equal(reg.calls.filter((c) => c === "txn-create").length, 2);
});

Deno.test("acquire: out of subnets", async () => {
  const reg = new MemoryRegistry();
  const text = '{"Network":"10.9.0.0/28"}';
  reg.put(`${P}/config`, text);
  const m = new LeaseManager(reg, { prefix: P, ttlSeconds: 60, now: () => 0, randomInt: () => 0 });
  const cfg = await m.getNetworkConfig(backendConfigParser);
  for (const s of ["10.9.0.4-30", "10.9.0.8-30", "10.9.0.12-30"]) {
    reg.put(`${P}/subnets/${s}`, encodeLeaseAttrs(attrs("192.0.2.9")));
  }
  await assert.rejects(m.acquire(cfg, attrs("192.0.2.1"), null), { message: "out of subnets" });
});

Deno.test("renew: fenced on mod revision; a foreign write makes it fail with LeaseLostError", async () => {
  const { reg, m, cfg, advance } = setup();
  let l = await m.acquire(cfg, attrs("192.0.2.1"), null);
  advance(60_000);
  const renewed = await m.renew(l);
  assert.ok(renewed.modRevision > l.modRevision);
  assert.equal(renewed.expiresAt, 1_060_000 + 3600_000);
  assert.equal(reg.leaseDeadline(l.storeLease), undefined, "old store lease revoked");
  l = renewed;
  // someone overwrites our key: we must not clobber it
  reg.put(
    `${P}/subnets/${formatCIDR(l.subnet!).replace("/", "-")}`,
    encodeLeaseAttrs(attrs("192.0.2.66")),
  );
  await assert.rejects(m.renew(l), LeaseLostError);
  const kv = await reg.get(`${P}/subnets/${formatCIDR(l.subnet!).replace("/", "-")}`);
  assert.match(kv!.value, /192\.0\.2\.66/);
});

Deno.test("renew schedule: margin before expiry, never past half the TTL", () => {
  const l = { expiresAt: 100 * 3600_000 } as never;
  assert.equal(renewDelayMs(l, 0, 60, 86400), 99 * 3600_000);
  assert.equal(renewDelayMs({ expiresAt: 20_000 } as never, 0, 60, 20), 10_000);
  assert.equal(renewDelayMs({ expiresAt: null } as never, 0, 60, 20), null);
});

Deno.test("re-acquire after our lease vanished takes the same subnet when still free", async () => {
  const { reg, m, cfg } = setup(5);
  const l = await m.acquire(cfg, attrs("192.0.2.1"), null);
  await reg.revoke(l.storeLease);
  const again = await m.acquire(cfg, attrs("192.0.2.1"), { subnet: l.subnet, ipv6Subnet: null });
  assert.equal(formatCIDR(again.subnet!), formatCIDR(l.subnet!));
});

Deno.test("lease watcher: own lease ignored, removals carry the last attributes, reset diffs", async () => {
  const { reg, m, cfg } = setup(0);
  const own = await m.acquire(cfg, attrs("192.0.2.1"), null);
  const w = new LeaseWatcher(own);
  reg.put(`${P}/subnets/10.5.20.0-24`, encodeLeaseAttrs(attrs("192.0.2.20")));
  reg.put(`${P}/subnets/10.5.21.0-24`, encodeLeaseAttrs(attrs("192.0.2.21")));
  const first = w.reset((await m.listLeases()).leases);
  assert.deepEqual(first.map((e) => `${e.type} ${e.lease.attrs.publicIP}`), [
    "added 192.0.2.20",
    "added 192.0.2.21",
  ]);
  // a delete event carries only the key; the watcher hands out what it knew
  await reg.delete(`${P}/subnets/10.5.20.0-24`);
  const del = leaseFromKv({
    key: `${P}/subnets/10.5.20.0-24`,
    value: "{}",
    modRevision: 0n,
    lease: 0n,
  })!;
  const ev = w.update("delete", del)!;
  assert.equal(ev.type, "removed");
  assert.equal(ev.lease.attrs.publicIP, "192.0.2.20");
  // our own key's events are ignored
  assert.equal(w.update("put", own), null);
  // after compaction: a re-listing yields exactly the difference
  reg.put(`${P}/subnets/10.5.22.0-24`, encodeLeaseAttrs(attrs("192.0.2.22")));
  await reg.delete(`${P}/subnets/10.5.21.0-24`);
  const diff = w.reset((await m.listLeases()).leases);
  assert.deepEqual(diff.map((e) => `${e.type} ${e.lease.attrs.publicIP}`), [
    "added 192.0.2.22",
    "removed 192.0.2.21",
  ]);
  assert.deepEqual(w.reset((await m.listLeases()).leases), []);
});

Deno.test("pending peer events merge to one per peer, keeping what the kernel has as previous", async () => {
  const { mergePeerEvent } = await import("../../lib/subnet/watcher.ts");
  const { parseCIDR } = await import("../../lib/net/cidr.ts");
  const mk = (ip: string) => ({
    subnet: parseCIDR("10.5.9.0/24"),
    ipv6Subnet: null,
    attrs: attrs(ip),
    modRevision: 1n,
    storeLease: 0n,
    expiresAt: null,
  });
  const v0 = mk("192.0.2.90"), v1 = mk("192.0.2.91"), v2 = mk("192.0.2.92");
  const m = new Map();
  mergePeerEvent(m, { type: "added", lease: v1, previous: v0 });
  mergePeerEvent(m, { type: "added", lease: v2, previous: v1 });
  assert.deepEqual([...m.values()], [{ type: "added", lease: v2, previous: v0 }]);
  mergePeerEvent(m, { type: "removed", lease: v2 });
  assert.deepEqual([...m.values()], [{ type: "removed", lease: v0 }]);
  mergePeerEvent(m, { type: "added", lease: v1 });
  assert.deepEqual([...m.values()], [{ type: "added", lease: v1, previous: v0 }]);
  const fresh = new Map();
  mergePeerEvent(fresh, { type: "added", lease: v1 });
  mergePeerEvent(fresh, { type: "removed", lease: v1 });
  assert.equal(fresh.size, 0, "added and removed before programming: nothing to do");
});
