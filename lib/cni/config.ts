// The plugin's inputs: CNI_* environment variables and the network configuration on stdin
// (Flannel's format). Parsing is pure and throws CniError with the spec's code for each problem.
import { type CIDR, parseCIDR, tryParseIP } from "../net/cidr.ts";
import { CniError, ERR } from "./errors.ts";
import { allows, isSupported, LATEST, SUPPORTED_VERSIONS } from "./versions.ts";

export const COMMANDS = ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"] as const;
export type Command = typeof COMMANDS[number];

export interface Env {
  command: Command;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
}

export interface RouteConf {
  dst: CIDR;
  gw?: string;
}

/** The Flannel network config with its defaults applied, as twill uses it. */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  subnetFile: string;
  dataDir: string;
  /** host-local's state root (ipam.dataDir); reservations live in <ipamDataDir>/<name>. */
  ipamDataDir: string;
  subnetFileWaitMs: number;
  bridge: string;
  /** Delegate MTU when set explicitly; otherwise FLANNEL_MTU. */
  mtu?: number;
  hairpinMode: boolean;
  isGateway: boolean;
  isDefaultGateway: boolean;
  /** Delegate ipMasq when set explicitly; otherwise !FLANNEL_IPMASQ. */
  ipMasq?: boolean;
  /** ipam.routes from the config (Flannel adds the cluster networks after these). */
  extraRoutes: RouteConf[];
  dns: Record<string, unknown>;
  runtimeConfig: Record<string, unknown>;
  /** The raw delegate object, for the scratch file Flannel's own DEL could read. */
  delegate: Record<string, unknown>;
  prevResult?: Record<string, unknown>;
  validAttachments?: { containerID: string; ifname: string }[];
}

export const DEFAULTS = {
  subnetFile: "/run/flannel/subnet.env",
  dataDir: "/var/lib/cni/flannel",
  ipamDataDir: "/var/lib/cni/networks",
  subnetFileWaitSeconds: 10,
  bridge: "cni0",
};

/** Reads the CNI_* variables the command needs. */
export function parseEnv(env: Record<string, string | undefined>): Env {
  const command = env.CNI_COMMAND ?? "";
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new CniError(
      ERR.invalidEnv,
      `CNI_COMMAND="${command}" is not one of ${COMMANDS.join(", ")}`,
    );
  }
  const out: Env = {
    command: command as Command,
    containerId: env.CNI_CONTAINERID ?? "",
    netns: env.CNI_NETNS ?? "",
    ifname: env.CNI_IFNAME ?? "",
    args: env.CNI_ARGS ?? "",
  };
  const needs: Record<string, string[]> = {
    ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  };
  const missing = (needs[command] ?? []).filter((k) => !env[k]);
  if (missing.length) {
    throw new CniError(
      ERR.invalidEnv,
      `${command} needs ${
        missing.join(", ")
      } in the environment; the container runtime must set them`,
    );
  }
  if (out.containerId && !/^[A-Za-z0-9][A-Za-z0-9_.\-]*$/.test(out.containerId)) {
    throw new CniError(
      ERR.invalidEnv,
      `CNI_CONTAINERID="${out.containerId}" may hold only letters, digits, "_", "." and "-"`,
    );
  }
  if (out.ifname && !validIfname(out.ifname)) {
    throw new CniError(
      ERR.invalidEnv,
      `CNI_IFNAME="${out.ifname}" is not an interface name (1-15 characters, no "/", ":" or spaces)`,
    );
  }
  return out;
}

export function validIfname(s: string): boolean {
  return s.length > 0 && s.length <= 15 && s !== "." && s !== ".." && !/[\s/:]/.test(s);
}

/** The cniVersion of a config, best effort, for shaping an error about that config. */
export function sniffVersion(stdin: string): string {
  try {
    const v = JSON.parse(stdin)?.cniVersion;
    if (typeof v === "string" && isSupported(v)) return v;
  } catch {
    // fall through
  }
  return LATEST;
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new CniError(ERR.invalidConfig, `${what} must be a JSON object`);
  }
  return v as Record<string, unknown>;
}

function optBool(o: Record<string, unknown>, k: string, what: string): boolean | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") {
    throw new CniError(ERR.invalidConfig, `${what}.${k} must be true or false`);
  }
  return v;
}

function optString(o: Record<string, unknown>, k: string, what: string): string | undefined {
  const v = o[k];
  if (v === undefined) return undefined;
  if (typeof v !== "string" || v === "") {
    throw new CniError(ERR.invalidConfig, `${what}.${k} must be a non-empty string`);
  }
  return v;
}

/** Parses the network config; `command` decides which version rules apply. */
export function parseNetConf(stdin: string, command: Command): NetConf {
  const c = obj(parseJson(stdin), "the network configuration");
  const version = parseVersion(c, command);
  const name = parseName(c);
  const delegate = parseDelegate(c);
  const ipam = obj(c.ipam, "ipam");
  const extraRoutes = parseExtraRoutes(ipam);
  const waitSeconds = parseWaitSeconds(c);
  const mtu = parseMtu(delegate);
  const bridge = optString(delegate, "bridge", "delegate") ?? DEFAULTS.bridge;
  if (!validIfname(bridge)) {
    throw new CniError(ERR.invalidConfig, `delegate.bridge "${bridge}" is not an interface name`);
  }
  const validAttachments = parseValidAttachments(c, command);
  return {
    cniVersion: version,
    name,
    type: typeof c.type === "string" ? c.type : "flannel",
    subnetFile: optString(c, "subnetFile", "config") ?? DEFAULTS.subnetFile,
    dataDir: optString(c, "dataDir", "config") ?? DEFAULTS.dataDir,
    ipamDataDir: optString(ipam, "dataDir", "ipam") ?? DEFAULTS.ipamDataDir,
    subnetFileWaitMs: waitSeconds * 1000,
    bridge,
    mtu,
    hairpinMode: optBool(delegate, "hairpinMode", "delegate") ?? false,
    isGateway: optBool(delegate, "isGateway", "delegate") ?? true,
    isDefaultGateway: optBool(delegate, "isDefaultGateway", "delegate") ?? false,
    ipMasq: optBool(delegate, "ipMasq", "delegate"),
    extraRoutes,
    dns: obj(delegate.dns, "delegate.dns"),
    runtimeConfig: obj(c.runtimeConfig, "runtimeConfig"),
    delegate,
    prevResult: c.prevResult === undefined ? undefined : obj(c.prevResult, "prevResult"),
    validAttachments,
  };
}

function parseJson(stdin: string): unknown {
  try {
    return JSON.parse(stdin);
  } catch (e) {
    throw new CniError(
      ERR.decode,
      `the network configuration on stdin is not valid JSON: ${(e as Error).message}`,
    );
  }
}

function parseVersion(c: Record<string, unknown>, command: Command): string {
  const version = c.cniVersion;
  if (typeof version !== "string" || version === "") {
    throw new CniError(ERR.invalidConfig, `the network configuration has no "cniVersion"`);
  }
  if (!isSupported(version)) {
    throw new CniError(
      ERR.incompatibleVersion,
      `cniVersion ${version} is not supported; twill speaks ${SUPPORTED_VERSIONS.join(", ")}`,
    );
  }
  if (!allows(version, command)) {
    throw new CniError(
      ERR.incompatibleVersion,
      `cniVersion ${version} does not allow ${command} (CHECK needs 0.4.0, STATUS and GC 1.1.0)`,
    );
  }
  return version;
}

function parseName(c: Record<string, unknown>): string {
  const name = c.name;
  if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.\-]*$/.test(name)) {
    throw new CniError(
      ERR.invalidConfig,
      `the network configuration needs a "name" of letters, digits, "_", "." and "-"`,
    );
  }
  return name;
}

/** The bridge plugin's config: name and ipam are ours to set, and only a bridge is wired. */
function parseDelegate(c: Record<string, unknown>): Record<string, unknown> {
  const delegate = obj(c.delegate, "delegate");
  if ("name" in delegate) {
    throw new CniError(
      ERR.invalidConfig,
      `"delegate" must not have "name": it is set from the network name`,
    );
  }
  if ("ipam" in delegate) {
    throw new CniError(
      ERR.invalidConfig,
      `"delegate" must not have "ipam": it is built from subnet.env`,
    );
  }
  if (delegate.type !== undefined && delegate.type !== "bridge") {
    throw new CniError(
      ERR.unsupportedField,
      `delegate.type "${delegate.type}" is not supported; twill wires pods with a bridge (omit "type")`,
    );
  }
  return delegate;
}

function parseExtraRoutes(ipam: Record<string, unknown>): RouteConf[] {
  const extraRoutes: RouteConf[] = [];
  if (ipam.routes !== undefined) {
    if (!Array.isArray(ipam.routes)) {
      throw new CniError(ERR.invalidConfig, `ipam.routes must be a list`);
    }
    for (const r of ipam.routes) {
      const ro = obj(r, "an ipam.routes entry");
      let dst: CIDR;
      try {
        dst = parseCIDR(String(ro.dst));
      } catch {
        throw new CniError(ERR.invalidConfig, `ipam.routes: dst "${ro.dst}" is not a CIDR`);
      }
      if (ro.gw !== undefined && (typeof ro.gw !== "string" || !tryParseIP(ro.gw))) {
        throw new CniError(ERR.invalidConfig, `ipam.routes: gw "${ro.gw}" is not an IP address`);
      }
      extraRoutes.push({ dst, gw: ro.gw as string | undefined });
    }
  }
  return extraRoutes;
}

function parseWaitSeconds(c: Record<string, unknown>): number {
  let waitSeconds = DEFAULTS.subnetFileWaitSeconds;
  if (c.subnetFileWaitSeconds !== undefined) {
    const w = c.subnetFileWaitSeconds;
    if (typeof w !== "number" || !(w >= 0) || w > 3600) {
      throw new CniError(
        ERR.invalidConfig,
        `subnetFileWaitSeconds must be a number of seconds (0-3600)`,
      );
    }
    waitSeconds = w;
  }
  return waitSeconds;
}

function parseMtu(delegate: Record<string, unknown>): number | undefined {
  let mtu: number | undefined;
  if (delegate.mtu !== undefined) {
    const m = delegate.mtu;
    if (typeof m !== "number" || !Number.isInteger(m) || m < 68 || m > 65535) {
      throw new CniError(ERR.invalidConfig, `delegate.mtu must be an MTU (68..65535)`);
    }
    mtu = m;
  }
  return mtu;
}

function parseValidAttachments(
  c: Record<string, unknown>,
  command: Command,
): NetConf["validAttachments"] {
  let validAttachments: NetConf["validAttachments"];
  const va = c["cni.dev/valid-attachments"];
  if (va !== undefined) {
    if (!Array.isArray(va)) {
      throw new CniError(ERR.invalidConfig, `cni.dev/valid-attachments must be a list`);
    }
    validAttachments = va.map((a) => {
      const ao = obj(a, "a cni.dev/valid-attachments entry");
      return { containerID: String(ao.containerID ?? ""), ifname: String(ao.ifname ?? "") };
    });
  } else if (command === "GC") {
    throw new CniError(
      ERR.invalidConfig,
      `GC needs "cni.dev/valid-attachments" in the configuration`,
    );
  }
  return validAttachments;
}
