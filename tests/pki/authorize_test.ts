// One row per authorization rule of shared/DESIGN.md "Trust", including the exact requests the
// agent sends (lib/subnet/etcd_client_registry.ts + manager.ts): list the leases, read the config,
// grant, create-if-absent (txn compare VERSION == 0), renew (txn compare MOD == rev, put with a
// new store lease), revoke the old store lease, delete its own incompatible lease, watch.
import assert from "node:assert/strict";
import { prefixEnd } from "../../lib/etcd/client.ts";
import {
  authorize,
  type AuthRequest,
  type Identity,
  type OpShape,
  type OwnershipView,
  PERMISSION_DENIED,
  UNAUTHENTICATED,
} from "../../lib/pki/authorize.ts";

const te = new TextEncoder();
const b = (s: string) => te.encode(s);
const P = "/coreos.com/network";
const POLICY = { prefix: P };
const SUBNETS = `${P}/subnets/`;
const MINE = `${SUBNETS}10.5.1.0-24`;
const THEIRS = `${SUBNETS}10.5.2.0-24`;
const RESERVED = `${SUBNETS}10.5.3.0-24`;
const FREE = `${SUBNETS}10.5.4.0-24`;

const n1: Identity = { kind: "node", nodeName: "n1" };
const m1: Identity = { kind: "member", nodeName: "m1", memberId: 11 };
const admin: Identity = { kind: "admin", nodeName: "v1" };

// Store leases: 100 and 101 are n1's, 200 is n2's, 300 is m1's. Keys: MINE on 100, THEIRS on
// 200, RESERVED on no lease, the config, and a key outside the network prefix.
const leases = new Map([["100", "n1"], ["101", "n1"], ["200", "n2"], ["300", "m1"]]);
const keys = new Map([
  [MINE, "100"],
  [THEIRS, "200"],
  [RESERVED, "0"],
  [`${P}/config`, "0"],
  ["/twill/join-secret", "0"],
]);
const view: OwnershipView = {
  leaseOwner: (id) => leases.get(id),
  keyLease: (k) => keys.get(new TextDecoder().decode(k)),
};

const range = (key: string, end?: string | Uint8Array): AuthRequest => ({
  route: "/v3/kv/range",
  range: { key: b(key), rangeEnd: typeof end === "string" ? b(end) : end },
});
const put = (key: string, lease: string): OpShape => ({ put: { key: b(key), lease } });
const createIfAbsent = (key: string, lease: string): AuthRequest => ({
  route: "/v3/kv/txn",
  txn: { compare: [{ key: b(key) }], success: [put(key, lease)], failure: [] },
});
const del = (key: string, end?: string): AuthRequest => ({
  route: "/v3/kv/deleterange",
  range: { key: b(key), rangeEnd: end === undefined ? undefined : b(end) },
});

type Row = [name: string, who: Identity | null, req: AuthRequest, allow: boolean];

const rows: Row[] = [
  // reads
  ["node reads the config", n1, range(`${P}/config`), true],
  ["node lists the leases (prefix range)", n1, range(SUBNETS, prefixEnd(b(SUBNETS))), true],
  ["node reads one lease", n1, range(THEIRS), true],
  ["node watches the leases", n1, {
    route: "/v3/watch",
    range: { key: b(SUBNETS), rangeEnd: prefixEnd(b(SUBNETS)) },
  }, true],
  ["node reads a key outside the network", n1, range("/twill/join-secret"), false],
  ["node ranges past the subnets prefix", n1, range(SUBNETS, "/coreos.com/networl"), false],
  ["node ranges every key from the prefix on", n1, range(SUBNETS, new Uint8Array([0])), false],
  ["node ranges the whole network prefix", n1, range(`${P}/`, prefixEnd(b(`${P}/`))), false],
  ["node watches everything", n1, {
    route: "/v3/watch",
    range: { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]) },
  }, false],
  ["node reads status", n1, { route: "/v3/maintenance/status" }, true],
  ["node reads raft status", n1, { route: "/raft/status" }, true],
  ["node reads members", n1, { route: "/raft/members" }, true],
  // creating a lease
  ["node grants a store lease", n1, { route: "/v3/lease/grant" }, true],
  ["node creates a free subnet lease on its store lease", n1, createIfAbsent(FREE, "101"), true],
  ["node creates on another node's store lease", n1, createIfAbsent(FREE, "200"), false],
  ["node creates with no store lease (a reservation)", n1, createIfAbsent(FREE, "0"), false],
  ["node creates on a store lease that does not exist", n1, createIfAbsent(FREE, "999"), false],
  ["node takes over another node's subnet key", n1, createIfAbsent(THEIRS, "101"), false],
  ["node writes a key that is not a subnet key", n1, createIfAbsent(`${SUBNETS}x`, "101"), false],
  [
    "node writes junk before a subnet name",
    n1,
    createIfAbsent(`${SUBNETS}x10.5.9.0-24`, "101"),
    false,
  ],
  ["node writes below a subnet key", n1, createIfAbsent(`${SUBNETS}a/10.5.9.0-24`, "101"), false],
  ["node writes the config", n1, {
    route: "/v3/kv/put",
    put: { key: b(`${P}/config`), lease: "101" },
  }, false],
  // renewing, updating, deleting
  ["node renews its own lease (fenced put, new store lease)", n1, {
    route: "/v3/kv/txn",
    txn: { compare: [{ key: b(MINE) }], success: [put(MINE, "101")], failure: [] },
  }, true],
  ["node plain-puts its own lease", n1, {
    route: "/v3/kv/put",
    put: { key: b(MINE), lease: "100" },
  }, true],
  ["node puts another node's lease", n1, {
    route: "/v3/kv/put",
    put: { key: b(THEIRS), lease: "100" },
  }, false],
  ["node puts with ignore_lease", n1, {
    route: "/v3/kv/put",
    put: { key: b(MINE), lease: "100", ignoreLease: true },
  }, false],
  ["node rewrites a reservation", n1, createIfAbsent(RESERVED, "101"), false],
  ["node deletes its own lease", n1, del(MINE), true],
  ["node deletes a lease that no longer exists", n1, del(FREE), true],
  ["node deletes another node's lease", n1, del(THEIRS), false],
  ["node deletes a range of leases", n1, del(SUBNETS, `${SUBNETS}z`), false],
  ["node deletes the config", n1, del(`${P}/config`), false],
  // txn shapes
  ["txn: a forbidden op in the failure branch", n1, {
    route: "/v3/kv/txn",
    txn: {
      compare: [{ key: b(MINE) }],
      success: [put(MINE, "100")],
      failure: [put(THEIRS, "100")],
    },
  }, false],
  ["txn: compare on a key outside the network (value probe)", n1, {
    route: "/v3/kv/txn",
    txn: { compare: [{ key: b("/twill/join-secret") }], success: [put(MINE, "100")], failure: [] },
  }, false],
  ["txn: read-only ranges of the leases", n1, {
    route: "/v3/kv/txn",
    txn: { compare: [], success: [{ range: { key: b(THEIRS) } }], failure: [] },
  }, true],
  ["txn: nested txn", n1, {
    route: "/v3/kv/txn",
    txn: {
      compare: [],
      success: [{ txn: { compare: [], success: [], failure: [] } }],
      failure: [],
    },
  }, false],
  // store leases
  [
    "node keeps its own store lease alive",
    n1,
    { route: "/v3/lease/keepalive", leaseId: "100" },
    true,
  ],
  ["node revokes its own store lease", n1, { route: "/v3/lease/revoke", leaseId: "101" }, true],
  ["node asks the TTL of its own store lease", n1, {
    route: "/v3/lease/timetolive",
    leaseId: "100",
  }, true],
  [
    "node revokes a store lease already gone",
    n1,
    { route: "/v3/lease/revoke", leaseId: "999" },
    true,
  ],
  [
    "node revokes another node's store lease",
    n1,
    { route: "/v3/lease/revoke", leaseId: "200" },
    false,
  ],
  ["node keeps another node's store lease alive", n1, {
    route: "/v3/lease/keepalive",
    leaseId: "200",
  }, false],
  [
    "node reads another node's store lease",
    n1,
    { route: "/v3/lease/timetolive", leaseId: "200" },
    false,
  ],
  ["node lists every store lease", n1, { route: "/v3/lease/leases" }, false],
  // admin-only and peer routes
  ["node compacts", n1, { route: "/v3/kv/compaction" }, false],
  ["node calls an unknown route", n1, { route: "other", path: "/v3/auth/enable" }, false],
  ["node sends a raft message", n1, { route: "/raft/msg", senders: [11] }, false],
  ["node opens a peer stream", n1, { route: "/raft/stream", senders: [11] }, false],
  ["node forwards a lease keepalive", n1, { route: "/raft/lease/keepalive" }, false],
  ["member sends its own raft messages", m1, { route: "/raft/msg", senders: [11, 11] }, true],
  ["member streams and snapshots as itself", m1, { route: "/raft/snapshot", senders: [11] }, true],
  [
    "member sends a message from another member",
    m1,
    { route: "/raft/msg", senders: [11, 12] },
    false,
  ],
  ["member forwards a lease keepalive", m1, { route: "/raft/lease/timetolive" }, true],
  ["member acts as its node: renews its lease", m1, createIfAbsent(FREE, "300"), true],
  ["member compacts", m1, { route: "/v3/kv/compaction" }, false],
  ["member deletes another node's lease", m1, del(THEIRS), false],
  ["member without a member id sends raft messages", { kind: "member", nodeName: "x" }, {
    route: "/raft/msg",
    senders: [11],
  }, false],
  ["admin compacts", admin, { route: "/v3/kv/compaction" }, true],
  ["admin writes the config", admin, {
    route: "/v3/kv/put",
    put: { key: b(`${P}/config`), lease: "0" },
  }, true],
  ["admin deletes any lease", admin, del(THEIRS), true],
  ["admin deletes a range", admin, del(SUBNETS, `${SUBNETS}z`), true],
  ["admin reads anything", admin, range("/twill/join-secret"), true],
  ["admin revokes any store lease", admin, { route: "/v3/lease/revoke", leaseId: "200" }, true],
  // join and unauthenticated
  ["no credential joins (the join secret is checked there)", null, { route: "/raft/join" }, true],
  ["no credential reads status", null, { route: "/v3/maintenance/status" }, false],
  ["no credential reads a lease", null, range(MINE), false],
];

for (const [name, who, req, allow] of rows) {
  Deno.test(`authorize: ${name} → ${allow ? "allow" : "deny"}`, () => {
    const d = authorize(who, req, view, POLICY);
    assert.equal(d.allow, allow, d.allow ? "allowed" : d.reason);
    if (!d.allow && who !== null) {
      assert.equal(d.status, 403);
      assert.equal(d.grpcCode, 7);
      assert.equal(d.message, PERMISSION_DENIED);
      assert.ok(d.reason.length > 0);
    }
    if (!d.allow && who === null) {
      assert.equal(d.status, 401);
      assert.equal(d.grpcCode, 16);
      assert.equal(d.message, UNAUTHENTICATED);
    }
  });
}

Deno.test("authorize: another --etcd-prefix moves the node's scope with it", () => {
  const other = { prefix: "/custom/net/" };
  assert.equal(authorize(n1, range("/custom/net/config"), view, other).allow, true);
  assert.equal(authorize(n1, range(`${P}/config`), view, other).allow, false);
  assert.equal(
    authorize(n1, createIfAbsent("/custom/net/subnets/10.5.4.0-24", "101"), view, other).allow,
    true,
  );
});

Deno.test("authorize: dual-stack subnet keys are subnet keys", () => {
  const key = `${SUBNETS}10.5.4.0-24&fd00:0:0:4::-64`;
  assert.equal(authorize(n1, createIfAbsent(key, "101"), view, POLICY).allow, true);
});
