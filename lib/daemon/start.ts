// Step one of a `twill agent` start: from the config and what the data dir holds, decide what this
// process is (the founder of a cluster, a joiner, a restarting member or client, a client of an
// external etcd) or refuse with one line saying what to do. Pure: the caller reads the facts.
import { join } from "node:path";
import type { MemberIdentity } from "../store/member/identity.ts";
import {
  checkInitSecret,
  type JoinToken,
  JoinTokenError,
  parseJoinToken,
} from "../pki/join_token.ts";
import type { DaemonConfig } from "./config.ts";

/** What the data dir and the token flags held when the agent started. */
export interface StartFacts {
  /** <data-dir>/member.json, if there is one. */
  identity?: MemberIdentity;
  /** Whether <data-dir>/raft/wal holds anything (read for --init only). */
  hasRaftLog: boolean;
  /** Whether <data-dir>/pki/ca.crt exists (read on restart only). */
  hasCa?: boolean;
  /** Whether <data-dir>/credential exists (read on restart only). */
  hasCredential?: boolean;
  /** Whether <data-dir>/token exists: 0.1.0's plain cluster token (read on restart only). */
  hasLegacyToken?: boolean;
  /** The members' addresses in <data-dir>/peers.json (read for a restarting client only). */
  peerAddresses?: string[];
  /** The value given by --token or --token-file. */
  givenToken?: string;
}

export type StartDecision =
  /** --etcd-endpoints: no embedded store. */
  | { kind: "external"; endpoints: string[]; token?: string }
  /** --init: a new cluster; `secret` undefined means generate one; `warning` says it is short. */
  | { kind: "init"; secret?: string; warning?: string }
  /** --join on an empty data dir, with the parsed join token. */
  | { kind: "join"; seeds: string[]; joinToken: JoinToken }
  /** The data dir holds a member: start it again (`tokenIgnored`: --token was given anyway). */
  | { kind: "restart"; identity: MemberIdentity; tokenIgnored: boolean }
  /** The data dir holds a plain client of the cluster (node id 0). */
  | { kind: "client"; identity: MemberIdentity; endpoints: string[]; tokenIgnored: boolean }
  | { kind: "refuse"; refusal: Refusal; message: string };

export type Refusal =
  | "init-on-cluster"
  | "raft-log-without-identity"
  | "bad-init-secret"
  | "legacy-data-dir"
  | "no-credential"
  | "client-without-members"
  | "join-without-token"
  | "bad-join-token"
  | "no-cluster";

/** Decides the start. Refusals are returned, not thrown, so each is plain to test. */
export function decideStart(cfg: DaemonConfig, facts: StartFacts): StartDecision {
  if (cfg.etcdEndpoints.length > 0) {
    return { kind: "external", endpoints: cfg.etcdEndpoints, token: facts.givenToken };
  }
  const id = facts.identity;
  if (cfg.init) return decideInit(cfg, facts);
  if (id) return decideRestart(cfg, id, facts);
  if (cfg.join.length > 0) return decideJoin(cfg, facts);
  return refuse(
    "no-cluster",
    `${cfg.dataDir} holds no cluster: run with --init to start one, or --join HOST:PORT --token K10… to enter one`,
  );
}

function decideInit(cfg: DaemonConfig, facts: StartFacts): StartDecision {
  const id = facts.identity;
  if (id) {
    return refuse(
      "init-on-cluster",
      `${cfg.dataDir} already holds cluster ${id.clusterId} (this node is member ${id.nodeId}); ` +
        `run without --init to restart it, or remove ${cfg.dataDir} to start over`,
    );
  }
  if (facts.hasRaftLog) {
    return refuse(
      "raft-log-without-identity",
      `${cfg.dataDir} holds a Raft log but no member.json; refusing to create a second cluster — remove ${cfg.dataDir} to start over`,
    );
  }
  if (facts.givenToken === undefined) return { kind: "init" };
  try {
    const { secret, warning } = checkInitSecret(facts.givenToken);
    return warning ? { kind: "init", secret, warning } : { kind: "init", secret };
  } catch (e) {
    if (e instanceof JoinTokenError) return refuse("bad-init-secret", e.message);
    throw e;
  }
}

function decideJoin(cfg: DaemonConfig, facts: StartFacts): StartDecision {
  if (!facts.givenToken) {
    return refuse(
      "join-without-token",
      "--join needs the join token: run `twill ctl join-token` on a member and pass it with --token or --token-file",
    );
  }
  try {
    return { kind: "join", seeds: cfg.join, joinToken: parseJoinToken(facts.givenToken) };
  } catch (e) {
    if (e instanceof JoinTokenError) return refuse("bad-join-token", e.message);
    throw e;
  }
}

function decideRestart(cfg: DaemonConfig, id: MemberIdentity, facts: StartFacts): StartDecision {
  if (!facts.hasCa) {
    if (facts.hasLegacyToken) {
      return refuse(
        "legacy-data-dir",
        `${cfg.dataDir} was made by twill 0.1.0 (plain token, no pki/); remove it and join again ` +
          "with a join token from 'twill ctl join-token' on a member",
      );
    }
    return refuse(
      "no-credential",
      `${
        join(cfg.dataDir, "pki", "ca.crt")
      } is missing; restore it, or remove ${cfg.dataDir} and join again`,
    );
  }
  if (!facts.hasCredential) {
    return refuse(
      "no-credential",
      `${join(cfg.dataDir, "credential")} is missing; restore it, or run 'twill ctl remove-node ` +
        `${id.name || "<name>"}' on a member, remove ${cfg.dataDir} and join again`,
    );
  }
  const tokenIgnored = facts.givenToken !== undefined;
  if (id.nodeId !== 0) return { kind: "restart", identity: id, tokenIgnored };
  const endpoints = (facts.peerAddresses ?? []).filter((a) => a !== "");
  if (endpoints.length === 0) {
    return refuse(
      "client-without-members",
      `${cfg.dataDir} says this node is a client but lists no members; remove it and re-join`,
    );
  }
  return { kind: "client", identity: id, endpoints, tokenIgnored };
}

/** True when --join was given but the data dir already holds a member or client, which then
 *  restarts (said in the log, whatever the start decides). */
export function ignoresJoin(cfg: DaemonConfig, facts: StartFacts): boolean {
  return !cfg.init && cfg.etcdEndpoints.length === 0 && facts.identity !== undefined &&
    cfg.join.length > 0;
}

function refuse(refusal: Refusal, message: string): StartDecision {
  return { kind: "refuse", refusal, message };
}
