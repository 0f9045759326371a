// The daemon's reads of its data dir before it decides how to start, and the lock that keeps two
// agents off one data dir.
import { join } from "node:path";
import { readIdentity, TOKEN_FILE } from "../store/member/identity.ts";
import { caCertPath } from "../pki/ca.ts";
import { credentialPath } from "../pki/credential.ts";
import { readPeers } from "../store/member/member.ts";
import type { DaemonConfig } from "./config.ts";
import type { StartFacts } from "./start.ts";
import { resolveToken } from "./credentials.ts";

/** Reads what decideStart needs, and only that: an external-etcd agent never looks at its data
 *  dir, and a file is read only on the path that uses it. */
export async function readStartFacts(cfg: DaemonConfig): Promise<StartFacts> {
  const givenToken = await resolveToken({ token: cfg.token, tokenFile: cfg.tokenFile });
  if (cfg.etcdEndpoints.length > 0) return { hasRaftLog: false, givenToken };
  const identity = await readIdentity(cfg.dataDir);
  if (cfg.init) {
    return { identity, hasRaftLog: !identity && await hasRaftLog(cfg.dataDir), givenToken };
  }
  if (!identity) return { hasRaftLog: false, givenToken };
  const peerAddresses = identity.nodeId === 0
    ? (await readPeers(cfg.dataDir)).map((m) => m.address)
    : undefined;
  return {
    identity,
    hasRaftLog: false,
    hasCa: await exists(caCertPath(cfg.dataDir)),
    hasCredential: await exists(credentialPath(cfg.dataDir)),
    hasLegacyToken: await exists(join(cfg.dataDir, TOKEN_FILE)),
    peerAddresses,
    givenToken,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function hasRaftLog(dataDir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(join(dataDir, "raft", "wal"))) return true;
  } catch {
    // no such dir
  }
  return false;
}

/** An exclusive lock on <data-dir>/lock, held until release() (or the process's exit). */
export interface DataDirLock {
  release(): void;
}

/** Takes the data dir's lock, creating the dir (0700) if needed. Refuses at once, with one line,
 *  when another process holds it. */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const file = await Deno.open(join(dataDir, "lock"), { read: true, write: true, create: true });
  const locking = file.lock(true).then(() => true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const got = await Promise.race([
    locking,
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), 500);
    }),
  ]);
  clearTimeout(timer);
  if (!got) {
    // The request stays queued; let go of the lock the moment it would be granted.
    locking.then(() => file.close(), () => file.close()).catch(() => {});
    throw new Error(
      `${dataDir} is in use by another twill agent; stop it first or give this one its own --data-dir`,
    );
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      file.close();
    },
  };
}
