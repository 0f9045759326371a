// GET /healthz, /readyz, /metrics on --healthz-ip:--healthz-port. A plain handler (testable
// without a socket) and a Deno.serve wrapper.
import type { StoreStatus } from "./options.ts";
import type { AgentState } from "./state.ts";

export interface HealthConfig {
  now: () => number;
  storeThresholdMs: number;
  reconcileStuckMs: number;
  storeStatus?: () => StoreStatus | Promise<StoreStatus>;
}

export function healthHandler(state: AgentState, cfg: HealthConfig) {
  return async (req: Request): Promise<Response> => {
    const path = new URL(req.url).pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    switch (path) {
      case "/healthz": {
        const h = state.healthy(cfg.now(), cfg.storeThresholdMs, cfg.reconcileStuckMs);
        return new Response(h.ok ? "ok\n" : `${h.reason}\n`, { status: h.ok ? 200 : 503 });
      }
      case "/readyz": {
        const r = state.ready();
        return new Response(r.ok ? "ok\n" : `${r.reason}\n`, { status: r.ok ? 200 : 503 });
      }
      case "/metrics": {
        let s: StoreStatus | null = null;
        try {
          s = cfg.storeStatus ? await cfg.storeStatus() : null;
        } catch {
          s = null;
        }
        return new Response(state.metrics(s), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        });
      }
      default:
        return new Response("not found: try /healthz, /readyz or /metrics\n", { status: 404 });
    }
  };
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
