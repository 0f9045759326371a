// Refuses a well-formed peer message that would still break an invariant of the Raft core if it
// were stepped (the core asserts and the member stops). A correct leader never sends one; a
// forged, corrupted or buggy message gets a refusal here instead, and the member goes on.
import type { Raft } from "../../raft/raft.ts";
import type { Message } from "../../raft/types.ts";
import { decodeSnapshotData } from "./snapshot_envelope.ts";
import { decodeSnapshot as decodeStateSnapshot } from "../state_machine.ts";

/** Why `m` must not be stepped into `r`, or undefined when it is safe. */
export function stepRefusal(r: Raft, m: Message): string | undefined {
  if (m.term !== 0 && m.term < r.term) return undefined; // the core ignores stale terms
  switch (m.type) {
    case "MsgHeartbeat":
      return m.commit > r.raftLog.lastIndex()
        ? `heartbeat commit ${m.commit} is beyond this log (last index ${r.raftLog.lastIndex()})`
        : undefined;
    case "MsgApp":
      return appendRefusal(r, m);
    case "MsgSnap":
      return snapshotRefusal(r, m);
    case "MsgTransferLeader":
      // Only the leader of that very term takes it; anyone else would forward it with its term
      // set, which the core's sending rules forbid.
      return m.term !== 0 && !(r.state === "leader" && m.term === r.term)
        ? "a leadership transfer request that this member would have to forward again"
        : undefined;
    case "MsgAppResp":
      if (r.state !== "leader" || m.term > r.term || m.reject) return undefined;
      return m.index > r.raftLog.lastIndex()
        ? `append response acknowledges ${m.index}, beyond the leader's last index`
        : undefined;
  }
  return undefined;
}

function appendRefusal(r: Raft, m: Message): string | undefined {
  const log = r.raftLog;
  if (m.index < log.committed || !log.matchTerm(m.index, m.logTerm)) return undefined;
  const conflict = log.findConflict(m.entries);
  if (conflict !== 0 && conflict <= log.committed) {
    return `append rewrites committed entry ${conflict} (committed ${log.committed})`;
  }
  return undefined;
}

/** A snapshot that would be installed must decode: it is applied after Raft has moved on. */
function snapshotRefusal(r: Raft, m: Message): string | undefined {
  const s = m.snapshot;
  if (!s || s.metadata.index <= r.raftLog.committed) return undefined;
  try {
    const content = decodeSnapshotData(s.data);
    if (!content) return undefined;
    const t = content.members as unknown as Record<string, unknown>;
    if (!Number.isSafeInteger(t?.maxId) || !Array.isArray(t?.members)) {
      throw new Error("member table is malformed");
    }
    for (const mi of t.members as Record<string, unknown>[]) {
      if (!Number.isSafeInteger(mi?.id) || typeof mi?.address !== "string") {
        throw new Error("member table entry is malformed");
      }
    }
    if (content.sm.length > 0) decodeStateSnapshot(content.sm);
  } catch (e) {
    return `snapshot ${s.metadata.index} does not decode: ${(e as Error).message}`;
  }
  return undefined;
}
