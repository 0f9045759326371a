// A small entry for the e2e tests: runs the network agent against etcd endpoints, the way
// cmd/agent.ts does with --etcd-endpoints. Flags mirror twill's names.
import { parseArgs } from "node:util";
import { runNetworkAgent, withDefaults } from "../../lib/agent/run.ts";
import { EtcdClient } from "../../lib/store/client.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "etcd-endpoints": { type: "string" },
    iface: { type: "string", multiple: true },
    "public-ip": { type: "string" },
    "ip-masq": { type: "boolean" },
    "subnet-file": { type: "string" },
    "data-dir": { type: "string" },
    "healthz-ip": { type: "string" },
    "healthz-port": { type: "string" },
    "subnet-lease-ttl": { type: "string" },
    "subnet-lease-renew-margin": { type: "string" },
    "reconcile-ms": { type: "string" },
    name: { type: "string" },
  },
});

const ac = new AbortController();
Deno.addSignalListener("SIGTERM", () => ac.abort());
Deno.addSignalListener("SIGINT", () => ac.abort());
try {
  await runNetworkAgent(
    withDefaults({
      iface: values.iface ?? [],
      publicIp: values["public-ip"] ?? "",
      ipMasq: values["ip-masq"] ?? false,
      subnetFile: values["subnet-file"],
      dataDir: values["data-dir"],
      healthzIp: values["healthz-ip"],
      healthzPort: values["healthz-port"] ? Number(values["healthz-port"]) : undefined,
      subnetLeaseTtlSeconds: values["subnet-lease-ttl"]
        ? Number(values["subnet-lease-ttl"])
        : undefined,
      subnetLeaseRenewMarginMinutes: values["subnet-lease-renew-margin"]
        ? Number(values["subnet-lease-renew-margin"])
        : undefined,
      reconcileIntervalMs: values["reconcile-ms"] ? Number(values["reconcile-ms"]) : undefined,
      nodeName: values.name ?? "",
    }),
    new EtcdClient({ endpoints: (values["etcd-endpoints"] ?? "").split(",").filter((x) => x) }),
    ac.signal,
  );
  Deno.exit(0);
} catch (e) {
  console.error(`twill agent: ${(e as Error).message}`);
  Deno.exit(1);
}
