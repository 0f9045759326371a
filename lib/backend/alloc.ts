// The alloc backend (Flannel's alloc): the node takes a subnet lease and nothing else; no device,
// no route, no peer is programmed. Something outside twill routes the subnets. MTU = the
// interface's.
import type { Lease, LeaseAttrs } from "../subnet/lease.ts";
import type { BackendConfig } from "../subnet/config.ts";
import type { PeerEvent } from "../subnet/watcher.ts";
import type { Backend, BackendContext, BackendType, ReconcileResult } from "./backend.ts";

const TYPE = "alloc";

/** alloc has no Backend fields of its own. */
export interface AllocConfig extends BackendConfig {
  type: typeof TYPE;
}

export const ALLOC: BackendType<AllocConfig> = {
  type: TYPE,
  parseConfig: () => ({ type: TYPE }),
  init: (_cfg: AllocConfig, ctx: BackendContext) => Promise.resolve(new AllocBackend(ctx)),
};

export class AllocBackend implements Backend {
  readonly type = TYPE;
  readonly mtu: number;

  constructor(private ctx: BackendContext) {
    this.mtu = ctx.iface.mtu;
  }

  logFields(): Record<string, unknown> {
    return { programs: "nothing" };
  }

  leaseAttrs(): LeaseAttrs {
    return { publicIP: this.ctx.publicIP, publicIPv6: null, backendType: TYPE };
  }

  setOwnLease(_lease: Lease): void {}

  applyEvents(_events: PeerEvent[]): Promise<string> {
    return Promise.resolve("");
  }

  batchesSpawn(): boolean {
    return false;
  }

  reconcile(_peers: Lease[]): Promise<ReconcileResult> {
    return Promise.resolve({
      deviceChanged: false,
      deviceRecreated: false,
      added: 0,
      removed: 0,
      peersProgrammed: 0,
      errors: "",
    });
  }
}
