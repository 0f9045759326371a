// The extension backend (Flannel's extension): user commands instead of a data plane.
// PreStartupCommand runs before the lease is taken and its stdout (trimmed) becomes BackendData, a
// JSON string; PostStartupCommand runs once the lease is held, with NETWORK, SUBNET, IPV6SUBNET,
// PUBLIC_IP and PUBLIC_IPV6; SubnetAddCommand / SubnetRemoveCommand run per extension peer lease
// with SUBNET and PUBLIC_IP, the peer's BackendData string plus a newline on stdin. As Flannel does,
// a command line is split on white space (no shell: no quoting, pipes or redirections) and
// $VAR / ${VAR} in it are expanded from the agent's environment plus those variables. A failing
// command is logged with its stderr; a failed per-subnet command is retried on the next reconcile.
import { formatCIDR } from "../net/cidr.ts";
import type { Logger } from "../log.ts";
import { type BackendConfig, type BackendField, NetConfigError } from "../subnet/config.ts";
import { type Lease, type LeaseAttrs, subnetKeyName } from "../subnet/lease.ts";
import { type PeerEvent, splitPeerEvents } from "../subnet/watcher.ts";
import type { Backend, BackendContext, BackendType, ReconcileResult } from "./backend.ts";

const TYPE = "extension";
/** A command running longer is killed and counts as failed (a reconcile must not hang). */
export const COMMAND_TIMEOUT_MS = 60_000;
/** Output kept per stream; anything beyond is dropped. */
export const MAX_OUTPUT_BYTES = 64 * 1024;

export interface ExtensionConfig extends BackendConfig {
  type: typeof TYPE;
  preStartupCommand: string;
  postStartupCommand: string;
  subnetAddCommand: string;
  subnetRemoveCommand: string;
}

function asCommand(v: unknown, name: string): string {
  if (v === undefined || v === null) return "";
  if (typeof v !== "string") throw new NetConfigError(`net-conf: ${name} must be a string`);
  return v.trim();
}

export function parseExtensionConfig(field: BackendField): ExtensionConfig {
  return {
    type: TYPE,
    preStartupCommand: asCommand(field("PreStartupCommand"), "Backend.PreStartupCommand"),
    postStartupCommand: asCommand(field("PostStartupCommand"), "Backend.PostStartupCommand"),
    subnetAddCommand: asCommand(field("SubnetAddCommand"), "Backend.SubnetAddCommand"),
    subnetRemoveCommand: asCommand(field("SubnetRemoveCommand"), "Backend.SubnetRemoveCommand"),
  };
}

/** Pure: $NAME and ${NAME} replaced from `env` (unknown names become ""), as Go's os.Expand. */
export function expandVars(arg: string, env: Record<string, string>): string {
  return arg.replace(/\$\{([^}]*)\}|\$([A-Za-z0-9_]+)/g, (_m, a, b) => env[a ?? b] ?? "");
}

/** Pure: a command line → argv: split on white space, then each word expanded. */
export function commandArgv(line: string, env: Record<string, string>): string[] {
  return line.split(/\s+/).filter((w) => w).map((w) => expandVars(w, env));
}

/** Pure: the variables a per-subnet command gets for a lease. */
export function subnetEnv(l: Lease): Record<string, string> {
  return { SUBNET: l.subnet ? formatCIDR(l.subnet) : "", PUBLIC_IP: l.attrs.publicIP };
}

/** Pure: the stdin of a per-subnet command: the lease's BackendData string and a newline. */
export function subnetStdin(l: Lease): string {
  const d = l.attrs.backendData;
  return (typeof d === "string" ? d : "") + "\n";
}

export interface CommandResult {
  ok: boolean;
  code: number;
  stdout: string;
  stderr: string;
}

async function readBounded(s: ReadableStream<Uint8Array>): Promise<string> {
  const dec = new TextDecoder();
  let text = "", total = 0;
  for await (const c of s) {
    if (total < MAX_OUTPUT_BYTES) text += dec.decode(c.subarray(0, MAX_OUTPUT_BYTES - total));
    total += c.length;
  }
  return text.trim();
}

/** Runs a command line without a shell: env added to the agent's, stdin written, then closed. */
export async function runCommand(
  line: string,
  vars: Record<string, string>,
  stdin: string,
): Promise<CommandResult> {
  const env = { ...Deno.env.toObject(), ...vars };
  const [program, ...args] = commandArgv(line, env);
  if (!program) return { ok: false, code: -1, stdout: "", stderr: "empty command" };
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args,
      env: vars,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    return { ok: false, code: -1, stdout: "", stderr: (e as Error).message };
  }
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, COMMAND_TIMEOUT_MS);
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(stdin)).catch(() => {});
  await w.close().catch(() => {});
  const [stdout, stderr, status] = await Promise.all([
    readBounded(child.stdout),
    readBounded(child.stderr),
    child.status,
  ]);
  clearTimeout(timer);
  return { ok: status.success, code: status.code, stdout, stderr };
}

export const EXTENSION: BackendType<ExtensionConfig> = {
  type: TYPE,
  parseConfig: parseExtensionConfig,
  async init(cfg: ExtensionConfig, ctx: BackendContext): Promise<Backend> {
    let data: string | undefined;
    if (cfg.preStartupCommand) {
      const r = await runCommand(cfg.preStartupCommand, {}, "\n");
      if (!r.ok) {
        throw new Error(
          `extension PreStartupCommand failed (exit ${r.code}): ${r.stderr || "(no stderr)"}`,
        );
      }
      ctx.log("info", "extension_command_ran", { command: "PreStartupCommand" });
      data = r.stdout;
    }
    return new ExtensionBackend(cfg, ctx, data);
  },
};

export class ExtensionBackend implements Backend {
  readonly type = TYPE;
  readonly mtu: number;
  private own: Lease | null = null;
  private postStartupDone = false;
  /** Leases whose add command succeeded, by subnet key. */
  private added = new Map<string, Lease>();
  /** Leases gone whose remove command failed: retried on the next reconcile. */
  private removing = new Map<string, Lease>();
  private ignored = new Set<string>();
  private log: Logger;

  constructor(private cfg: ExtensionConfig, private ctx: BackendContext, private data?: string) {
    this.mtu = ctx.iface.mtu;
    this.log = ctx.log;
  }

  logFields(): Record<string, unknown> {
    return { backend_data: this.data !== undefined };
  }

  leaseAttrs(): LeaseAttrs {
    return {
      publicIP: this.ctx.publicIP,
      publicIPv6: this.ctx.network6 ? this.ctx.iface.address6 : null,
      backendType: TYPE,
      ...(this.data !== undefined ? { backendData: this.data } : {}),
    };
  }

  setOwnLease(lease: Lease): void {
    this.own = lease;
  }

  batchesSpawn(): boolean {
    return true;
  }

  private async run(which: string, line: string, vars: Record<string, string>, stdin: string) {
    const r = await runCommand(line, vars, stdin);
    const fields = { command: which, subnet: vars.SUBNET, exit: r.code };
    if (r.ok) this.log("info", "extension_command_ran", { ...fields, output: r.stdout });
    else this.log("warn", "extension_command_failed", { ...fields, stderr: r.stderr });
    return r.ok ? "" : `${which} for ${vars.SUBNET}: exit ${r.code}: ${r.stderr}`;
  }

  private async postStartup(): Promise<string> {
    if (this.postStartupDone || !this.own) return "";
    if (!this.cfg.postStartupCommand) {
      this.postStartupDone = true;
      return "";
    }
    const own = this.own;
    const err = await this.run("PostStartupCommand", this.cfg.postStartupCommand, {
      NETWORK: formatCIDR(this.ctx.network),
      SUBNET: own.subnet ? formatCIDR(own.subnet) : "",
      IPV6SUBNET: own.ipv6Subnet ? formatCIDR(own.ipv6Subnet) : "",
      PUBLIC_IP: own.attrs.publicIP,
      PUBLIC_IPV6: own.attrs.publicIPv6 ?? "",
    }, "\n");
    this.postStartupDone = err === "";
    return err;
  }

  /** Extension peers only; other backends' leases are logged once and left alone, as Flannel. */
  private ours(leases: Lease[]): Lease[] {
    return leases.filter((l) => {
      if (l.attrs.backendType === TYPE) return true;
      const k = subnetKeyName(l.subnet, l.ipv6Subnet);
      if (!this.ignored.has(k)) {
        this.ignored.add(k);
        this.log("warn", "extension_lease_ignored", { subnet: k, type: l.attrs.backendType });
      }
      return false;
    });
  }

  private async add(l: Lease): Promise<string> {
    const k = subnetKeyName(l.subnet, l.ipv6Subnet);
    this.removing.delete(k);
    if (!this.cfg.subnetAddCommand) return (this.added.set(k, l), "");
    const err = await this.run(
      "SubnetAddCommand",
      this.cfg.subnetAddCommand,
      subnetEnv(l),
      subnetStdin(l),
    );
    if (!err) this.added.set(k, l);
    return err;
  }

  private async remove(l: Lease): Promise<string> {
    const k = subnetKeyName(l.subnet, l.ipv6Subnet);
    this.added.delete(k);
    if (!this.cfg.subnetRemoveCommand) return (this.removing.delete(k), "");
    const err = await this.run(
      "SubnetRemoveCommand",
      this.cfg.subnetRemoveCommand,
      subnetEnv(l),
      subnetStdin(l),
    );
    if (err) this.removing.set(k, l);
    else this.removing.delete(k);
    return err;
  }

  async applyEvents(events: PeerEvent[]): Promise<string> {
    // a replaced lease (same subnet, new attributes) is added again, as Flannel on EventAdded
    const { add, remove } = splitPeerEvents(events);
    const errors: string[] = [];
    for (const l of this.ours(remove)) errors.push(await this.remove(l));
    for (const l of this.ours(add)) errors.push(await this.add(l));
    return errors.filter((e) => e).join("; ");
  }

  async reconcile(peers: Lease[]): Promise<ReconcileResult> {
    const errors = [await this.postStartup()];
    const want = new Map(this.ours(peers).map((l) => [subnetKeyName(l.subnet, l.ipv6Subnet), l]));
    let added = 0, removed = 0;
    for (const [k, l] of [...this.removing, ...this.added]) {
      if (want.has(k)) continue;
      const e = await this.remove(l);
      errors.push(e);
      if (!e) removed++;
    }
    for (const [k, l] of want) {
      const had = this.added.get(k);
      if (had && JSON.stringify(had.attrs) === JSON.stringify(l.attrs)) continue;
      const e = await this.add(l);
      errors.push(e);
      if (!e) added++;
    }
    return {
      deviceChanged: false,
      deviceRecreated: false,
      added,
      removed,
      peersProgrammed: this.added.size,
      errors: errors.filter((e) => e).join("; "),
    };
  }
}
