// Errors that stop a member from starting on damaged storage. One line each, saying what is
// wrong, where, and what the operator can do.

const REMEDY = "restore this member from a snapshot or remove it and re-join";

/** Damage in the log or snapshots that a crash cannot explain; the member must not start. */
export class WalCorruptError extends Error {
  constructor(
    readonly path: string,
    readonly offset: number | undefined,
    readonly reason: string,
  ) {
    const where = offset === undefined ? path : `${path} at offset ${offset}`;
    super(`wal: corrupt record in ${where} (${reason}); refusing to start — ${REMEDY}`);
    this.name = "WalCorruptError";
  }
}

/** The files are individually sound but do not fit together (missing segment or snapshot). */
export class WalInconsistentError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`wal: ${reason} (${path}); refusing to start — ${REMEDY}`);
    this.name = "WalInconsistentError";
  }
}
