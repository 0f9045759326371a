// A plain client's member list refresh (lib/daemon/client_endpoints.ts), against fake members.
import assert from "node:assert/strict";
import {
  membersOfAnswer,
  refreshEndpoints,
  sameAddresses,
} from "../../lib/daemon/client_endpoints.ts";
import type { MemberInfo } from "../../lib/store/member/members.ts";
import type { Logger } from "../../lib/log.ts";

const lines: string[] = [];
const logger: Logger = (level, event) => lines.push(`${level} ${event}`);

function answer(...addresses: string[]) {
  return { members: addresses.map((address, i) => ({ id: i + 4, address, name: `n${i}` })) };
}

Deno.test("an answer's members are checked and bounded", () => {
  assert.deepEqual(membersOfAnswer(answer("d:1")), [{ id: 4, address: "d:1", name: "n0" }]);
  assert.deepEqual(membersOfAnswer({ members: [{ id: 2, address: "" }] }), []);
  assert.throws(() => membersOfAnswer({}), /no members list/);
  assert.throws(() => membersOfAnswer({ members: [{ id: -1, address: "x:1" }] }), /valid id/);
  assert.throws(() => membersOfAnswer({ members: [{ id: 1, address: 7 }] }), /valid address/);
  const many = { members: Array.from({ length: 65 }, (_, i) => ({ id: i + 1, address: "a:1" })) };
  assert.throws(() => membersOfAnswer(many), /lists 65 members/);
  assert.ok(sameAddresses(["a", "b"], ["b", "a"]));
  assert.ok(!sameAddresses(["a", "b"], ["a"]));
});

Deno.test("the first member that answers gives the new list; an unchanged one is kept", async () => {
  let current = ["a:1", "b:1", "c:1"];
  const applied: MemberInfo[][] = [];
  const asked: string[] = [];
  const o = {
    current: () => current,
    fetchMembers: (address: string) => {
      asked.push(address);
      if (address === "a:1") return Promise.reject(new Error("connection refused"));
      return Promise.resolve(answer("c:1", "d:1", "e:1"));
    },
    apply: (m: MemberInfo[]) => {
      applied.push(m);
      current = m.map((x) => x.address);
      return Promise.resolve();
    },
    logger,
  };
  assert.equal(await refreshEndpoints(o), true);
  assert.deepEqual(asked, ["a:1", "b:1"]);
  assert.deepEqual(current, ["c:1", "d:1", "e:1"]);
  assert.ok(lines.includes("info store_endpoints_refreshed"));
  assert.equal(await refreshEndpoints(o), false, "the same addresses change nothing");
  assert.equal(applied.length, 1);
});

Deno.test("no answer or an empty table leaves the list as it is", async () => {
  const current = ["a:1"];
  let applied = 0;
  const base = {
    current: () => current,
    apply: () => {
      applied++;
      return Promise.resolve();
    },
    logger,
  };
  const down = { ...base, fetchMembers: () => Promise.reject(new Error("timed out")) };
  assert.equal(await refreshEndpoints(down), false);
  assert.ok(lines.includes("warn store_endpoints_refresh_failed"));
  const empty = { ...base, fetchMembers: () => Promise.resolve({ members: [] }) };
  assert.equal(await refreshEndpoints(empty), false);
  assert.equal(applied, 0);
});
