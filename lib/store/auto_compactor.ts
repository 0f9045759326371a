// When to compact, decided by the leader like etcd's revision-mode auto-compaction: keep at least
// `retain` revisions of history (for watchers that resume and reads at old revisions) and let it
// grow to twice that before proposing a compact command, so compactions are rare. Pure.

import type { KvStateMachine } from "./kv.ts";

/** etcd-style default: the last 10 000 revisions stay readable and watchable. */
export const DEFAULT_RETAIN_REVISIONS = 10_000;

/** The revision to compact to now, or null when history is still short enough. */
export function compactionDue(
  sm: Pick<KvStateMachine, "revision" | "compactRevision">,
  retain: number = DEFAULT_RETAIN_REVISIONS,
): string | null {
  const kept = sm.revision - Math.max(sm.compactRevision, 1);
  if (kept < 2 * retain) return null;
  return String(sm.revision - retain);
}
