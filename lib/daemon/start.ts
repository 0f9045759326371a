// Step one of a `twill agent` start: from the config and what the data dir holds, decide what this
// process is (the founder of a cluster, a joiner, a restarting member or client, a client of an
// external etcd) or refuse with one line saying what to do. Pure: the caller reads the facts.
import { join } from "node:path";
import type { MemberIdentity } from "../store/member/identity.ts";
import type { DaemonConfig } from "./config.ts";

/** What the data dir and the token flags held when the agent started. */
export interface StartFacts {
  /** <data-dir>/member.json, if there is one. */
  identity?: MemberIdentity;
  /** Whether <data-dir>/raft/wal holds anything (read for --init only). */
  hasRaftLog: boolean;
  /** <data-dir>/token (read on restart only). */
  keptToken?: string;
  /** The members' addresses in <data-dir>/peers.json (read for a restarting client only). */
  peerAddresses?: string[];
  /** The token given by --token or --token-file. */
  givenToken?: string;
}

export type StartDecision =
  /** --etcd-endpoints: no embedded store. */
  | { kind: "external"; endpoints: string[]; token?: string }
  /** --init: a new cluster; `token` undefined means generate one. */
  | { kind: "init"; token?: string }
  /** --join on an empty data dir. */
  | { kind: "join"; seeds: string[]; token: string }
  /** The data dir holds a member: start it again. */
  | { kind: "restart"; identity: MemberIdentity; token: string }
  /** The data dir holds a plain client of the cluster (node id 0). */
  | { kind: "client"; identity: MemberIdentity; token: string; endpoints: string[] }
  | { kind: "refuse"; refusal: Refusal; message: string };

export type Refusal =
  | "init-on-cluster"
  | "raft-log-without-identity"
  | "token-differs"
  | "no-kept-token"
  | "client-without-members"
  | "join-without-token"
  | "no-cluster";

/** Decides the start. Refusals are returned, not thrown, so each is plain to test. */
export function decideStart(cfg: DaemonConfig, facts: StartFacts): StartDecision {
  if (cfg.etcdEndpoints.length > 0) {
    return { kind: "external", endpoints: cfg.etcdEndpoints, token: facts.givenToken };
  }
  const id = facts.identity;
  if (cfg.init) {
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
    return { kind: "init", token: facts.givenToken };
  }
  if (id) return decideRestart(cfg, id, facts);
  if (cfg.join.length > 0) {
    if (!facts.givenToken) {
      return refuse(
        "join-without-token",
        "--join needs the cluster token: give --token T or --token-file F",
      );
    }
    return { kind: "join", seeds: cfg.join, token: facts.givenToken };
  }
  return refuse(
    "no-cluster",
    `${cfg.dataDir} holds no cluster: run with --init to start one, or --join HOST:PORT --token T to enter one`,
  );
}

function decideRestart(cfg: DaemonConfig, id: MemberIdentity, facts: StartFacts): StartDecision {
  const tokenPath = join(cfg.dataDir, "token");
  const { keptToken: kept, givenToken: given } = facts;
  if (kept && given && kept !== given) {
    return refuse(
      "token-differs",
      `the token given differs from the one kept in ${tokenPath}; drop --token to restart with the kept one`,
    );
  }
  const token = kept ?? given;
  if (!token) {
    return refuse(
      "no-kept-token",
      `no token in ${tokenPath}; give the cluster token with --token`,
    );
  }
  if (id.nodeId !== 0) return { kind: "restart", identity: id, token };
  const endpoints = (facts.peerAddresses ?? []).filter((a) => a !== "");
  if (endpoints.length === 0) {
    return refuse(
      "client-without-members",
      `${cfg.dataDir} says this node is a client but lists no members; remove it and re-join`,
    );
  }
  return { kind: "client", identity: id, token, endpoints };
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
