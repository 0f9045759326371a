// What a client history is made of: one record per logical client operation.

export interface Operation<I, O> {
  /** Which client issued the operation (for explanations only; the checker does not need it). */
  clientId: number;
  input: I;
  /** When the client invoked the operation. */
  call: number;
  /** When the client learned the outcome; Infinity when it never did (timed out, gave up). */
  return: number;
  /** The observed result; undefined when the outcome is unknown (then `return` is Infinity). */
  output: O | undefined;
}

/** Whether an operation's outcome is unknown: it may have taken effect at any point after its call, or never. */
export function isUnknown<I, O>(op: Operation<I, O>): boolean {
  return op.output === undefined || op.return === Infinity;
}
