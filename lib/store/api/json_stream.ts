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
