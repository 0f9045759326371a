// A real cluster of store members in this process, over TLS with the trust of shared/DESIGN.md:
// the test makes the CA, the first member is bootstrapped with a join secret and credentials,
// every other node joins through POST /raft/join with the secret and a certificate request, as
// the daemon does. Every member's log lines are captured (formatted as the daemon prints them)
// so tests can check that no secret is ever logged.
import { createClusterCa } from "../../lib/pki/ca.ts";
import type { ClusterCa } from "../../lib/pki/ca.ts";
import { createCredential } from "../../lib/pki/credential.ts";
import { generateJoinSecret } from "../../lib/pki/join_token.ts";
import { createCertificateRequest, issueMemberCertificate } from "../../lib/pki/member_cert.ts";
import { StoreMember } from "../../lib/store/member/member.ts";
import { requestJoin } from "../../lib/store/member/join.ts";
import type { JoinResponse } from "../../lib/store/member/peer_routes.ts";
import { generateClusterId } from "../../lib/store/member/identity.ts";
import { HttpClient } from "../../lib/http/client.ts";
import { formatLogLine, type Logger } from "../../lib/log.ts";

export const PREFIX = "/coreos.com/network";

export interface TrustClusterOptions {
  voters?: number;
  certLifetimeMs?: number;
}

export interface JoinedNode {
  name: string;
  credential: string;
  response: JoinResponse;
}

export class TrustCluster {
  readonly members: StoreMember[] = [];
  readonly dirs: string[] = [];
  readonly logs: string[] = [];
  readonly clients: HttpClient[] = [];
  joinSecret = generateJoinSecret();
  adminCredential = createCredential(true);
  credentials: string[] = [];

  private constructor(readonly ca: ClusterCa, readonly o: TrustClusterOptions) {}

  static async start(o: TrustClusterOptions = {}): Promise<TrustCluster> {
    const c = new TrustCluster(await createClusterCa(), o);
    try {
      await c.bootstrap();
      for (let i = 2; i <= (o.voters ?? 3); i++) await c.addMember(`m${i}`);
      await c.waitVoters(o.voters ?? 3);
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  logger(name: string): Logger {
    return (level, event, fields) => {
      const line = `${name} ${formatLogLine(level, event, fields)}`;
      this.logs.push(line);
      if (Deno.env.get("TRUST_LOG")) console.log(line);
    };
  }

  address(i = 0): string {
    return this.members[i].opts.identity.advertise;
  }

  /** The index of a member that is not the leader (requests there are forwarded). */
  follower(): number {
    const i = this.members.findIndex((m) => m.kv.currentRole !== "leader");
    if (i < 0) throw new Error("no follower");
    return i;
  }

  leader(): StoreMember {
    const l = this.members.find((m) => m.kv.currentRole === "leader");
    if (!l) throw new Error("no leader");
    return l;
  }

  /** A client that speaks TLS with the cluster CA and sends `credential` (none: undefined). */
  client(credential?: string): HttpClient {
    const h = new HttpClient({ token: credential, tls: { caCerts: [this.ca.certPem] } });
    this.clients.push(h);
    return h;
  }

  private common(name: string, port: number) {
    return {
      listen: `127.0.0.1:${port}`,
      voters: this.o.voters ?? 3,
      standbyLearners: 0,
      deadVoterTimeoutMs: 60_000,
      snapshotCount: 10_000,
      tickMs: 50,
      electionTick: 10,
      logger: this.logger(name),
    };
  }

  private async bootstrap(): Promise<void> {
    const port = freePort();
    const dir = await Deno.makeTempDir({ prefix: "twill-trust-" });
    this.dirs.push(dir);
    const cert = await issueMemberCertificate(this.ca, {
      advertiseHost: "127.0.0.1",
      name: "m1",
      lifetimeMs: this.o.certLifetimeMs,
    });
    const credential = createCredential();
    this.credentials.push(credential);
    this.members.push(
      await StoreMember.start({
        ...this.common("m1", port),
        dataDir: dir,
        identity: {
          clusterId: generateClusterId(),
          nodeId: 1,
          name: "m1",
          advertise: `127.0.0.1:${port}`,
        },
        tls: {
          certPem: cert.chainPem,
          keyPem: cert.keyPem,
          caPem: this.ca.certPem,
          caKeyPem: this.ca.keyPem!,
          certLifetimeMs: this.o.certLifetimeMs,
        },
        trust: {
          credential,
          init: { joinSecret: this.joinSecret, adminCredential: this.adminCredential },
        },
        bootstrap: true,
      }),
    );
  }

  /** Joins through the first member, as `twill agent --join` does. */
  async join(
    name: string,
    wantMember: boolean,
    address: string,
  ): Promise<JoinedNode & { keyPem: string }> {
    const csr = await createCertificateRequest(name);
    const response = await requestJoin(
      [this.address(0)],
      {
        address,
        name,
        wantMember,
        joinId: crypto.randomUUID(),
        secret: this.joinSecret,
        csrPem: csr.csrPem,
      },
      this.logger(`join-${name}`),
      { caCerts: [this.ca.certPem] },
      20_000,
    );
    return { name, credential: response.credential, response, keyPem: csr.keyPem };
  }

  async addMember(name: string): Promise<StoreMember> {
    const port = freePort();
    const dir = await Deno.makeTempDir({ prefix: "twill-trust-" });
    this.dirs.push(dir);
    const j = await this.join(name, true, `127.0.0.1:${port}`);
    this.credentials.push(j.credential);
    const m = await StoreMember.start({
      ...this.common(name, port),
      dataDir: dir,
      identity: {
        clusterId: j.response.clusterId,
        nodeId: j.response.nodeId,
        name,
        advertise: `127.0.0.1:${port}`,
      },
      tls: {
        certPem: j.response.certPem,
        keyPem: j.keyPem,
        caPem: j.response.caPem,
        certLifetimeMs: this.o.certLifetimeMs,
      },
      trust: { credential: j.credential },
      initialMembers: j.response.members,
    });
    this.members.push(m);
    return m;
  }

  async waitVoters(n: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      () => {
        try {
          return this.leader().kv.confState.voters.length === n &&
            this.members.every((m) => m.kv.appliedIndex >= this.leader().kv.appliedIndex - 1);
        } catch {
          return false;
        }
      },
      timeoutMs,
      `${n} voters`,
    );
  }

  async stop(): Promise<void> {
    for (const h of this.clients) h.close();
    await Promise.all(this.members.map((m) => m.close().catch(() => {})));
    for (const d of this.dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
  }
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string) {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const enc = new TextEncoder();
export const b64 = (s: string) => btoa(String.fromCharCode(...enc.encode(s)));
