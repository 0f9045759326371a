// The deterministic simulator: run one seed, get a verdict, stats and (optionally) a trace.
export { runSimulation } from "./simulation.ts";
export type { SimOptions, SimOverrides, SimResult, SimStats } from "./simulation.ts";
export { Prng } from "./prng.ts";
export { EventQueue } from "./event_queue.ts";
export { SimViolation } from "./safety.ts";
export type { AppBug } from "./sim_node.ts";
