// How `twill ctl` reaches the cluster: which server, with which credential, trusting which CA.
// A node's data dir answers all three (pki/ca.crt, admin-credential or credential, member.json
// or peers.json), so `twill ctl --data-dir D …` needs nothing secret on the command line.
import { readCaPem, resolveCredential } from "../daemon/credentials.ts";
import { readIdentity } from "../store/member/identity.ts";
import { readPeers } from "../store/member/member.ts";

export const DEFAULT_SERVER = "127.0.0.1:8473";

export interface CtlAccess {
  server: string;
  credential?: string;
  caPem: string;
}

/** Resolves server, credential and CA. Throws one line (a usage error) when there is no CA, when
 *  --token is not a credential, or when a file in the data dir is damaged. */
export async function ctlAccess(o: {
  dataDir: string;
  server?: string;
  token?: string;
}): Promise<CtlAccess> {
  // A plain etcd (an agent run with --etcd-endpoints http://…) is named by its URL; it has no
  // cluster CA and no twill credential. Nothing secret is sent to it.
  if (o.server?.startsWith("http://")) return { server: o.server, caPem: "" };
  const cred = await resolveCredential({ token: o.token, dataDir: o.dataDir, preferAdmin: true });
  const caPem = await readCaPem(o.dataDir);
  if (caPem === null) {
    throw new Error(
      `no cluster CA at ${o.dataDir}/pki/ca.crt: give --data-dir of a node of the cluster ` +
        "(the store speaks TLS only)",
    );
  }
  const server = o.server ?? (await recordedServer(o.dataDir)) ?? DEFAULT_SERVER;
  return { server, credential: cred?.credential, caPem };
}

/** A member recorded in the data dir: this node itself when it is a member, else the first
 *  member a client was given. */
async function recordedServer(dataDir: string): Promise<string | undefined> {
  let id;
  try {
    id = await readIdentity(dataDir);
  } catch {
    return undefined;
  }
  if (!id) return undefined;
  if (id.nodeId !== 0 && id.advertise) return id.advertise;
  const peers = await readPeers(dataDir).catch(() => []);
  return peers.map((m) => m.address).find((a) => a !== "");
}
