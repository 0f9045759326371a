// Per-node bearer credentials. `<data-dir>/credential` (every node) and
// `<data-dir>/admin-credential` (voters) hold 32 random bytes, base64url, behind a prefix that says
// what they are (`twn_` node/member, `twa_` admin) so that one is never mistaken for a join
// secret or pasted where the other belongs. The store keeps only sha256 of each credential with
// its owner, so a copy of the store (a snapshot, a backup) grants nothing.
import { createHash, timingSafeEqual } from "node:crypto";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import { writeTextFileAtomic } from "../fs_atomic.ts";

export type CredentialKind = "node" | "member" | "admin";

export const NODE_CREDENTIAL_PREFIX = "twn_";
export const ADMIN_CREDENTIAL_PREFIX = "twa_";
export const CREDENTIAL_FILE = "credential";
export const ADMIN_CREDENTIAL_FILE = "admin-credential";
const RANDOM_BYTES = 32;
/** Prefix plus 43 base64url characters (32 bytes, unpadded). */
const CREDENTIAL_RE = /^(twn_|twa_)[A-Za-z0-9_-]{43}$/;

/** What the store keeps per credential: never the credential itself. */
export interface CredentialRecord {
  /** Lower-case hex sha256 of the credential text. */
  hash: string;
  nodeName: string;
  kind: CredentialKind;
  revoked: boolean;
}

/** A new credential; `admin` selects the admin prefix. */
export function createCredential(admin = false): string {
  const raw = crypto.getRandomValues(new Uint8Array(RANDOM_BYTES));
  return (admin ? ADMIN_CREDENTIAL_PREFIX : NODE_CREDENTIAL_PREFIX) +
    Buffer.from(raw).toString("base64url");
}

/** True when `s` has a credential's shape (checked before hashing anything from a request). */
export function looksLikeCredential(s: string): boolean {
  return CREDENTIAL_RE.test(s);
}

export function isAdminCredential(s: string): boolean {
  return s.startsWith(ADMIN_CREDENTIAL_PREFIX) && looksLikeCredential(s);
}

export function hashCredential(credential: string): string {
  return createHash("sha256").update(credential, "utf8").digest("hex");
}

/** Compares two secrets in time independent of where they differ (lengths are not secret). */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  if (x.length !== y.length) return false;
  return timingSafeEqual(x, y);
}

/** The credential from an `Authorization: Bearer …` header value; null when absent or malformed. */
export function bearerCredential(header: string | null | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer ([^\s]+)$/.exec(header.trim());
  return m && looksLikeCredential(m[1]) ? m[1] : null;
}

/**
 * Finds the live record for a presented credential. The lookup hashes first and then compares
 * hashes in constant time, so timing reveals nothing about stored credentials.
 */
export function findCredential(
  presented: string,
  records: Iterable<CredentialRecord>,
): CredentialRecord | null {
  if (!looksLikeCredential(presented)) return null;
  const h = hashCredential(presented);
  let found: CredentialRecord | null = null;
  for (const r of records) if (constantTimeEqual(r.hash, h)) found = r;
  return found && !found.revoked ? found : null;
}

export function credentialPath(dataDir: string): string {
  return join(dataDir, CREDENTIAL_FILE);
}

export function adminCredentialPath(dataDir: string): string {
  return join(dataDir, ADMIN_CREDENTIAL_FILE);
}

/** Writes a credential file, mode 0600. */
export async function writeCredential(path: string, credential: string): Promise<void> {
  if (!looksLikeCredential(credential)) throw new Error("not a credential");
  await writeTextFileAtomic(path, credential + "\n", 0o600);
}

/** Reads a credential file; null when missing; an error when it does not hold a credential. */
export async function readCredential(path: string): Promise<string | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const c = text.trim();
  if (!looksLikeCredential(c)) throw new Error(`${path} does not hold a twill credential`);
  return c;
}
