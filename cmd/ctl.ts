// `twill ctl`: inspect and administer a running cluster through any member's store API.
import { parseArgs } from "node:util";

const USAGE =
  `usage: twill ctl [--server HOST:PORT] [--data-dir D | --token CRED] [--json] <command>

commands:
  status           members (address, role, term, applied index, last contact) and this node's readiness
  members          the member table
  leases           subnet leases (subnet, node, public IP, expires in)
  config get       the network config
  config set F     write the network config from a Flannel net-conf.json file
  get K | put K V | del K | watch PREFIX
  check [F]        this node vs the store and subnet.env F: one line per problem with its fix
  join-token       the join token for new nodes (admin credential)
  rotate-join-token  a new join secret; prints the new join token (the old one is refused)
  remove-node NAME revoke a node's credential, delete its leases, drop it from the store

flags:
  --server HOST:PORT   a member's store API (default TWILL_SERVER, else a member recorded in D)
  --token CRED         a credential (default TWILL_TOKEN, else D/admin-credential, else D/credential)
  --data-dir D         a node's data dir: its pki/ca.crt verifies the server (default /var/lib/twill)

exit codes: 0 done, 1 failed or not found, 2 usage, 3 refused by the cluster (401/403)
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
  const dataDir = v["data-dir"] ?? "/var/lib/twill";
  const { ctlAccess } = await import("../lib/ctl/access.ts");
  let access;
  try {
    access = await ctlAccess({
      dataDir,
      server: v.server ?? env.TWILL_SERVER,
      token: v.token ?? env.TWILL_TOKEN,
    });
  } catch (e) {
    console.error(`twill ctl: ${(e as Error).message}`);
    return 2;
  }
  const { server, credential: token, caPem } = access;
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
      caPem,
      json: v.json ?? false,
      prefix: v.prefix ?? env.FLANNELD_ETCD_PREFIX ?? "/coreos.com/network",
      healthz: v.healthz ?? `${host}:9099`,
      dataDir,
      out: (l) => console.log(l),
      err: (l) => console.error(l),
      signal: abort.signal,
    }, parsed.positionals);
  } catch (e) {
    if (e instanceof CtlError) {
      // A refusal prints etcd's text as it came, so scripts can match it.
      console.error(e.exitCode === 3 ? e.message : `twill ctl: ${e.message}`);
      return e.exitCode;
    }
    console.error(`twill ctl: ${(e as Error).message ?? e}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
}
