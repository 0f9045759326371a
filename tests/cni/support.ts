// Shared helpers for the CNI tests: namespaces named with the test's own prefix, removed by exact
// name; the plugin run as a separate process inside a "node" namespace, as a runtime would.
import assert from "node:assert/strict";
import { requireTools } from "../support/tools.ts";
import { inNetns, run, runOk, type RunResult } from "../../scripts/lib/run.ts";

export const DENO = Deno.execPath();
export const MAIN = new URL("../../main.ts", import.meta.url).pathname;
export const REF_PLUGINS = "/usr/lib/cni";

/**
 * This run's namespace name for `role`: twc-<pid>-<role>. The pid keeps two runs of the suite
 * (two engineers, or CI next to a developer) from tearing down each other's namespaces.
 */
export const RUN_ID = Deno.pid.toString(36);
export function ns(role: string): string {
  return `twc-${RUN_ID}-${role}`;
}

export type Out = RunResult;

export function sh(
  cmd: string[],
  stdin?: string,
  env?: Record<string, string>,
): Promise<Out> {
  return run(cmd[0], cmd.slice(1), { stdin, env });
}

export function must(cmd: string[]): Promise<string> {
  return runOk(cmd[0], cmd.slice(1));
}

export async function netnsAdd(name: string): Promise<void> {
  assert.ok(name.startsWith("twc-"), `namespace ${name} must start with twc-`);
  requireTools(["ip", "nft", "ping"]); // what the CNI kernel tests run in their namespaces
  await sh(["ip", "netns", "del", name]); // a leftover of an earlier, killed run
  await must(["ip", "netns", "add", name]);
}

export async function netnsDel(...names: string[]): Promise<void> {
  for (const n of names) {
    if (!n.startsWith("twc-")) continue;
    await sh(["ip", "netns", "del", n]);
  }
}

/** `ip -j -d <args>` inside namespace `ns`, parsed. */
// deno-lint-ignore no-explicit-any
export async function ipj(ns: string, ...args: string[]): Promise<any[]> {
  const out = await must(["ip", "-n", ns, "-j", "-d", ...args]);
  return out.trim() ? JSON.parse(out) : [];
}

export function subnetEnvText(o: {
  network?: string;
  subnet?: string;
  ipv6Network?: string;
  ipv6Subnet?: string;
  mtu?: number;
  ipMasq?: boolean;
} = {}): string {
  const lines = [
    `FLANNEL_NETWORK=${o.network ?? "10.244.0.0/16"}`,
    `FLANNEL_SUBNET=${o.subnet ?? "10.244.1.1/24"}`,
  ];
  if (o.ipv6Network) lines.push(`FLANNEL_IPV6_NETWORK=${o.ipv6Network}`);
  if (o.ipv6Subnet) lines.push(`FLANNEL_IPV6_SUBNET=${o.ipv6Subnet}`);
  lines.push(`FLANNEL_MTU=${o.mtu ?? 1450}`, `FLANNEL_IPMASQ=${o.ipMasq ?? true}`);
  return lines.join("\n") + "\n";
}

/** A kube-flannel style config whose state lives under `dir`. */
export function flannelConf(
  dir: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    cniVersion: "0.3.1",
    name: "cbr0",
    type: "flannel",
    subnetFile: `${dir}/subnet.env`,
    dataDir: `${dir}/flannel`,
    ipam: { dataDir: `${dir}/ipam` },
    delegate: { hairpinMode: true, isDefaultGateway: true },
    ...extra,
  };
}

export interface PluginRun extends Out {
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** Runs twill as the CNI plugin inside namespace `node`. */
export async function runTwill(
  node: string,
  command: string,
  conf: unknown,
  env: Record<string, string> = {},
): Promise<PluginRun> {
  return await runPlugin(node, [DENO, "run", "-A", "--quiet", MAIN], command, conf, env);
}

export async function runPlugin(
  node: string,
  argv: string[],
  command: string,
  conf: unknown,
  env: Record<string, string> = {},
): Promise<PluginRun> {
  const o = await sh(
    inNetns(node, argv),
    typeof conf === "string" ? conf : JSON.stringify(conf),
    { CNI_COMMAND: command, CNI_PATH: REF_PLUGINS, ...env },
  );
  let json;
  try {
    json = o.stdout.trim() ? JSON.parse(o.stdout) : undefined;
  } catch {
    json = undefined;
  }
  return { ...o, json };
}

export function podEnv(id: string, pod: string, ifname = "eth0"): Record<string, string> {
  return { CNI_CONTAINERID: id, CNI_NETNS: `/var/run/netns/${pod}`, CNI_IFNAME: ifname };
}

/** `twill install-cni` from source into the given directories. */
export function installCni(binDir: string, confDir: string): Promise<Out> {
  return sh([DENO, "run", "-A", MAIN, "install-cni", "--bin-dir", binDir, "--conf-dir", confDir]);
}

export async function listDir(path: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(path)) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}
