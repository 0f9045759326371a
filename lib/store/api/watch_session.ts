// One watch stream (one POST /v3/watch): its watchers, their catch-up from history and live
// events, in etcd's order and shapes. Every watcher delivers each revision at most once and in
// order: `next` is the first revision it has not delivered yet.
//
// A slow client does not make the server buffer without bound: while `canSend()` is false, live
// events are not sent and the watchers fall behind (like etcd's unsynced watchers); `resume()`
// (called when the client has read) catches them up from history in one response each. A
// watcher whose missed history was compacted meanwhile is canceled with compact_revision.
//
// Live events are encoded once per revision and shape, not once per watcher: every watcher (of
// any session on this state machine) that gets the same events of a revision with the same
// watch id and prev_kv choice is handed the same encoded line, so a thousand watchers of one
// prefix cost one JSON encoding and one buffer per event, queued by reference in every stream.

import type { KvStateMachine, RevisionEvents, WatchEvent } from "../kv.ts";
import { StoreError } from "../errors.ts";
import { watchesClosed, watchOpened } from "../../metrics.ts";
import { inRange, toBin } from "../mvcc_keys.ts";
import {
  boolField,
  bytesField,
  encodeEvent,
  encodeHeader,
  type Header,
  int64Field,
  JsonNumber,
  type JsonObject,
} from "./json_codec.ts";

interface Watcher {
  id: string;
  start: string; // binary key
  end: string;
  prevKv: boolean;
  noPut: boolean;
  noDelete: boolean;
  progressNotify: boolean;
  next: number;
  sentSinceTick: boolean;
}

/** What a session sends: a WatchResponse to wrap as {"result": …}, or such a line already
 *  encoded (by encodeResultLine). */
export type WatchOutput = JsonObject | Uint8Array;

const lineEncoder = new TextEncoder();

/** One newline-terminated {"result": …} line, as the watch stream carries it. */
export function encodeResultLine(result: JsonObject): Uint8Array {
  return lineEncoder.encode(JSON.stringify({ result }) + "\n");
}

/** Per live batch (the same object reaches every subscriber): its events' binary keys, and the
 *  lines encoded so far, by shape. Dropped with the batch. */
interface SharedBatch {
  keys: string[];
  lines: Map<string, Uint8Array>;
}
const sharedBatches = new WeakMap<RevisionEvents, SharedBatch>();

function sharedBatch(batch: RevisionEvents): SharedBatch {
  let shared = sharedBatches.get(batch);
  if (!shared) {
    shared = { keys: batch.events.map((e) => toBin(e.kv.key)), lines: new Map() };
    sharedBatches.set(batch, shared);
  }
  return shared;
}

/** Watchers one watch stream may hold (etcd has no such cap; each costs memory here). */
export const MAX_WATCHERS_PER_STREAM = 4096;
/** Bytes of history events one catch-up response carries before the next is considered. */
const CATCH_UP_CHUNK_BYTES = 256 * 1024;

/** Roughly what an event costs on the stream (base64 grows the bytes by a third). */
function eventBytes(e: WatchEvent, prevKv: boolean): number {
  const kv = (x: WatchEvent["kv"] | undefined) =>
    x ? (x.key.length + x.value.length) * 1.34 + 120 : 0;
  return kv(e.kv) + (prevKv ? kv(e.prevKv) : 0);
}

export class WatchSession {
  readonly #sm: KvStateMachine;
  readonly #header: () => Header;
  readonly #send: (result: WatchOutput) => void;
  readonly #canSend: () => boolean;
  readonly #watchers = new Map<string, Watcher>();
  #nextId = 0n;
  #unsubscribe: () => void;
  #unrestore: () => void;
  #closed = false;

  constructor(
    sm: KvStateMachine,
    header: () => Header,
    send: (result: WatchOutput) => void,
    canSend: () => boolean = () => true,
  ) {
    this.#sm = sm;
    this.#header = header;
    this.#send = send;
    this.#canSend = canSend;
    this.#unsubscribe = sm.subscribe((batch) => this.#onBatch(batch));
    this.#unrestore = sm.onRestore(() => this.#onRestore());
  }

  get size(): number {
    return this.#watchers.size;
  }

  /** Most watchers one stream may hold; a create beyond it is answered canceled. */
  static maxWatchers = MAX_WATCHERS_PER_STREAM;

  /** One WatchRequest (create_request, cancel_request or progress_request). */
  handle(req: JsonObject): void {
    if (this.#closed) return;
    const create = req.create_request ?? req.createRequest;
    const cancel = req.cancel_request ?? req.cancelRequest;
    const progress = req.progress_request ?? req.progressRequest;
    if (create && typeof create === "object") this.#create(create as JsonObject);
    else if (cancel && typeof cancel === "object") this.#cancel(cancel as JsonObject);
    else if (progress && typeof progress === "object") {
      this.#send({ header: this.#head(this.#sm.revision), watch_id: "-1" });
    }
  }

  /** Progress notifications for watchers that asked and had nothing to send since last tick. */
  tick(): void {
    for (const w of this.#watchers.values()) {
      if (w.progressNotify && !w.sentSinceTick && w.next > this.#sm.revision) {
        this.#send(this.#withId(w, { header: this.#head(this.#sm.revision) }));
      }
      w.sentSinceTick = false;
    }
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    this.#unrestore();
    watchesClosed(this.#watchers.size);
    this.#watchers.clear();
  }

  #head(revision: number): JsonObject {
    return encodeHeader(this.#header(), revision);
  }

  #withId(w: Watcher, body: JsonObject): JsonObject {
    const { header, ...rest } = body;
    return w.id === "0" ? { header, ...rest } : { header, watch_id: w.id, ...rest };
  }

  #create(o: JsonObject): void {
    if (this.#watchers.size >= WatchSession.maxWatchers) {
      this.#send({
        header: this.#head(this.#sm.revision),
        watch_id: "-1",
        created: true,
        canceled: true,
        cancel_reason: `too many watchers on this stream (at most ${WatchSession.maxWatchers})`,
      });
      return;
    }
    const asked = int64Field(o, "watch_id");
    let id: string;
    if (asked !== "0") {
      if (this.#watchers.has(asked)) {
        this.#send({
          header: this.#head(this.#sm.revision),
          watch_id: "-1",
          created: true,
          canceled: true,
          cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream",
        });
        return;
      }
      id = asked;
    } else {
      while (this.#watchers.has(String(this.#nextId))) this.#nextId++;
      id = String(this.#nextId++);
    }
    const filters = Array.isArray(o.filters)
      ? o.filters.map((f) => f instanceof JsonNumber ? f.source : String(f))
      : [];
    const startRev = Number(int64Field(o, "start_revision"));
    const w: Watcher = {
      id,
      start: toBin(bytesField(o, "key")),
      end: toBin(bytesField(o, "range_end")),
      prevKv: boolField(o, "prev_kv"),
      noPut: filters.includes("NOPUT") || filters.includes("0"),
      noDelete: filters.includes("NODELETE") || filters.includes("1"),
      progressNotify: boolField(o, "progress_notify"),
      next: startRev > 0 ? startRev : this.#sm.revision + 1,
      sentSinceTick: false,
    };
    this.#watchers.set(id, w);
    watchOpened();
    this.#send(this.#withId(w, { header: this.#head(this.#sm.revision), created: true }));
    this.#catchUp(w);
  }

  #cancel(o: JsonObject): void {
    const id = int64Field(o, "watch_id");
    const w = this.#watchers.get(id);
    if (!w) return;
    this.#watchers.delete(id);
    watchesClosed(1);
    this.#send(this.#withId(w, { header: this.#head(this.#sm.revision), canceled: true }));
  }

  /** Sends everything from history the watcher has not seen, or cancels it if compacted. */
  #catchUp(w: Watcher): void {
    if (w.next > this.#sm.revision || !this.#canSend()) return; // resume() comes back to it
    let batches: RevisionEvents[];
    try {
      batches = this.#sm.eventsSince(w.next);
    } catch (e) {
      if (!(e instanceof StoreError) || e.code !== "compacted") throw e;
      this.#watchers.delete(w.id);
      watchesClosed(1);
      // etcd leaves the revision out of this header.
      this.#send(this.#withId(w, {
        header: this.#head(0),
        canceled: true,
        compact_revision: String(this.#sm.compactRevision),
      }));
      return;
    }
    // In pieces of about CATCH_UP_CHUNK_BYTES, and only while the client has room: a watcher
    // from an old revision must not put the whole history in the stream's buffer at once.
    let events: WatchEvent[] = [];
    let bytes = 0;
    for (const b of batches) {
      for (const e of this.#filter(w, b.events)) {
        events.push(e);
        bytes += eventBytes(e, w.prevKv);
      }
      w.next = b.revision + 1;
      if (bytes < CATCH_UP_CHUNK_BYTES) continue;
      this.#deliver(w, this.#sm.revision, events);
      events = [];
      bytes = 0;
      if (!this.#canSend()) return; // resume() goes on from w.next
    }
    w.next = this.#sm.revision + 1;
    if (events.length) this.#deliver(w, this.#sm.revision, events);
  }

  /** The client has room again: catch up every watcher that fell behind. */
  resume(): void {
    if (this.#closed) return;
    for (const w of [...this.#watchers.values()]) {
      if (!this.#canSend()) return;
      if (w.next <= this.#sm.revision) this.#catchUp(w);
    }
  }

  #onBatch(batch: RevisionEvents): void {
    if (!this.#canSend()) return; // watchers fall behind; resume() catches them up
    let shared: SharedBatch | undefined;
    for (const w of [...this.#watchers.values()]) {
      if (batch.revision < w.next) continue;
      if (batch.revision > w.next) {
        // Missed revisions (cannot happen while subscribed, but never skip silently).
        this.#catchUp(w);
        continue;
      }
      w.next = batch.revision + 1;
      shared ??= sharedBatch(batch);
      this.#deliverShared(w, batch, shared);
    }
  }

  /** Sends a live batch's events for `w`, encoded once for every watcher of the same shape. */
  #deliverShared(w: Watcher, batch: RevisionEvents, shared: SharedBatch): void {
    let picked = "";
    for (let i = 0; i < batch.events.length; i++) {
      const e = batch.events[i];
      if (
        inRange(shared.keys[i], w.start, w.end) &&
        !(e.type === "PUT" && w.noPut) && !(e.type === "DELETE" && w.noDelete)
      ) picked += `${i},`;
    }
    if (picked === "") return;
    w.sentSinceTick = true;
    const h = this.#header();
    const shape = `${w.id}|${
      w.prevKv ? 1 : 0
    }|${h.clusterId}|${h.memberId}|${h.raftTerm}|${picked}`;
    let line = shared.lines.get(shape);
    if (!line) {
      const events = picked.split(",").slice(0, -1).map((i) => batch.events[Number(i)]);
      line = encodeResultLine(this.#eventsResponse(w, batch.revision, events));
      shared.lines.set(shape, line);
    }
    this.#send(line);
  }

  #onRestore(): void {
    for (const w of [...this.#watchers.values()]) this.#catchUp(w);
  }

  #filter(w: Watcher, events: WatchEvent[]): WatchEvent[] {
    return events.filter((e) =>
      inRange(toBin(e.kv.key), w.start, w.end) &&
      !(e.type === "PUT" && w.noPut) && !(e.type === "DELETE" && w.noDelete)
    );
  }

  #deliver(w: Watcher, revision: number, events: WatchEvent[]): void {
    w.sentSinceTick = true;
    this.#send(this.#eventsResponse(w, revision, events));
  }

  #eventsResponse(w: Watcher, revision: number, events: WatchEvent[]): JsonObject {
    // etcd reads prev_kv at mod_revision - 1 when it sends; compacted away, it is left out.
    const compacted = this.#sm.compactRevision;
    return this.#withId(w, {
      header: this.#head(revision),
      events: events.map((e) =>
        encodeEvent(e, w.prevKv && Number(e.kv.modRevision) - 1 >= compacted)
      ),
    });
  }
}
