// `twill ctl`: inspect and administer a running cluster through any member's store API.
import { parseArgs } from "node:util";
import { join } from "node:path";

const USAGE = `usage: twill ctl [--server HOST:PORT] [--token T] [--json] <command>

commands:
  status           members (address, role, term, applied index, last contact) and this node's readiness
  members          the member table
  leases           subnet leases (subnet, node, public IP, expires in)
  config get       the network config
  config set F     write the network config from a Flannel net-conf.json file
  get K | put K V | del K | watch PREFIX
  check [F]        this node vs the store and subnet.env F: one line per problem with its fix

flags:
  --server HOST:PORT   a member's store API (default 127.0.0.1:8473, or TWILL_SERVER)
  --token T            the cluster token (default TWILL_TOKEN, else <data-dir>/token)
  --data-dir D         where to find the token (default /var/lib/twill)
  --prefix P           the network's key prefix (default /coreos.com/network)
  --healthz HOST:PORT  this node's health server, for readiness (default <server host>:9099)
  --json               machine-readable output`;

export async function runCtl(args: string[], env: Record<string, string>): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: "string" },
        token: { type: "string" },
        "data-dir": { type: "string" },
        prefix: { type: "string" },
        healthz: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    console.error(`twill ctl: ${(e as Error).message.split("\n")[0]}; run 'twill ctl --help'`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  const server = v.server ?? env.TWILL_SERVER ?? "127.0.0.1:8473";
  let token: string | undefined = v.token ?? env.TWILL_TOKEN;
  if (token === undefined) {
    try {
      token = (await Deno.readTextFile(join(v["data-dir"] ?? "/var/lib/twill", "token"))).trim();
    } catch {
      token = undefined;
    }
  }
  const host = server.replace(/^https?:\/\//, "").replace(/:\d+$/, "");
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const { runCommand, CTL_COMMANDS } = await import("../lib/ctl/commands.ts");
  const { CtlError } = await import("../lib/ctl/cluster_api.ts");
  try {
    if (parsed.positionals.length === 0) {
      console.error(`twill ctl: a command is needed: ${CTL_COMMANDS}; run 'twill ctl --help'`);
      return 2;
    }
    return await runCommand({
      server,
      token,
      json: v.json ?? false,
      prefix: v.prefix ?? env.FLANNELD_ETCD_PREFIX ?? "/coreos.com/network",
      healthz: v.healthz ?? `${host}:9099`,
      out: (l) => console.log(l),
      err: (l) => console.error(l),
      signal: abort.signal,
    }, parsed.positionals);
  } catch (e) {
    if (e instanceof CtlError) {
      console.error(`twill ctl: ${e.message}`);
      return 1;
    }
    console.error(`twill ctl: ${(e as Error).message ?? e}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}
