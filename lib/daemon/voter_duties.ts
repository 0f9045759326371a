// What a member keeps only while it is a voter: its admin credential (<data-dir>/admin-credential,
// registered by hash through POST /raft/admin-credential) and the CA key (<data-dir>/pki/ca.key,
// copied from the replicated /twill/pki/ca.key) so that any voter can sign. Checked once a second;
// both files go when the member stops being a voter (the leader drops the admin record then).
import type { StoreMember } from "../store/member/member.ts";
import type { Logger } from "../log.ts";
import { HttpClient } from "../http/client.ts";
import {
  adminCredentialPath,
  createCredential,
  hashCredential,
  readCredential,
  writeCredential,
} from "../pki/credential.ts";
import { caKeyPath, readTextOrNull } from "../pki/ca.ts";
import { writeTextFileAtomic } from "../fs_atomic.ts";
import { CA_KEY_KEY } from "./trust_files.ts";

export const VOTER_CHECK_MS = 1000;

/** Starts the once-a-second check; the returned function stops it. */
export function startVoterDuties(
  member: StoreMember,
  o: { dataDir: string; credential: string; caPem: string; logger: Logger },
): () => void {
  const http = new HttpClient({
    token: o.credential,
    tls: { caCerts: [o.caPem] },
    timeoutMs: 5000,
  });
  let busy = false;
  let stopped = false;
  const timer = setInterval(async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      await checkVoterDuties(member, o.dataDir, http, o.logger);
    } catch (e) {
      o.logger("warn", "voter_duties_failed", { error: (e as Error).message });
    } finally {
      busy = false;
    }
  }, VOTER_CHECK_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
    http.close();
  };
}

/** One check: make or drop the voter-only files to match the member's current role. */
export async function checkVoterDuties(
  member: StoreMember,
  dataDir: string,
  http: HttpClient,
  logger: Logger,
): Promise<void> {
  const st = member.status();
  const voter = st.voters.includes(st.id);
  const hasAdmin = (await readCredential(adminCredentialPath(dataDir))) !== null;
  const hasKey = (await readTextOrNull(caKeyPath(dataDir))) !== null;
  if (!voter) {
    if (hasAdmin) await Deno.remove(adminCredentialPath(dataDir));
    if (hasKey) await Deno.remove(caKeyPath(dataDir));
    if (hasAdmin || hasKey) logger("info", "voter_files_removed", { node: st.id });
    return;
  }
  if (!hasKey) {
    const keyPem = replicatedCaKey(member);
    if (keyPem) {
      await writeTextFileAtomic(caKeyPath(dataDir), keyPem, 0o600);
      logger("info", "ca_key_written", { node: st.id });
    }
  }
  if (!hasAdmin) {
    const admin = createCredential(true);
    const res = await http.postJson(member.opts.identity.advertise, "/raft/admin-credential", {
      hash: hashCredential(admin),
    });
    if (!res.ok) throw new Error(`registering the admin credential: ${res.status}`);
    await writeCredential(adminCredentialPath(dataDir), admin);
    logger("info", "admin_credential_created", { node: st.id });
  }
}

/** /twill/pki/ca.key as this member has applied it, or null. */
function replicatedCaKey(member: StoreMember): string | null {
  const enc = new TextEncoder();
  const r = member.kv.sm.range({
    key: enc.encode(CA_KEY_KEY),
    rangeEnd: new Uint8Array(0),
    limit: 1,
    revision: "0",
    keysOnly: false,
    countOnly: false,
    serializable: true,
  });
  const kv = r.kvs[0];
  return kv ? new TextDecoder().decode(kv.value) : null;
}
