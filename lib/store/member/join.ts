// The joining side of `twill agent --join`: ask any member (POST /raft/join over TLS verified by
// the pinned cluster CA; a follower forwards to the leader) until one answers, retrying through
// the list while the cluster has no leader or a membership change is in progress. A wrong join
// secret (401), a name still in use (409) or any other refusal ends it at once, with the
// member's own line (which never repeats the secret).
import type { JoinRequest, JoinResponse } from "./peer_routes.ts";
import type { Logger } from "../../log.ts";
import { HttpClient, type TlsClientOptions } from "../../http/client.ts";

export class JoinRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JoinRefused";
  }
}

export async function requestJoin(
  seeds: string[],
  req: JoinRequest,
  logger: Logger,
  tls: TlsClientOptions,
  timeoutMs = 60_000,
): Promise<JoinResponse> {
  const http = new HttpClient({ tls, timeoutMs: 10_000 });
  const end = Date.now() + timeoutMs;
  let attempt = 0;
  let lastError = "";
  while (Date.now() < end) {
    const seed = seeds[attempt % seeds.length];
    attempt++;
    try {
      const res = await http.postJson(seed, "/raft/join", req);
      const text = res.text;
      if (res.ok) return JSON.parse(text) as JoinResponse;
      let msg = text.slice(0, 300);
      try {
        msg = JSON.parse(text).error ?? msg;
      } catch { /* not JSON */ }
      if (res.status === 401 || res.status === 409) throw new JoinRefused(msg);
      if (res.status >= 400 && res.status < 500) {
        throw new JoinRefused(`${seed} refused the join: ${msg}`);
      }
      lastError = `${seed}: ${res.status} ${msg}`;
    } catch (e) {
      if (e instanceof JoinRefused) throw e;
      lastError = `${seed}: ${(e as Error).message}`;
    }
    logger("info", "join_retry", { seed, attempt, error: lastError });
    await new Promise((r) => setTimeout(r, Math.min(2000, 200 * attempt)));
  }
  throw new Error(
    `could not join through ${seeds.join(",")} within ${timeoutMs / 1000}s (last: ${lastError})`,
  );
}
