// The deterministic simulator of a Raft-replicated KV store (`deno task sim`).
//
// One seed fixes everything: a single PRNG (prng.ts) draws the cluster shape (1/3/5 voters,
// 0–2 learners), the tuning (heartbeat, message size, in-flight window, snapshot threshold, fsync
// delay), the fault mix and every decision during the run. Nothing reads a clock or Math.random,
// so `runSimulation({ seed })` replays exactly; `traceHash` proves it.
//
// The world (simulation.ts): RawNodes over MemoryStorage driven like a real application
// (sim_node.ts: persist, sync, send, apply, advance; a crash loses the Ready that was not yet
// synced and lazily written commit indexes), a network that drops, duplicates, delays and
// reorders messages and cuts links one way or both (network.ts), and faults: partitions (one
// node, the leader, random halves, one-way, bridges), crashes and restarts, frozen processes,
// stalled clocks, strikes on freshly elected leaders, membership changes (add learner, promote,
// remove, add a voter with a new id), leadership transfers and forced campaigns. Clients
// (workload.ts) run put / cas / delete / linearizable get with request ids, time out and retry
// elsewhere; the state machine (kv_state_machine.ts) deduplicates by request id.
//
// Checks (safety.ts and sim_node.ts), at the event that breaks them: one leader per term; log
// matching (chain hashes per (index, term)); no node replaces an entry it committed; every commit
// agrees with the committed log; leader completeness; applied = committed, in order, never
// backwards; term/vote never backwards, also across restarts; acknowledged writes are in the
// committed log; white-box (checks: "all"): a leader commits only entries of its own term, a
// leader's match index for a follower of its term is really in that follower's log, a read index
// is never below an index committed before the read arrived. After healing: a leader within three
// (maximal) election timeouts, every client operation finishes, all replicas converge to the same
// state; then the client history must be linearizable (lib/linearizability).
export { runSimulation } from "./simulation.ts";
export type { SimOptions, SimOverrides, SimResult, SimStats } from "./simulation.ts";
export { Prng } from "./prng.ts";
export { EventQueue } from "./event_queue.ts";
export { SimViolation } from "./safety.ts";
export type { AppBug } from "./sim_node.ts";
