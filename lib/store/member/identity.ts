// Who this member is, kept in the data dir so a restart needs nothing else:
//   <data-dir>/member.json  {clusterId, nodeId, name, advertise}
//   <data-dir>/token        the cluster token (mode 0600)
// Files are written atomically (temp file, fsync, rename, directory fsync).
import { join } from "node:path";
import { writeFileAtomic } from "../../fs_atomic.ts";

export interface MemberIdentity {
  clusterId: string;
  nodeId: number;
  name: string;
  advertise: string;
}

export const IDENTITY_FILE = "member.json";
export const TOKEN_FILE = "token";

export async function readIdentity(dataDir: string): Promise<MemberIdentity | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(dataDir, IDENTITY_FILE));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw new Error(`cannot read ${join(dataDir, IDENTITY_FILE)}: ${(e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (typeof v.clusterId !== "string" || !Number.isSafeInteger(v.nodeId)) {
      throw new Error("fields missing");
    }
    return {
      clusterId: v.clusterId,
      nodeId: v.nodeId,
      name: String(v.name ?? ""),
      advertise: String(v.advertise ?? ""),
    };
  } catch (e) {
    throw new Error(
      `${join(dataDir, IDENTITY_FILE)} is damaged (${
        (e as Error).message
      }); restore it or remove the data dir and re-join`,
    );
  }
}

export async function writeIdentity(dataDir: string, id: MemberIdentity): Promise<void> {
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(
    join(dataDir, IDENTITY_FILE),
    new TextEncoder().encode(JSON.stringify(id, null, 2) + "\n"),
  );
}

export async function readToken(dataDir: string): Promise<string | undefined> {
  try {
    return (await Deno.readTextFile(join(dataDir, TOKEN_FILE))).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

export async function writeToken(dataDir: string, token: string): Promise<void> {
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(dataDir, TOKEN_FILE), new TextEncoder().encode(token + "\n"), 0o600);
}

export function generateToken(): string {
  const b = crypto.getRandomValues(new Uint8Array(24));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

export function generateClusterId(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  // A decimal uint63 so it fits etcd's header.cluster_id (uint64 as a decimal string).
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return String(n & 0x7fff_ffff_ffff_ffffn);
}
