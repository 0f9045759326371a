// The public API of the Raft core.
export * from "./types.ts";
export type { InitialState, Storage } from "./storage.ts";
export { MemoryStorage } from "./memory_storage.ts";
export { RawNode } from "./rawnode.ts";
export { decodeConfChange, encodeConfChange } from "./confchange_codec.ts";
export { bootstrap, bootstrapSnapshot } from "./bootstrap.ts";
export { entrySize, payloadsSize } from "./util.ts";
