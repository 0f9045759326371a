// A plain client's list of store members, kept current: the list it was given when it joined
// (kept in <data-dir>/peers.json) goes stale as members are replaced, and once every member it
// knew is gone it could reach none. So every interval it asks the members it knows for the
// leader's member table (POST /raft/members), and when the addresses changed it hands the new
// list to its store client and rewrites peers.json, so a restart starts from it too.
import type { MemberInfo } from "../store/member/members.ts";
import { writePeers } from "../store/member/member.ts";
import { HttpClient, type TlsClientOptions } from "../http/client.ts";
import type { Logger } from "../log.ts";

/** How often a client asks for the member table. */
export const ENDPOINT_REFRESH_MS = 10_000;
/** Bound on the member table taken from an answer (at most 7 voters and a few learners). */
const MAX_MEMBERS = 64;
const MAX_ADDRESS = 300;

/** The members in an answer to /raft/members, checked: id, address and name of each, at most
 *  MAX_MEMBERS, those with no address left out. Throws one line on a malformed answer. */
export function membersOfAnswer(body: unknown): MemberInfo[] {
  const list = (body as { members?: unknown })?.members;
  if (!Array.isArray(list)) throw new Error("answer has no members list");
  if (list.length > MAX_MEMBERS) throw new Error(`answer lists ${list.length} members`);
  const out: MemberInfo[] = [];
  for (const m of list) {
    const { id, address, name } = m ?? {};
    if (!Number.isSafeInteger(id) || id <= 0) throw new Error("a member has no valid id");
    if (typeof address !== "string" || address.length > MAX_ADDRESS) {
      throw new Error(`member ${id} has no valid address`);
    }
    if (address !== "") out.push({ id, address, name: typeof name === "string" ? name : "" });
  }
  return out;
}

/** True when both lists name the same addresses, in any order. */
export function sameAddresses(a: readonly string[], b: readonly string[]): boolean {
  const x = [...new Set(a)].sort();
  const y = [...new Set(b)].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

export interface EndpointRefreshOptions {
  /** The addresses the client uses now (host:port). */
  current: () => string[];
  /** Asks one member for /raft/members; resolves with the parsed body. */
  fetchMembers: (address: string) => Promise<unknown>;
  /** Takes a new member list: into the store client and peers.json. */
  apply: (members: MemberInfo[]) => Promise<void>;
  logger: Logger;
  intervalMs?: number;
}

/** Asks the known members in turn until one answers; applies a changed, non-empty list.
 *  Returns whether the list changed. A round where no member answers changes nothing. */
export async function refreshEndpoints(o: EndpointRefreshOptions): Promise<boolean> {
  const known = o.current();
  let lastError = "";
  for (const address of known) {
    let members: MemberInfo[];
    try {
      members = membersOfAnswer(await o.fetchMembers(address));
    } catch (e) {
      lastError = `${address}: ${(e as Error).message}`;
      continue;
    }
    // An empty table is never taken: the client would be left with nothing to ask.
    if (members.length === 0) return false;
    const addresses = members.map((m) => m.address);
    if (sameAddresses(addresses, known)) return false;
    await o.apply(members);
    o.logger("info", "store_endpoints_refreshed", {
      endpoints: addresses.join(","),
      was: known.join(","),
    });
    return true;
  }
  o.logger("warn", "store_endpoints_refresh_failed", { error: lastError });
  return false;
}

/** Refreshes every interval until `signal` aborts. */
export function startEndpointRefresh(o: EndpointRefreshOptions, signal: AbortSignal): void {
  const every = o.intervalMs ?? ENDPOINT_REFRESH_MS;
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    refreshEndpoints(o).catch((e) =>
      o.logger("warn", "store_endpoints_refresh_failed", { error: (e as Error).message })
    ).finally(() => running = false);
  }, every);
  signal.addEventListener("abort", () => clearInterval(timer), { once: true });
}

export interface ClientEndpointsOptions {
  dataDir: string;
  /** The members the client starts with (host:port). */
  endpoints: string[];
  /** The client's credential and how the members' certificates are verified. */
  token?: string;
  tls?: TlsClientOptions;
  /** The store client whose endpoints follow the member table. */
  client: { setEndpoints(endpoints: string[]): void };
  logger: Logger;
  intervalMs?: number;
}

/** A plain client's refresh loop: /raft/members into the store client and peers.json. */
export function keepClientEndpoints(o: ClientEndpointsOptions, signal: AbortSignal): void {
  let current = [...o.endpoints];
  const http = new HttpClient({ token: o.token, tls: o.tls, timeoutMs: 3000 });
  startEndpointRefresh({
    current: () => current,
    fetchMembers: async (address) => {
      const res = await http.postJson(address, "/raft/members", {}, { signal });
      if (!res.ok) throw new Error(`answered ${res.status}`);
      return JSON.parse(res.text);
    },
    apply: async (members) => {
      current = members.map((m) => m.address);
      o.client.setEndpoints(current);
      await writePeers(o.dataDir, members);
    },
    logger: o.logger,
    intervalMs: o.intervalMs,
  }, signal);
}
