// Which credential a process acts with and which CA it trusts: the one place that knows where
// they come from, for the agent and for `twill ctl` alike. The agent acts with its own node
// credential (<data-dir>/credential); ctl prefers --token, then the voter's admin credential,
// then the node credential. The CA is always <data-dir>/pki/ca.crt.
import {
  adminCredentialPath,
  credentialPath,
  looksLikeCredential,
  readCredential,
} from "../pki/credential.ts";
import { caCertPath, readTextOrNull } from "../pki/ca.ts";

export interface CredentialSources {
  /** --token (ctl) or TWILL_TOKEN: used as given. */
  token?: string;
  dataDir?: string;
  /** ctl: try <data-dir>/admin-credential before <data-dir>/credential. */
  preferAdmin: boolean;
}

export interface ResolvedCredential {
  credential: string;
  /** Where it came from, for messages ("--token", a file path); never the credential. */
  source: string;
}

/** The credential from the first source that has one; undefined when none has. Throws one line
 *  when --token is not a credential or a credential file is damaged. */
export async function resolveCredential(
  src: CredentialSources,
): Promise<ResolvedCredential | undefined> {
  if (src.token !== undefined) {
    const t = src.token.trim();
    if (!looksLikeCredential(t)) {
      throw new Error(
        "--token is not a twill credential (twn_… or twa_…); a join token or secret cannot be used here",
      );
    }
    return { credential: t, source: "--token" };
  }
  if (src.dataDir === undefined) return undefined;
  const paths = src.preferAdmin
    ? [adminCredentialPath(src.dataDir), credentialPath(src.dataDir)]
    : [credentialPath(src.dataDir)];
  for (const path of paths) {
    const credential = await readCredential(path);
    if (credential !== null) return { credential, source: path };
  }
  return undefined;
}

/** <data-dir>/pki/ca.crt as PEM, or null when the data dir has none. */
export async function readCaPem(dataDir: string): Promise<string | null> {
  return await readTextOrNull(caCertPath(dataDir));
}

/** The agent's --token / --token-file: a join token at --join, a secret at --init. */
export interface TokenFlags {
  token?: string;
  tokenFile?: string;
}

/** The value of --token, else of --token-file; undefined when neither is given. Throws one line
 *  (naming the file, never its content) when --token-file cannot be read or is empty. */
export async function resolveToken(src: TokenFlags): Promise<string | undefined> {
  if (src.token !== undefined) return src.token;
  if (src.tokenFile) return await readTokenFile(src.tokenFile);
  return undefined;
}

async function readTokenFile(path: string): Promise<string> {
  try {
    const t = (await Deno.readTextFile(path)).trim();
    if (t === "") throw new Error("it is empty");
    return t;
  } catch (e) {
    throw new Error(`cannot read the token from ${path}: ${(e as Error).message}`);
  }
}
