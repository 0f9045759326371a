// GET /healthz, /readyz, /metrics on --healthz-ip:--healthz-port, for every kind of node: the
// network agent's (lease, backend, subnet.env, store reachability) and a --store-only member's
// (the member runs; it knows a leader and has applied that leader's commit index). Plain handlers
// (testable without a socket) and a Deno.serve wrapper.
import { METRICS } from "../metrics.ts";
import type { StoreStatus } from "./options.ts";
import { type AgentState, storeStatusMetrics } from "./state.ts";

export interface HealthConfig {
  now: () => number;
  storeThresholdMs: number;
  reconcileStuckMs: number;
  storeStatus?: () => StoreStatus | Promise<StoreStatus>;
}

type Verdict = { ok: boolean; reason: string };

/** What each path answers; the routing and the response shapes are shared. */
interface HealthChecks {
  healthz(): Verdict | Promise<Verdict>;
  readyz(): Verdict | Promise<Verdict>;
  metrics(): Promise<string>;
}

function verdict(v: Verdict): Response {
  return new Response(v.ok ? "ok\n" : `${v.reason}\n`, { status: v.ok ? 200 : 503 });
}

function route(checks: HealthChecks) {
  return async (req: Request): Promise<Response> => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    switch (new URL(req.url).pathname) {
      case "/healthz":
        return verdict(await checks.healthz());
      case "/readyz":
        return verdict(await checks.readyz());
      case "/metrics":
        return new Response(await checks.metrics(), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        });
      default:
        return new Response("not found: try /healthz, /readyz or /metrics\n", { status: 404 });
    }
  };
}

async function storeStatusOf(cfg: HealthConfig): Promise<StoreStatus | null> {
  try {
    return cfg.storeStatus ? await cfg.storeStatus() : null;
  } catch {
    return null;
  }
}

/** The network agent's endpoints. */
export function healthHandler(state: AgentState, cfg: HealthConfig) {
  return route({
    healthz: () => state.healthy(cfg.now(), cfg.storeThresholdMs, cfg.reconcileStuckMs),
    readyz: () => state.ready(),
    metrics: async () => state.metrics(await storeStatusOf(cfg)) + METRICS.render(),
  });
}

/** What a store-only node's health is read from (a StoreMember, or a test's stand-in). */
export interface MemberProbe {
  status(): { role: string; term: number; leader: number; commit: number; applied: number };
  /** The member's fatal error, if it stopped on one. */
  failure(): Error | undefined;
  /** Resolves once the leader confirmed its commit index and this member applied it. */
  caughtUp(): Promise<void>;
}

/** How long /readyz waits for the leader's confirmation before saying not ready. */
const READY_WAIT_MS = 2000;

/** A --store-only member's endpoints. */
export function memberHealthHandler(m: MemberProbe) {
  return route({
    healthz: () => {
      const e = m.failure();
      return e ? { ok: false, reason: `store member stopped: ${e.message}` } : ok();
    },
    readyz: () => memberReady(m),
    metrics: () => {
      const s = m.status();
      const figures = {
        role: s.role,
        term: s.term,
        commitIndex: s.commit,
        appliedIndex: s.applied,
      };
      return Promise.resolve(storeStatusMetrics(figures) + METRICS.render());
    },
  });
}

function ok(): Verdict {
  return { ok: true, reason: "ok" };
}

async function memberReady(m: MemberProbe): Promise<Verdict> {
  const e = m.failure();
  if (e) return { ok: false, reason: `store member stopped: ${e.message}` };
  if (m.status().leader === 0) return { ok: false, reason: "no leader known" };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${READY_WAIT_MS} ms`)), READY_WAIT_MS);
  });
  try {
    await Promise.race([m.caughtUp(), timeout]);
    return ok();
  } catch (err) {
    return { ok: false, reason: `not caught up with the leader: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

export function serveHealth(
  hostname: string,
  port: number,
  handler: (req: Request) => Promise<Response>,
  signal: AbortSignal,
): Deno.HttpServer | null {
  if (!port) return null;
  return Deno.serve({ hostname, port, signal, onListen: () => {} }, handler);
}

/** The health server of a --store-only member, serving until `signal` aborts (null: port 0). */
export function serveMemberHealth(
  hostname: string,
  port: number,
  member: { status(): ReturnType<MemberProbe["status"]>; kv: MemberKv },
  signal: AbortSignal,
): Deno.HttpServer | null {
  return serveHealth(
    hostname,
    port,
    memberHealthHandler({
      status: () => member.status(),
      failure: () => member.kv.fatalError,
      caughtUp: () => member.kv.readBarrier(),
    }),
    signal,
  );
}

/** The parts of a member's RaftKv that health reads. */
interface MemberKv {
  readonly fatalError: Error | undefined;
  readBarrier(): Promise<void>;
}
