// A min-heap of timed events. Ties on time are broken by insertion order, so the simulation is
// deterministic for a given sequence of schedule() calls.

interface Slot<E> {
  time: number;
  seq: number;
  event: E;
}

export class EventQueue<E> {
  #heap: Slot<E>[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  schedule(time: number, event: E): void {
    const heap = this.#heap;
    const slot = { time, seq: this.#seq++, event };
    heap.push(slot);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(slot, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = slot;
  }

  /** The time of the next event, or Infinity when empty. */
  peekTime(): number {
    return this.#heap.length === 0 ? Infinity : this.#heap[0].time;
  }

  /** Removes and returns the earliest event. */
  pop(): { time: number; event: E } | undefined {
    const heap = this.#heap;
    if (heap.length === 0) return undefined;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const r = l + 1;
        const child = r < heap.length && before(heap[r], heap[l]) ? r : l;
        if (!before(heap[child], last)) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return { time: top.time, event: top.event };
  }
}

function before<E>(a: Slot<E>, b: Slot<E>): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
