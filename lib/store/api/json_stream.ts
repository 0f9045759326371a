// Splits a request body that carries several JSON objects one after another (how grpc-gateway
// feeds a client stream: watch create/cancel requests, lease keep-alives) into single texts.

import { invalidArgument } from "./errors.ts";
import { ETCD_MESSAGES } from "../errors.ts";

/** Yields each top-level JSON object or array text; whitespace between them is skipped. A text
 *  larger than maxBytes, or a stray character between values, throws ApiError. */
export async function* jsonTexts(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): AsyncGenerator<string> {
  if (!body) return;
  const decoder = new TextDecoder();
  let buf = "";
  let start = -1; // index in buf where the current value began
  let depth = 0;
  let inString = false;
  let escaped = false;
  let scanned = 0;
  const reader = body.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      for (let i = scanned; i < buf.length; i++) {
        const ch = buf[i];
        if (start < 0) {
          if (ch === " " || ch === "\n" || ch === "\r" || ch === "\t") continue;
          if (ch !== "{" && ch !== "[") {
            throw invalidArgument(`invalid character '${ch}' looking for beginning of value`);
          }
          start = i;
          depth = 1;
          continue;
        }
        if (inString) {
          if (escaped) escaped = false;
          else if (ch === "\\") escaped = true;
          else if (ch === '"') inString = false;
          continue;
        }
        if (ch === '"') inString = true;
        else if (ch === "{" || ch === "[") depth++;
        else if (ch === "}" || ch === "]") {
          depth--;
          if (depth === 0) {
            if (i + 1 - start > maxBytes) {
              throw invalidArgument(ETCD_MESSAGES.requestTooLarge);
            }
            yield buf.slice(start, i + 1);
            buf = buf.slice(i + 1);
            i = -1;
            start = -1;
          }
        }
      }
      scanned = buf.length;
      if (start >= 0 && buf.length - start > maxBytes) {
        throw invalidArgument(ETCD_MESSAGES.requestTooLarge);
      }
      if (start < 0) {
        buf = "";
        scanned = 0;
      }
    }
    if (start >= 0) throw invalidArgument("unexpected EOF");
  } finally {
    reader.releaseLock();
  }
}

/** Bytes a streaming response (watch, lease keep-alive) may hold unread by its client. Every
 *  message counts: events, create/cancel replies, keep-alive answers. */
export const STREAM_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** How long a stream may stay at its high-water mark without the client reading any of it. */
export const STREAM_STALL_MS = 10_000;

export interface SlowConsumerLimits {
  maxBufferedBytes: number;
  stallMs: number;
}

/**
 * Cuts a streaming response off from a client that does not read it: at once when more than
 * maxBufferedBytes are queued, or when the queue has stayed at its high-water mark for stallMs
 * (as etcd's gRPC proxy cancels a watch stream whose client does not take its responses). The
 * stream is errored, so what it held is dropped with the connection.
 */
export class SlowConsumerGuard {
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly controller: ReadableStreamDefaultController<Uint8Array>,
    private readonly highWater: number,
    private readonly cut: (why: string) => void,
    private readonly limits: SlowConsumerLimits = {
      maxBufferedBytes: STREAM_MAX_BUFFERED_BYTES,
      stallMs: STREAM_STALL_MS,
    },
  ) {}

  /** After each message is queued. */
  sent(): void {
    const queued = this.highWater - (this.controller.desiredSize ?? 0);
    if (queued > this.limits.maxBufferedBytes) {
      this.cut(`slow consumer: more than ${this.limits.maxBufferedBytes} bytes unread`);
    } else if (queued >= this.highWater && this.#timer === undefined) {
      this.#timer = setTimeout(
        () => this.cut(`slow consumer: nothing read for ${this.limits.stallMs} ms`),
        this.limits.stallMs,
      );
    }
  }

  /** The client read: the queue is below its high-water mark again. */
  drained(): void {
    this.stop();
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
