// Address management: host-local's choice of address and on-disk format, reuse, exhaustion,
// release, garbage collection, and the lock under concurrent callers.
import assert from "node:assert/strict";
import { formatIP, parseCIDR, parseIP } from "../../lib/net/cidr.ts";
import { allocate, collectGarbage, releaseAll } from "../../lib/cni/ipam/ipam.ts";
import { nextFree, rangeFor } from "../../lib/cni/ipam/range.ts";
import { ReservationStore } from "../../lib/cni/ipam/store.ts";
import { CniError } from "../../lib/cni/errors.ts";

Deno.test("ranges skip the network, gateway and broadcast; the search resumes after the last", () => {
  const r = rangeFor(parseCIDR("10.0.0.0/29"), 0);
  const none = () => false;
  assert.equal(formatIP(nextFree(r, none)!), "10.0.0.2");
  assert.equal(formatIP(nextFree(r, none, parseIP("10.0.0.4"))!), "10.0.0.5");
  // After the end it wraps, past the gateway.
  assert.equal(formatIP(nextFree(r, none, parseIP("10.0.0.6"))!), "10.0.0.2");
  const taken = new Set([2n, 3n, 4n, 5n, 6n].map((x) => parseIP("10.0.0.0").value + x));
  assert.equal(nextFree(r, (v) => taken.has(v)), null);
  assert.equal(formatIP(rangeFor(parseCIDR("fd00::/64"), 1).end), "fd00::ffff:ffff:ffff:ffff");
});

// Concurrency across processes (the real case: one plugin process per pod) is proven by
// concurrency_test.ts with 50 parallel plugin runs.
function withStore(fn: (s: ReservationStore, dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "twc-ipam" });
  try {
    fn(new ReservationStore(`${dir}/net`), `${dir}/net`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("reservations are host-local's files; a repeated ADD gets the same address", () => {
  withStore((s, dir) => {
    const ranges = [rangeFor(parseCIDR("10.1.0.0/24"), 0)];
    const unlock = s.lock();
    try {
      const a = allocate(s, ranges, "ctr-a", "eth0");
      assert.deepEqual(a.ips.map(formatIP), ["10.1.0.2"]);
      assert.equal(Deno.readTextFileSync(`${dir}/10.1.0.2`), "ctr-a\r\neth0");
      assert.equal(Deno.readTextFileSync(`${dir}/last_reserved_ip.0`), "10.1.0.2");
      const again = allocate(s, ranges, "ctr-a", "eth0");
      assert.deepEqual(again, { ips: a.ips, fresh: [] });
      const b = allocate(s, ranges, "ctr-a", "eth1");
      assert.deepEqual(b.ips.map(formatIP), ["10.1.0.3"]);
      // A file written by host-local before 0.8 (container id only) is honoured.
      Deno.writeTextFileSync(`${dir}/10.1.0.4`, "old-ctr");
      const c = allocate(s, ranges, "ctr-c", "eth0");
      assert.deepEqual(c.ips.map(formatIP), ["10.1.0.5"]);
      assert.deepEqual((releaseAll(s, "old-ctr", "eth0")).map(formatIP), ["10.1.0.4"]);
      assert.deepEqual((releaseAll(s, "ctr-a", "eth0")).map(formatIP), ["10.1.0.2"]);
      assert.deepEqual(releaseAll(s, "ctr-a", "eth0"), []);
    } finally {
      unlock();
    }
  });
});

Deno.test("an exhausted range is code 101 and undoes the other family's reservation", () => {
  withStore((s, dir) => {
    const ranges = [rangeFor(parseCIDR("fd00::/126"), 0), rangeFor(parseCIDR("10.2.0.0/30"), 1)];
    const unlock = s.lock();
    allocate(s, [ranges[1]], "first", "eth0"); // takes the only IPv4 address
    assert.throws(
      () => allocate(s, ranges, "second", "eth0"),
      (e: unknown) => e instanceof CniError && e.code === 101 && /10\.2\.0\.0\/30/.test(e.message),
    );
    const files = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => !n.startsWith("l"));
    assert.deepEqual(files, ["10.2.0.2"]);
    unlock();
  });
});

Deno.test("GC keeps listed attachments and releases the rest", () => {
  withStore((s) => {
    const ranges = [rangeFor(parseCIDR("10.3.0.0/24"), 0)];
    const unlock = s.lock();
    for (const id of ["a", "b", "c"]) allocate(s, ranges, id, "eth0");
    const gone = collectGarbage(s, [{ containerID: "b", ifname: "eth0" }]);
    assert.deepEqual(gone.map((r) => r.containerId).sort(), ["a", "c"]);
    assert.deepEqual((s.list()).map((r) => r.containerId), ["b"]);
    unlock();
  });
});

Deno.test("last_reserved_ip is rewritten in place to exactly the new address", () => {
  withStore((s, dir) => {
    s.lock()();
    s.setLastReserved(0, parseIP("10.1.0.254"));
    s.setLastReserved(0, parseIP("10.1.0.2"));
    assert.equal(Deno.readTextFileSync(`${dir}/last_reserved_ip.0`), "10.1.0.2");
    s.setLastReserved(1, parseIP("fd00::1:2"));
    assert.equal(formatIP(s.lastReserved(1)!), "fd00::1:2");
  });
});
