// The cluster CA: an ECDSA P-256 key and a self-signed certificate valid for 10 years, made with
// WebCrypto and @peculiar/x509 (no hand-written ASN.1). `--init` creates it; every node keeps
// `<data-dir>/pki/ca.crt` (PEM, 0644) to verify members, and every voter also keeps
// `<data-dir>/pki/ca.key` (PKCS#8 PEM, 0600) so that any voter can sign serving certificates.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { x509 } from "./x509.ts";
import { ensureDir, writeTextFileAtomic } from "../fs_atomic.ts";

/** The one signature and key algorithm of twill's PKI. */
export const EC_ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
export const CA_LIFETIME_YEARS = 10;
/** Certificates start this far in the past so that a peer whose clock lags accepts them. */
export const CLOCK_SKEW_MS = 5 * 60_000;

export const PKI_DIR = "pki";
export const CA_CERT_FILE = "ca.crt";
export const CA_KEY_FILE = "ca.key";

export interface ClusterCa {
  cert: x509.X509Certificate;
  certPem: string;
  /** Null on a node that only verifies (learners and clients keep no CA key). */
  privateKey: CryptoKey | null;
  keyPem: string | null;
}

/** A positive random 128-bit serial number, hex (RFC 5280 asks for unpredictable serials). */
export function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f;
  b[0] |= 0x01; // no leading zero byte, so the DER encoding keeps all 16 bytes
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function generateEcKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_ALGORITHM, true, ["sign", "verify"]);
}

/** PKCS#8 PEM ("PRIVATE KEY") of an extractable private key; Deno's TLS accepts this form. */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY") + "\n";
}

export async function privateKeyFromPem(pem: string): Promise<CryptoKey> {
  const blocks = x509.PemConverter.decode(pem);
  if (blocks.length !== 1) throw new Error("expected exactly one PEM private key block");
  return await crypto.subtle.importKey("pkcs8", blocks[0], EC_ALGORITHM, true, ["sign"]);
}

/** Creates a new cluster CA (subject "CN=twill cluster CA <cluster>"). */
export async function createClusterCa(
  opts: { now?: number; clusterName?: string } = {},
): Promise<ClusterCa> {
  const now = opts.now ?? Date.now();
  const keys = await generateEcKeyPair();
  const notBefore = new Date(now - CLOCK_SKEW_MS);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + CA_LIFETIME_YEARS);
  const cn = `twill cluster CA${opts.clusterName ? ` ${opts.clusterName}` : ""}`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [cn] }],
    notBefore,
    notAfter,
    signingAlgorithm: EC_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    cert,
    certPem: certificateToPem(cert),
    privateKey: keys.privateKey,
    keyPem: await privateKeyToPem(keys.privateKey),
  };
}

export function certificateToPem(cert: x509.X509Certificate): string {
  return cert.toString("pem") + "\n";
}

/** Parses one PEM certificate; throws a one-line error when it is not one. */
export function parseCertificatePem(pem: string): x509.X509Certificate {
  const blocks = x509.PemConverter.decode(pem);
  if (blocks.length !== 1) {
    throw new Error(`expected exactly one PEM certificate, found ${blocks.length}`);
  }
  return new x509.X509Certificate(blocks[0]);
}

/** Lower-case hex sha256 of a certificate's DER: the hash a join token pins. */
export function certificateSha256(cert: x509.X509Certificate | Uint8Array): string {
  const der = cert instanceof Uint8Array ? cert : new Uint8Array(cert.rawData);
  return createHash("sha256").update(der).digest("hex");
}

/** True when `cert` is a CA certificate (basicConstraints cA=true). */
export function isCaCertificate(cert: x509.X509Certificate): boolean {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  return bc?.ca === true;
}

/** Loads a CA from PEM text; `keyPem` null on a node without the key. Checks they match. */
export async function loadClusterCa(certPem: string, keyPem: string | null): Promise<ClusterCa> {
  const cert = parseCertificatePem(certPem);
  if (!isCaCertificate(cert)) throw new Error("pki/ca.crt is not a CA certificate");
  if (!(await cert.verify({ signatureOnly: true }))) {
    throw new Error("pki/ca.crt is not self-signed");
  }
  const privateKey = keyPem === null ? null : await privateKeyFromPem(keyPem);
  if (privateKey) await assertKeyMatches(cert, privateKey);
  return { cert, certPem, privateKey, keyPem };
}

async function assertKeyMatches(cert: x509.X509Certificate, key: CryptoKey): Promise<void> {
  const probe = crypto.getRandomValues(new Uint8Array(32));
  const sig = await crypto.subtle.sign(EC_ALGORITHM, key, probe);
  const pub = await cert.publicKey.export(EC_ALGORITHM, ["verify"]);
  if (!(await crypto.subtle.verify(EC_ALGORITHM, pub, sig, probe))) {
    throw new Error("pki/ca.key does not belong to pki/ca.crt");
  }
}

export function caCertPath(dataDir: string): string {
  return join(dataDir, PKI_DIR, CA_CERT_FILE);
}

export function caKeyPath(dataDir: string): string {
  return join(dataDir, PKI_DIR, CA_KEY_FILE);
}

/** Writes pki/ca.crt (0644) and, when `withKey` and the CA has one, pki/ca.key (0600). */
export async function writeClusterCa(
  dataDir: string,
  ca: ClusterCa,
  opts: { withKey: boolean },
): Promise<void> {
  await ensureDir(join(dataDir, PKI_DIR));
  if (opts.withKey) {
    if (ca.keyPem === null) throw new Error("this CA has no private key to write");
    await writeTextFileAtomic(caKeyPath(dataDir), ca.keyPem, 0o600);
  }
  await writeTextFileAtomic(caCertPath(dataDir), ca.certPem, 0o644);
}

/** Reads pki/ca.crt and, if present, pki/ca.key. Null when the data dir has no pki/ca.crt. */
export async function readClusterCa(dataDir: string): Promise<ClusterCa | null> {
  const certPem = await readTextOrNull(caCertPath(dataDir));
  if (certPem === null) return null;
  const keyPem = await readTextOrNull(caKeyPath(dataDir));
  return await loadClusterCa(certPem, keyPem);
}

export async function readTextOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}
