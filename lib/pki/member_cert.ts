// A member's serving certificate: ECDSA P-256, signed by the cluster CA, naming the member's
// --advertise host (an IP SAN for an address, a DNS SAN for a name) and 127.0.0.1, key usage
// digitalSignature, extended key usage serverAuth. A voter signs its own; a learner's is signed
// by a voter from the public key it sends, so the private key never leaves the member.
import { isIP } from "node:net";
import { join } from "node:path";
import { x509 } from "./x509.ts";
import {
  certificateToPem,
  CLOCK_SKEW_MS,
  type ClusterCa,
  EC_ALGORITHM,
  generateEcKeyPair,
  PKI_DIR,
  privateKeyToPem,
  randomSerial,
  readTextOrNull,
} from "./ca.ts";
import { ensureDir, writeTextFileAtomic } from "../fs_atomic.ts";

export const DEFAULT_MEMBER_CERT_LIFETIME_MS = 365 * 24 * 3600_000;
export const MIN_LIFETIME_MS = 2000;
export const LOOPBACK = "127.0.0.1";
export const MEMBER_CERT_FILE = "member.crt";
export const MEMBER_KEY_FILE = "member.key";

export interface MemberCertificate {
  cert: x509.X509Certificate;
  /** The member certificate followed by the CA certificate: Deno's TLS sends this chain. */
  chainPem: string;
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  /** The member's --advertise host (no port): an IPv4/IPv6 address or a DNS name. */
  advertiseHost: string;
  /** The member's name, for the subject CN. */
  name: string;
  lifetimeMs?: number;
  now?: number;
}

const DNS_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
const DNS_NAME = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

/** SANs for a member: its advertise host (IP or DNS) plus 127.0.0.1, without duplicates. */
export function memberSans(advertiseHost: string): x509.JsonGeneralName[] {
  const host = advertiseHost.startsWith("[") && advertiseHost.endsWith("]")
    ? advertiseHost.slice(1, -1)
    : advertiseHost;
  if (isIP(host) === 0 && !DNS_NAME.test(host)) {
    throw new Error(`bad advertise host for a certificate: ${JSON.stringify(advertiseHost)}`);
  }
  const sans: x509.JsonGeneralName[] = [
    { type: isIP(host) ? "ip" : "dns", value: host },
  ];
  if (host !== LOOPBACK) sans.push({ type: "ip", value: LOOPBACK });
  return sans;
}

/** Signs a serving certificate for `publicKey` with the CA's key. */
export async function signMemberCertificate(
  ca: ClusterCa,
  publicKey: CryptoKey,
  opts: IssueOptions,
): Promise<x509.X509Certificate> {
  if (!ca.privateKey) throw new Error("this node holds no CA key (only voters can sign)");
  const now = opts.now ?? Date.now();
  const lifetime = opts.lifetimeMs ?? DEFAULT_MEMBER_CERT_LIFETIME_MS;
  // X.509 times have whole seconds, so shorter lifetimes would be distorted by the rounding.
  if (!(lifetime >= MIN_LIFETIME_MS)) {
    throw new Error(`certificate lifetime must be at least ${MIN_LIFETIME_MS} ms: ${lifetime}`);
  }
  const notAfterMs = Math.min(now + lifetime, ca.cert.notAfter.getTime());
  return await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [`twill member ${opts.name}`] }],
    issuer: ca.cert.subjectName,
    // Skew only when the lifetime allows it, so short test lifetimes stay short.
    notBefore: new Date(now - Math.min(CLOCK_SKEW_MS, lifetime / 10)),
    notAfter: new Date(notAfterMs),
    signingAlgorithm: EC_ALGORITHM,
    publicKey,
    signingKey: ca.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(memberSans(opts.advertiseHost), false),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
    ],
  });
}

/** A new key pair and its serving certificate, with the PEM Deno.serve/listenTls take. */
export async function issueMemberCertificate(
  ca: ClusterCa,
  opts: IssueOptions,
): Promise<MemberCertificate> {
  const keys = await generateEcKeyPair();
  const cert = await signMemberCertificate(ca, keys.publicKey, opts);
  const certPem = certificateToPem(cert);
  return {
    cert,
    certPem,
    chainPem: certPem + ca.certPem,
    keyPem: await privateKeyToPem(keys.privateKey),
  };
}

/** A learner's half of issuance: a new key pair and a PKCS#10 request proving it holds the key. */
export async function createCertificateRequest(
  name: string,
): Promise<{ csrPem: string; keyPem: string }> {
  const keys = await generateEcKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [`twill member ${name}`] }],
    keys,
    signingAlgorithm: EC_ALGORITHM,
  });
  return { csrPem: csr.toString("pem") + "\n", keyPem: await privateKeyToPem(keys.privateKey) };
}

/** Bound on a request body we parse: a P-256 CSR in PEM is well under 1 KiB. */
export const MAX_CSR_PEM_LENGTH = 4096;

/**
 * A voter's half: checks the request's self-signature and key type, then signs a serving
 * certificate. Names come from `opts` (the member's recorded --advertise), never from the CSR,
 * so a request cannot ask for someone else's address.
 */
export async function signCertificateRequest(
  ca: ClusterCa,
  csrPem: string,
  opts: IssueOptions,
): Promise<{ cert: x509.X509Certificate; chainPem: string }> {
  if (csrPem.length > MAX_CSR_PEM_LENGTH) throw new Error("certificate request too large");
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new Error("not a PEM certificate request");
  }
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name !== "ECDSA" || alg.namedCurve !== "P-256") {
    throw new Error("certificate request key must be ECDSA P-256");
  }
  if (!(await csr.verify())) throw new Error("certificate request signature is invalid");
  const publicKey = await csr.publicKey.export(EC_ALGORITHM, ["verify"]);
  const cert = await signMemberCertificate(ca, publicKey, opts);
  return { cert, chainPem: certificateToPem(cert) + ca.certPem };
}

/** When to renew: two thirds of the way from notBefore to notAfter. */
export function renewAt(cert: x509.X509Certificate): Date {
  const from = cert.notBefore.getTime();
  const to = cert.notAfter.getTime();
  return new Date(from + Math.floor(((to - from) * 2) / 3));
}

/** Milliseconds until renewal is due (0 when it is due or the certificate is not yet valid). */
export function renewDelayMs(cert: x509.X509Certificate, now = Date.now()): number {
  if (now < cert.notBefore.getTime()) return 0;
  return Math.max(0, renewAt(cert).getTime() - now);
}

/** Writes pki/member.key (0600) and pki/member.crt (the chain, 0644). */
export async function writeMemberCertificate(
  dataDir: string,
  m: { chainPem: string; keyPem: string },
): Promise<void> {
  await ensureDir(join(dataDir, PKI_DIR));
  await writeTextFileAtomic(join(dataDir, PKI_DIR, MEMBER_KEY_FILE), m.keyPem, 0o600);
  await writeTextFileAtomic(join(dataDir, PKI_DIR, MEMBER_CERT_FILE), m.chainPem, 0o644);
}

/** Reads pki/member.crt (chain) and pki/member.key; null when either is missing. */
export async function readMemberCertificate(
  dataDir: string,
): Promise<{ cert: x509.X509Certificate; chainPem: string; keyPem: string } | null> {
  const chainPem = await readTextOrNull(join(dataDir, PKI_DIR, MEMBER_CERT_FILE));
  const keyPem = await readTextOrNull(join(dataDir, PKI_DIR, MEMBER_KEY_FILE));
  if (chainPem === null || keyPem === null) return null;
  const first = x509.PemConverter.decode(chainPem)[0];
  if (!first) throw new Error("pki/member.crt holds no certificate");
  return { cert: new x509.X509Certificate(first), chainPem, keyPem };
}
