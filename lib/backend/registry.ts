// The backend types this binary knows, as Flannel's backend.Register: Backend.Type → module.
// Adding a backend is one module implementing BackendType plus one line here.
import type { BackendConfig, BackendConfigParser } from "../subnet/config.ts";
import type {
  Backend,
  BackendContext,
  BackendType,
  ExpectContext,
  ExpectedState,
} from "./backend.ts";
import { ALLOC } from "./alloc.ts";
import { EXTENSION } from "./extension.ts";
import { HOST_GW } from "./hostgw.ts";
import { IPIP } from "./ipip.ts";
import { IPSEC } from "./ipsec.ts";
import { VXLAN } from "./vxlan.ts";
import { WIREGUARD } from "./wireguard.ts";

// deno-lint-ignore no-explicit-any
const BACKENDS: ReadonlyMap<string, BackendType<any>> = new Map<string, BackendType<any>>([
  [VXLAN.type, VXLAN],
  [HOST_GW.type, HOST_GW],
  [WIREGUARD.type, WIREGUARD],
  [IPSEC.type, IPSEC],
  [IPIP.type, IPIP],
  [ALLOC.type, ALLOC],
  [EXTENSION.type, EXTENSION],
]);

/** For lib/subnet/config.ts: the parser of each registered type's Backend fields. */
export const backendConfigParser: BackendConfigParser = (type) => {
  const t = BACKENDS.get(type);
  return t && ((field) => t.parseConfig(field));
};

/** Builds and prepares the backend the parsed config names. */
export function initBackend(cfg: BackendConfig, ctx: BackendContext): Promise<Backend> {
  const t = BACKENDS.get(cfg.type);
  if (!t) throw new Error(`unknown backend type: ${cfg.type}`);
  return t.init(cfg, ctx);
}

/** The kernel state the config's backend expects on a node; null when the type contributes none. */
export function expectedState(cfg: BackendConfig, ctx: ExpectContext): ExpectedState | null {
  return BACKENDS.get(cfg.type)?.expected?.(cfg, ctx) ?? null;
}
