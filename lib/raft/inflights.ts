// The window of MsgApp messages in flight to one follower (flow control). Each entry is the
// last index carried by a message; acknowledgements free everything up to an index.
export class Inflights {
  private buffer: number[] = [];

  constructor(readonly size: number) {}

  add(inflight: number): void {
    if (this.full()) throw new Error("raft invariant violated: add to a full inflights window");
    this.buffer.push(inflight);
  }

  /** Free every in-flight message whose last index is <= to. */
  freeLE(to: number): void {
    let i = 0;
    while (i < this.buffer.length && this.buffer[i] <= to) i++;
    if (i > 0) this.buffer = this.buffer.slice(i);
  }

  freeFirstOne(): void {
    if (this.buffer.length > 0) this.buffer = this.buffer.slice(1);
  }

  full(): boolean {
    return this.buffer.length >= this.size;
  }

  count(): number {
    return this.buffer.length;
  }

  reset(): void {
    this.buffer = [];
  }
}
