// The trust material a node keeps in its data dir, made at --init and at --join: the cluster CA
// (pki/ca.crt everywhere, pki/ca.key on voters), a member's serving certificate, the node's
// credential, a voter's admin credential and the join token file. The member seeds the replicated
// /twill/ keys from them at --init, and keeps ca.key and admin-credential in step with its role.
import { join } from "node:path";
import {
  certificateSha256,
  type ClusterCa,
  createClusterCa,
  parseCertificatePem,
  writeClusterCa,
} from "../pki/ca.ts";
import {
  adminCredentialPath,
  createCredential,
  credentialPath,
  looksLikeCredential,
  writeCredential,
} from "../pki/credential.ts";
import { formatJoinToken, generateJoinSecret } from "../pki/join_token.ts";
import { issueMemberCertificate, writeMemberCertificate } from "../pki/member_cert.ts";
import { writeTextFileAtomic } from "../fs_atomic.ts";
import { splitHostPort } from "../net/address.ts";

export const JOIN_TOKEN_FILE = "join-token";

/** What an --init node made, for the member to seed into the store once it leads. */
export interface FounderTrust {
  ca: ClusterCa;
  /** This member's serving certificate chain and key. */
  serving: { chainPem: string; keyPem: string };
  secret: string;
  joinToken: string;
  credential: string;
  adminCredential: string;
}

/** --init: the CA (with its key), this member's certificate, its credential and admin credential,
 *  and the join token file (0600). `secret` undefined: generate one. */
export async function createFounderTrust(
  dataDir: string,
  o: { name: string; advertise: string; clusterId: string; secret?: string },
): Promise<FounderTrust> {
  const ca = await createClusterCa({ clusterName: o.clusterId });
  await writeClusterCa(dataDir, ca, { withKey: true });
  const serving = await issueMemberCertificate(ca, {
    advertiseHost: splitHostPort(o.advertise)[0],
    name: o.name,
  });
  await writeMemberCertificate(dataDir, serving);
  const credential = createCredential();
  const adminCredential = createCredential(true);
  await writeCredential(credentialPath(dataDir), credential);
  await writeCredential(adminCredentialPath(dataDir), adminCredential);
  const secret = o.secret ?? generateJoinSecret();
  const joinToken = formatJoinToken({ caSha256: certificateSha256(ca.cert), secret });
  await writeTextFileAtomic(join(dataDir, JOIN_TOKEN_FILE), joinToken + "\n", 0o600);
  return { ca, serving, secret, joinToken, credential, adminCredential };
}

/** What a joiner got from /raft/join, checked before anything is written. */
export interface JoinedTrust {
  caPem: string;
  credential: string;
  /** The member's certificate chain (absent for a plain client). */
  certPem?: string;
  /** The private key made for the CSR (absent for a plain client). */
  keyPem?: string;
}

/** Checks the join answer against the pinned CA and writes pki/ca.crt, the credential and, for a
 *  member, pki/member.crt + pki/member.key. Throws one line when the answer is not usable. */
export async function writeJoinedTrust(
  dataDir: string,
  pinnedCaPem: string,
  t: JoinedTrust,
): Promise<void> {
  if (!looksLikeCredential(t.credential ?? "")) {
    throw new Error("the join answer holds no credential; is the member running twill 0.2.0?");
  }
  const pinned = certificateSha256(parseCertificatePem(pinnedCaPem));
  if (t.caPem && certificateSha256(parseCertificatePem(t.caPem)) !== pinned) {
    throw new Error("the join answer names a CA other than the pinned one; refusing it");
  }
  await writeClusterCa(dataDir, {
    cert: parseCertificatePem(pinnedCaPem),
    certPem: pinnedCaPem,
    privateKey: null,
    keyPem: null,
  }, { withKey: false });
  if (t.certPem && t.keyPem) {
    await writeMemberCertificate(dataDir, { chainPem: t.certPem, keyPem: t.keyPem });
  }
  await writeCredential(credentialPath(dataDir), t.credential);
}
