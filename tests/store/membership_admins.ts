// Requests as whichever voter's admin credential still works. A member that stops being a voter
// (demoted or removed) has its admin record revoked, so the founder's credential, which the
// process cluster sends by default, stops working once the founder no longer votes.
import { join } from "node:path";
import { type HttpResult, post, type ProcessCluster } from "./process_cluster.ts";
import { ADMIN_CREDENTIAL_FILE } from "../../lib/pki/credential.ts";
import type { MembersResponse } from "../../lib/store/member/peer_routes.ts";

/** The admin credentials the members keep in their data dirs now. */
export async function adminCredentials(c: ProcessCluster): Promise<string[]> {
  const out: string[] = [];
  for (const m of c.members) {
    const t = await Deno.readTextFile(join(m.dataDir, ADMIN_CREDENTIAL_FILE)).catch(() => "");
    if (t.trim()) out.push(t.trim());
  }
  return out;
}

/** POSTs with each admin credential in turn until one is not refused (401); undefined when the
 *  member does not answer. */
export async function postAsAdmin(
  c: ProcessCluster,
  address: string,
  path: string,
  body: unknown,
): Promise<HttpResult | undefined> {
  let last: HttpResult | undefined;
  for (const token of await adminCredentials(c)) {
    try {
      last = await post(address, path, body, 3000, token);
    } catch {
      return undefined;
    }
    if (last.status !== 401) return last;
  }
  return last;
}

/** The leader's member table through any live member. */
export async function membersView(c: ProcessCluster): Promise<MembersResponse | undefined> {
  for (const m of c.members.filter((x) => !x.stopped)) {
    const r = await postAsAdmin(c, m.address, "/raft/members", {});
    if (r?.status === 200) return r.body as unknown as MembersResponse;
  }
  return undefined;
}

/** This member's own status, or undefined. */
export async function statusOf(
  c: ProcessCluster,
  address: string,
): Promise<Record<string, unknown> | undefined> {
  const r = await postAsAdmin(c, address, "/raft/status", {});
  return r?.status === 200 ? r.body : undefined;
}
