// The join token, in k3s's shape: `K10<sha256 of the CA certificate's DER, 64 hex>::<secret>`.
// The hash lets a joiner recognise the cluster's CA before it trusts anything; the secret, kept in
// the replicated store, admits it. `--init --token S` makes S the secret, so checks on S live here
// too. Nothing in this module logs or echoes a secret.
import { constantTimeEqual } from "./credential.ts";

export const JOIN_TOKEN_PREFIX = "K10";
export const SEPARATOR = "::";
/** Shorter secrets are accepted at --init, with a warning. */
export const MIN_RECOMMENDED_SECRET_LENGTH = 16;
/** Bound on what we parse from outside (a flag, a file, a request body). */
export const MAX_SECRET_LENGTH = 1024;

export interface JoinToken {
  /** Lower-case hex sha256 of the CA certificate's DER. */
  caSha256: string;
  secret: string;
}

export class JoinTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JoinTokenError";
  }
}

export function formatJoinToken(t: JoinToken): string {
  if (!/^[0-9a-f]{64}$/.test(t.caSha256)) throw new JoinTokenError("CA hash must be 64 hex");
  const bad = secretProblem(t.secret);
  if (bad) throw new JoinTokenError(bad);
  return `${JOIN_TOKEN_PREFIX}${t.caSha256}${SEPARATOR}${t.secret}`;
}

/** Parses `--join … --token`; every error is one line that never repeats the secret. */
export function parseJoinToken(raw: string): JoinToken {
  const s = raw.trim();
  if (!s.startsWith(JOIN_TOKEN_PREFIX) || !s.includes(SEPARATOR)) {
    throw new JoinTokenError(
      "--token is not a join token (K10<ca-sha256>::<secret>): run `twill ctl join-token` on " +
        "a member and pass what it prints",
    );
  }
  const sep = s.indexOf(SEPARATOR);
  const hash = s.slice(JOIN_TOKEN_PREFIX.length, sep);
  const secret = s.slice(sep + SEPARATOR.length);
  if (!/^[0-9a-fA-F]*$/.test(hash)) {
    throw new JoinTokenError("join token: the CA hash after K10 must be hex");
  }
  if (hash.length !== 64) {
    throw new JoinTokenError(
      `join token: the CA hash after K10 must be 64 hex digits, got ${hash.length}`,
    );
  }
  const bad = secretProblem(secret);
  if (bad) throw new JoinTokenError(`join token: ${bad}`);
  return { caSha256: hash.toLowerCase(), secret };
}

/** Why `secret` cannot be a join secret, or null when it can. */
export function secretProblem(secret: string): string | null {
  if (secret.length === 0) return "the secret is empty";
  if (secret.length > MAX_SECRET_LENGTH) {
    return `the secret is longer than ${MAX_SECRET_LENGTH} characters`;
  }
  if (/\s/.test(secret)) return "the secret contains whitespace";
  if (secret.includes(SEPARATOR)) return `the secret contains "${SEPARATOR}"`;
  return null;
}

/**
 * Checks `--init --token S` (or --token-file). Returns a warning line when S is short; throws
 * JoinTokenError when S cannot be a secret, including a whole join token (that belongs to
 * --join: an --init node starts a new CA, which the token's hash could never match).
 */
export function checkInitSecret(raw: string): { secret: string; warning: string | null } {
  const secret = raw.trim();
  if (secret.startsWith(JOIN_TOKEN_PREFIX) && secret.includes(SEPARATOR)) {
    throw new JoinTokenError(
      "--init takes a secret, not a join token (K10…): a new cluster gets a new CA, so pass " +
        "only the secret, or use --join to join the cluster that token belongs to",
    );
  }
  const bad = secretProblem(secret);
  if (bad) throw new JoinTokenError(`--token: ${bad}`);
  const warning = secret.length < MIN_RECOMMENDED_SECRET_LENGTH
    ? `--token: the secret is shorter than ${MIN_RECOMMENDED_SECRET_LENGTH} characters; ` +
      "anyone who guesses it can join the cluster"
    : null;
  return { secret, warning };
}

/** A new random secret: 32 lower-case hex digits (128 bits). */
export function generateJoinSecret(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * The member's check of a join request's secret against the store's, in constant time. A wrong
 * secret and an unknown node name must get the same answer, so callers check this first and
 * answer every failure alike.
 */
export function joinSecretMatches(presented: string, stored: string): boolean {
  return secretProblem(presented) === null && constantTimeEqual(presented, stored);
}
