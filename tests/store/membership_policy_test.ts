// The leader's membership policy (lib/store/member/membership.ts), decision by decision.
import assert from "node:assert/strict";
import { decideMembership, type MembershipView } from "../../lib/store/member/membership.ts";

function view(over: Partial<MembershipView>): MembershipView {
  return {
    now: 100_000,
    self: 1,
    voters: [1, 2, 3],
    learners: [],
    commit: 500,
    match: new Map([[1, 500], [2, 500], [3, 500], [4, 500], [5, 500]]),
    lastContact: new Map([[2, 99_900], [3, 99_900], [4, 99_900], [5, 99_900]]),
    leaderSince: 0,
    desiredVoters: 3,
    deadVoterTimeoutMs: 30_000,
    freshContactMs: 2000,
    catchUpSlack: 100,
    pendingConfChange: false,
    ...over,
  };
}

Deno.test("a caught-up learner is promoted while voters are fewer than wanted", () => {
  assert.deepEqual(decideMembership(view({ voters: [1], learners: [2, 3] })), {
    type: "promote",
    id: 2,
    reason: "fill_voters",
  });
});

Deno.test("a learner that has acknowledged nothing is not promoted, however short the log", () => {
  // Just added (its grace counts as contact) but not serving yet: match 0, commit within slack.
  const match = new Map([[1, 19]]);
  const lastContact = new Map([[2, 99_900], [3, 99_900], [4, 99_950]]);
  const v = view({ voters: [1, 2, 3], learners: [4], commit: 19, match, lastContact });
  assert.equal(decideMembership({ ...v, voters: [1, 3], desiredVoters: 3 }), null);
  match.set(4, 19);
  assert.deepEqual(decideMembership({ ...v, voters: [1, 3], desiredVoters: 3 }), {
    type: "promote",
    id: 4,
    reason: "fill_voters",
  });
});

Deno.test("a lagging or silent learner is not promoted", () => {
  const match = new Map([[1, 500], [2, 10]]);
  assert.equal(decideMembership(view({ voters: [1], learners: [2], match })), null);
  const lastContact = new Map([[2, 90_000]]);
  assert.equal(decideMembership(view({ voters: [1], learners: [2], lastContact })), null);
});

Deno.test("nothing happens while a change is pending or at the wanted size", () => {
  assert.equal(
    decideMembership(view({ voters: [1], learners: [2], pendingConfChange: true })),
    null,
  );
  assert.equal(decideMembership(view({ learners: [4] })), null);
});

Deno.test("a dead voter is replaced: promote a learner first, then remove the dead voter", () => {
  const lastContact = new Map([[2, 99_900], [3, 50_000], [4, 99_900]]);
  assert.deepEqual(decideMembership(view({ learners: [4], lastContact })), {
    type: "promote",
    id: 4,
    reason: "replace_dead_voter",
    replacing: 3,
  });
  assert.deepEqual(decideMembership(view({ voters: [1, 2, 3, 4], lastContact })), {
    type: "removeVoter",
    id: 3,
    reason: "dead",
  });
});

Deno.test("a dead voter without a learner to replace it stays (no shrinking below --voters)", () => {
  const lastContact = new Map([[2, 99_900], [3, 50_000]]);
  assert.equal(decideMembership(view({ lastContact })), null);
});

Deno.test("no change without a healthy quorum", () => {
  const lastContact = new Map([[2, 10_000], [3, 10_000], [4, 99_900]]);
  assert.equal(decideMembership(view({ learners: [4], lastContact })), null);
});

Deno.test("contact before this leader's term counts from when it became leader", () => {
  const lastContact = new Map<number, number>();
  assert.equal(decideMembership(view({ lastContact, leaderSince: 90_000 })), null);
});

Deno.test("a dead learner is removed", () => {
  const lastContact = new Map([[2, 99_900], [3, 99_900], [5, 10_000]]);
  assert.deepEqual(decideMembership(view({ learners: [5], lastContact })), {
    type: "removeLearner",
    id: 5,
    reason: "dead",
  });
});

Deno.test("with more voters than wanted, the most lagging voter that does not lead is demoted", () => {
  const match = new Map([[1, 500], [2, 480], [3, 490]]);
  assert.deepEqual(decideMembership(view({ desiredVoters: 1, match })), {
    type: "demote",
    id: 2,
    reason: "over_voters",
  });
  // Equally caught up: the highest id goes first; the leader itself never.
  assert.deepEqual(decideMembership(view({ desiredVoters: 2 })), {
    type: "demote",
    id: 3,
    reason: "over_voters",
  });
  assert.equal(decideMembership(view({ voters: [1, 2], desiredVoters: 2 })), null);
});

Deno.test("a demotion under way is finished first: the member comes back as a learner", () => {
  assert.deepEqual(
    decideMembership(view({ voters: [1, 2], learners: [4], desiredVoters: 1, demoting: [3] })),
    { type: "readdLearner", id: 3, reason: "demoted" },
  );
  // Once it is a learner again the flag means nothing; the next voter is demoted.
  assert.deepEqual(
    decideMembership(view({ voters: [1, 2], learners: [3], desiredVoters: 1, demoting: [3] })),
    { type: "demote", id: 2, reason: "over_voters" },
  );
  assert.equal(
    decideMembership(view({ voters: [1], learners: [2, 3], desiredVoters: 1, demoting: [] })),
    null,
  );
});

Deno.test("a dead voter over the wanted count is removed before any healthy one is demoted", () => {
  const lastContact = new Map([[2, 99_900], [3, 50_000]]);
  assert.deepEqual(decideMembership(view({ desiredVoters: 1, lastContact })), {
    type: "removeVoter",
    id: 3,
    reason: "dead",
  });
  // Two of five dead: demoting a healthy voter would leave 2 healthy of 4 (no quorum), so the
  // dead go first.
  const twoDead = new Map([[2, 10_000], [3, 10_000], [4, 99_900], [5, 99_900]]);
  assert.deepEqual(
    decideMembership(view({ voters: [1, 2, 3, 4, 5], desiredVoters: 3, lastContact: twoDead })),
    { type: "removeVoter", id: 2, reason: "dead" },
  );
});

Deno.test("a silent voter is demoted first; none while too few voters answer", () => {
  // Voter 2 restarting (heard from 5 s ago): demoting it leaves 1 and 3, both answering.
  const restarting = new Map([[2, 95_000], [3, 99_900]]);
  assert.deepEqual(decideMembership(view({ desiredVoters: 1, lastContact: restarting })), {
    type: "demote",
    id: 2,
    reason: "over_voters",
  });
  // Two voters, the other one silent: removing it could not commit.
  const other = new Map([[2, 95_000]]);
  assert.equal(
    decideMembership(view({ voters: [1, 2], desiredVoters: 1, lastContact: other })),
    null,
  );
  // Five voters, two silent: 3 of 5 answer, and removing a silent one leaves 3 of 4.
  const twoSilent = new Map([[2, 95_000], [3, 95_000], [4, 99_900], [5, 99_900]]);
  assert.deepEqual(
    decideMembership(view({ voters: [1, 2, 3, 4, 5], desiredVoters: 3, lastContact: twoSilent })),
    { type: "demote", id: 3, reason: "over_voters" },
  );
});
