// The cluster token: the one place that knows where it can come from (--token, --token-file,
// <data-dir>/token) and in which order.
import { readToken } from "../store/member/identity.ts";

export interface TokenSources {
  /** --token (or its environment variable). */
  token?: string;
  /** --token-file. */
  tokenFile?: string;
  /** A data dir whose kept token is used when neither of the above is given. */
  dataDir?: string;
}

/** The token from the first source given: --token, then --token-file, then <dataDir>/token.
 *  Undefined when none has one. Throws one line when --token-file cannot be read or is empty. */
export async function resolveToken(src: TokenSources): Promise<string | undefined> {
  if (src.token !== undefined) return src.token;
  if (src.tokenFile) return await readTokenFile(src.tokenFile);
  if (src.dataDir !== undefined) return await readToken(src.dataDir);
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
