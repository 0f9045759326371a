// Renewal of a member's serving certificate (lib/pki/cert_renewal.ts) with the member's means:
// a voter, which holds the CA key, signs a new certificate itself; a learner sends a
// certificate request to the leader (POST /raft/sign) and keeps its new key to itself. The new
// certificate is written to pki/ (not for in-memory test members) and then served.
import { x509 } from "../../pki/x509.ts";
import {
  type IssuedCertificate,
  type Renewal,
  startCertificateRenewal,
} from "../../pki/cert_renewal.ts";
import {
  createCertificateRequest,
  issueMemberCertificate,
  writeMemberCertificate,
} from "../../pki/member_cert.ts";
import type { StoreServer } from "../../http/serve.ts";
import type { StoreMember } from "./member.ts";
import { splitHostPort } from "../../net/address.ts";

export function startMemberRenewal(member: StoreMember, server: StoreServer): Renewal {
  const { opts } = member;
  const [host] = splitHostPort(opts.identity.advertise);
  const issue = async (): Promise<IssuedCertificate> => {
    const ca = await member.trust.ca();
    if (ca.privateKey && member.kv.confState.voters.includes(member.id)) {
      const m = await issueMemberCertificate(ca, {
        advertiseHost: host,
        name: opts.identity.name,
        lifetimeMs: opts.tls.certLifetimeMs,
      });
      return { cert: m.cert, chainPem: m.chainPem, keyPem: m.keyPem };
    }
    const leader = member.kv.leader;
    if (leader === 0) throw new Error("no leader to sign a certificate request");
    const req = await createCertificateRequest(opts.identity.name);
    const { certPem } = await member.callLeader<{ certPem: string }>(leader, "/raft/sign", {
      csrPem: req.csrPem,
    });
    return { cert: leafOf(certPem), chainPem: certPem, keyPem: req.keyPem };
  };
  return startCertificateRenewal({
    current: leafOf(opts.tls.certPem),
    issue,
    persist: async (m) => {
      if (!opts.inMemory) await writeMemberCertificate(opts.dataDir, m);
    },
    install: (chainPem, keyPem) => server.replaceCertificate(chainPem, keyPem),
    log: opts.logger,
    retryMs: Math.min(30_000, Math.max(500, (opts.tls.certLifetimeMs ?? 30_000) / 10)),
  });
}

/** The first certificate of a PEM chain (the leaf). */
export function leafOf(chainPem: string): x509.X509Certificate {
  const first = x509.PemConverter.decode(chainPem)[0];
  if (!first) throw new Error("no certificate in the chain");
  return new x509.X509Certificate(first);
}
