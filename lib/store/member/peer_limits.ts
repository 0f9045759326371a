// How large a request body each peer route (/raft/*) accepts: a batch of Raft messages, one
// snapshot, or a small JSON document. Anything larger is refused with 413 before it is parsed.
import type { Context, MiddlewareHandler } from "hono";

/** A batch of Raft messages: frames are cut at 1 MiB, one entry can hold a 1.5 MiB request. */
export const MAX_PEER_BATCH_BYTES = 16 * 1024 * 1024;
/** One whole snapshot, base64 in JSON (a third larger than the state it carries). */
export const MAX_PEER_SNAPSHOT_BYTES = 512 * 1024 * 1024;
/** Joins, status, member views, lease forwarding: small JSON documents. */
export const MAX_PEER_JSON_BYTES = 64 * 1024;

export function peerBodyLimit(path: string): number {
  if (path.endsWith("/snapshot")) return MAX_PEER_SNAPSHOT_BYTES;
  if (path.endsWith("/msg")) return MAX_PEER_BATCH_BYTES;
  return MAX_PEER_JSON_BYTES;
}

/** Refuses a body over its route's limit: a declared length at once, a chunked one as soon as
 *  it has grown past it (then the handler reads the bytes gathered here). */
export function limitPeerBodies(): MiddlewareHandler {
  return async (c: Context, next) => {
    const req = c.req.raw;
    if (!req.body) return await next();
    const max = peerBodyLimit(c.req.path);
    const tooLarge = () => c.json({ error: `request body larger than ${max} bytes` }, 413);
    const declared = req.headers.get("content-length");
    if (declared !== null && !req.headers.has("transfer-encoding")) {
      return Number(declared) > max ? tooLarge() : await next();
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = req.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > max) {
        await reader.cancel().catch(() => {});
        return tooLarge();
      }
      chunks.push(value);
    }
    const body = new Uint8Array(size);
    let at = 0;
    for (const ch of chunks) {
      body.set(ch, at);
      at += ch.length;
    }
    c.req.raw = new Request(req, { body });
    return await next();
  };
}

/** The address a joiner gives is host:port (a name or an IPv4/[IPv6] address), and its name
 *  is short: both go into the log and every snapshot. */
export function joinFieldsProblem(address: string, name: string): string | undefined {
  if (address.length > 261 || !/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(address)) {
    return "address must be host:port";
  }
  const port = Number(address.slice(address.lastIndexOf(":") + 1));
  if (port < 1 || port > 65535) return "address port out of range";
  if (name.length > 253) return "name longer than 253 characters";
  return undefined;
}
