// A sequential specification the checker tests a concurrent history against.

export interface Model<S, I, O> {
  /** The state before any operation. */
  init(): S;
  /**
   * The state after `input` takes effect in `state` producing `output`, or undefined when that
   * output is impossible from that state. `output` is undefined for an operation whose outcome is
   * unknown: the model must then accept any effect the operation could have had (a model whose
   * operation may also fail without effect returns the unchanged state in that case).
   */
  step(state: S, input: I, output: O | undefined): S | undefined;
  /** A string that is equal for equal states (memoisation key). */
  stateKey(state: S): string;
  /**
   * Optional P-compositionality: operations with different keys are independent, so each key's
   * sub-history is checked alone (exponentially cheaper).
   */
  partitionKey?(input: I): string;
  /** One short human line for an operation, e.g. `put(k, v)` or `get(k) -> "v"`. */
  describe(input: I, output: O | undefined): string;
  /** One short human line for a state, for explanations. */
  describeState(state: S): string;
}
