// The first step of a join: learn the cluster CA from a member, trusting nothing but the hash in
// the join token. The TLS handshake here verifies nothing (we do not have the CA yet), so this
// step sends nothing at all: it reads the chain the member presents (the member serves its
// certificate followed by the CA's), keeps the certificate whose sha256 is the pinned one,
// checks that it is a self-signed CA and that it signed the member's certificate, and only then
// returns it. The secret travels afterwards, over TLS verified against this CA.
import { connect, type PeerCertificate, type TLSSocket } from "node:tls";
import { isIP } from "node:net";
import { certificateSha256, certificateToPem, isCaCertificate } from "./ca.ts";
import { x509 } from "./x509.ts";

/** A chain longer than this is not ours; the bound keeps a hostile peer from feeding us more. */
export const MAX_CHAIN = 8;
export const DEFAULT_FETCH_TIMEOUT_MS = 5000;

export class CaPinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CaPinError";
  }
}

/** The DER certificates a server presented, leaf first (node:tls's getPeerCertificate(true)). */
export function presentedChain(leaf: PeerCertificate): Uint8Array<ArrayBuffer>[] {
  const out: Uint8Array<ArrayBuffer>[] = [];
  let c: PeerCertificate | undefined = leaf;
  const seen = new Set<PeerCertificate>();
  while (c?.raw && !seen.has(c) && out.length < MAX_CHAIN) {
    seen.add(c);
    out.push(new Uint8Array(c.raw));
    c = (c as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return out;
}

/** Picks the pinned CA out of a presented chain; throws CaPinError naming what was seen. */
export async function pickPinnedCa(
  chain: Uint8Array<ArrayBuffer>[],
  expectedSha256: string,
  where: string,
): Promise<string> {
  if (chain.length === 0) throw new CaPinError(`${where} presented no certificate`);
  const hashes = chain.map((der) => certificateSha256(der));
  const at = hashes.indexOf(expectedSha256.toLowerCase());
  if (at < 0) {
    throw new CaPinError(
      `CA hash mismatch: the join token pins ${expectedSha256} but ${where} presented ` +
        `${hashes.join(", ")}; this is not the cluster the token belongs to`,
    );
  }
  const ca = new x509.X509Certificate(chain[at]);
  if (!isCaCertificate(ca) || !(await ca.verify({ signatureOnly: true }))) {
    throw new CaPinError(`the pinned certificate from ${where} is not a self-signed CA`);
  }
  const leaf = new x509.X509Certificate(chain[0]);
  if (at !== 0 && !(await leaf.verify({ publicKey: ca.publicKey, signatureOnly: true }))) {
    throw new CaPinError(`the certificate ${where} serves is not signed by the pinned CA`);
  }
  return certificateToPem(ca);
}

/** Connects to host:port, reads the presented chain and returns the pinned CA as PEM. */
export async function fetchPinnedCa(
  host: string,
  port: number,
  expectedSha256: string,
  opts: { timeoutMs?: number } = {},
): Promise<string> {
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  const chain = await readPresentedChain(host, port, where, opts.timeoutMs);
  return await pickPinnedCa(chain, expectedSha256, where);
}

function readPresentedChain(
  host: string,
  port: number,
  where: string,
  timeoutMs = DEFAULT_FETCH_TIMEOUT_MS,
): Promise<Uint8Array<ArrayBuffer>[]> {
  return new Promise((resolve, reject) => {
    const sock: TLSSocket = connect({
      host,
      port,
      // Unverified on purpose: the pin, not the handshake, decides; nothing is sent on it.
      rejectUnauthorized: false,
      ...(isIP(host) ? {} : { servername: host }),
    });
    const done = (f: () => void) => {
      clearTimeout(timer);
      sock.destroy();
      f();
    };
    const timer = setTimeout(
      () => done(() => reject(new Error(`no TLS handshake with ${where} within ${timeoutMs} ms`))),
      timeoutMs,
    );
    sock.once("secureConnect", () => {
      const chain = presentedChain(sock.getPeerCertificate(true));
      done(() => resolve(chain));
    });
    sock.once("error", (e: Error) => {
      done(() => reject(new Error(`fetching the cluster CA from ${where}: ${e.message}`)));
    });
  });
}
