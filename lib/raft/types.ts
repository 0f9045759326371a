// The vocabulary of the Raft core, shaped after etcd's raftpb. Everything here is plain data so
// that messages can be traced, compared in tests and serialised by the transport.

/** Node ids are positive safe integers; 0 means "none". Ids are never reused. */
export type NodeId = number;
export const NONE: NodeId = 0;

export type EntryType = "normal" | "confChange";

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Application payload (normal) or an encoded ConfChange (confChange). Empty for the no-op. */
  data: Uint8Array;
}

export type ConfChangeType = "addNode" | "addLearner" | "removeNode";

/**
 * A single-step membership change. `addNode` of an existing learner promotes it; `addLearner`
 * of an existing voter is refused. `context` is opaque to Raft (the store puts the address there).
 */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  context?: Uint8Array;
}

export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  data: Uint8Array;
  metadata: SnapshotMetadata;
}

export type MessageType =
  // local messages (never sent on the wire)
  | "MsgHup"
  | "MsgBeat"
  | "MsgUnreachable"
  | "MsgSnapStatus"
  | "MsgCheckQuorum"
  // wire messages
  | "MsgProp"
  | "MsgApp"
  | "MsgAppResp"
  | "MsgVote"
  | "MsgVoteResp"
  | "MsgPreVote"
  | "MsgPreVoteResp"
  | "MsgSnap"
  | "MsgHeartbeat"
  | "MsgHeartbeatResp"
  | "MsgTransferLeader"
  | "MsgTimeoutNow"
  | "MsgReadIndex"
  | "MsgReadIndexResp";

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** For MsgApp: term of the entry at `index`. For votes: candidate's last log term. */
  logTerm: number;
  /** For MsgApp: index preceding `entries`. For votes: candidate's last index. For MsgAppResp: acknowledged (or rejected) index. */
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  /** For a rejected MsgAppResp: the follower's hint of where the logs may match. */
  rejectHint: number;
  /** Opaque context: ReadIndex request ids, heartbeat read contexts, campaign-transfer marker. */
  context?: Uint8Array;
}

export type StateRole = "follower" | "preCandidate" | "candidate" | "leader";

export interface SoftState {
  lead: NodeId;
  role: StateRole;
}

/** A linearizable read: once the application has applied `index`, it may serve the read `requestCtx`. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

/**
 * What the application must do next, in order: persist `hardState`, `entries` and `snapshot`
 * (fsync when `mustSync`), then send `messages`, apply `snapshot` and `committedEntries`, and call
 * `advance()`.
 *
 * With `Config.asyncStorageWrites` the write runs alongside everything else instead (see
 * RawNode): `messages` may be sent at once, `committedEntries` applied at once (they are durable
 * here already), and `messagesAfterPersist` go out only once this Ready's write is durable.
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  readStates: ReadState[];
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  /**
   * Asynchronous writes only (empty otherwise): messages that must wait until this Ready's write
   * (and every earlier one) is durable: acknowledgements of entries, votes, and anything sent
   * while a new term or vote is not yet durable.
   */
  messagesAfterPersist: Message[];
  mustSync: boolean;
}

export type ProgressState = "probe" | "replicate" | "snapshot";

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
  inflight: number;
  pendingSnapshot: number;
}

export interface Status {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  /** Present on the leader only. */
  progress?: Map<NodeId, ProgressStatus>;
  leadTransferee: NodeId;
  config: ConfState;
}

/** Errors a caller can act on. Each carries a stable `code`. */
export class RaftError extends Error {
  constructor(
    readonly code:
      | "ProposalDropped"
      | "ProposalTooLarge"
      | "ConfChangePending"
      | "Compacted"
      | "SnapOutOfDate"
      | "Unavailable"
      | "SnapshotTemporarilyUnavailable"
      | "StepLocalMsg"
      | "StepPeerNotFound"
      | "InvalidConfChange",
    message: string,
  ) {
    super(message);
    this.name = "RaftError";
  }
}

/** Injected randomness: returns an integer in [0, n). The core never calls Math.random. */
export type RandInt = (n: number) => number;

export interface Config {
  id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns; randomized in [e, 2e). */
  electionTick: number;
  heartbeatTick: number;
  storage: import("./storage.ts").Storage;
  /** Last applied index when restarting. */
  applied?: number;
  /** Max bytes of entries in one MsgApp (0 = one entry per message). Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Max bytes of committed entries handed out in one Ready. Default = maxSizePerMsg * 8. */
  maxCommittedSizePerReady?: number;
  /** Max in-flight MsgApp per follower in replicate state. Default 256. */
  maxInflightMsgs?: number;
  /** Cap on uncommitted entry payload bytes at the leader; 0 = no cap. Default 16 MiB. */
  maxUncommittedEntriesSize?: number;
  /** Default true. */
  checkQuorum?: boolean;
  /** Default true. */
  preVote?: boolean;
  /**
   * Default false. When true, the application writes each Ready in the background and reports
   * it durable with RawNode.persisted(rd): the leader replicates while its own write runs and
   * counts itself toward a quorum only for entries reported durable; followers acknowledge
   * (messagesAfterPersist) as soon as their write lands.
   */
  asyncStorageWrites?: boolean;
  /** Injected randomness for election timeouts. */
  rand: RandInt;
  /** Optional structured logger; the core logs only through it. */
  logger?: (event: string, fields: Record<string, unknown>) => void;
}
