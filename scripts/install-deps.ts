// The Debian packages whose tools the tests and the demo spawn: the one list, and the installer
// that `deno task test` and `deno task demo` run first.
//
//   deno run -A scripts/install-deps.ts     install what is missing (root), or say what is
//
// Quick when everything is present: one dpkg-query, no apt-get. Not root: one line naming what is
// missing, exit 0; the tests that need a missing tool then fail naming its package
// (tests/support/tools.ts).

export interface DebianPackage {
  name: string;
  /** How a test tells the package is there: commands looked up on PATH, or absolute paths. */
  tools: readonly string[];
  /** `deno task demo` needs it too. */
  demo?: true;
}

export const PACKAGES: readonly DebianPackage[] = [
  { name: "iproute2", tools: ["ip", "bridge"], demo: true },
  { name: "nftables", tools: ["nft"], demo: true },
  { name: "iputils-ping", tools: ["ping"], demo: true },
  { name: "procps", tools: ["sysctl", "ps"] },
  { name: "curl", tools: ["curl"] },
  { name: "iperf3", tools: ["iperf3"] },
  { name: "etcd-server", tools: ["etcd"] },
  { name: "etcd-client", tools: ["etcdctl"] },
  {
    name: "containernetworking-plugins",
    tools: ["/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/portmap"],
  },
  { name: "podman", tools: ["podman"] },
  { name: "runc", tools: ["runc"] },
  { name: "busybox-static", tools: ["/bin/busybox"] },
  { name: "tcpdump", tools: ["tcpdump"] },
  { name: "wireguard-go", tools: ["wireguard-go"] },
  { name: "wireguard-tools", tools: ["wg"] },
  { name: "strongswan-charon", tools: ["/usr/lib/ipsec/charon"] },
  { name: "strongswan-swanctl", tools: ["swanctl"] },
  // charon's extra plugins (EAP, kernel-libipsec, ...): files, no command of their own.
  { name: "libcharon-extra-plugins", tools: [] },
  // gcm and openssl for Flannel's default ESP proposal aes128gcm16-sha256-prfsha256-ecp256.
  {
    name: "libstrongswan-standard-plugins",
    tools: ["/usr/lib/ipsec/plugins/libstrongswan-gcm.so"],
  },
  { name: "openssl", tools: ["openssl"] },
];

export const DEMO_PACKAGES: readonly string[] = PACKAGES.filter((p) => p.demo).map((p) => p.name);
export const ALL_PACKAGES: readonly string[] = PACKAGES.map((p) => p.name);

/** The packages of `wanted` that dpkg-query's `${Package} ${Status}` lines do not show installed. */
export function notInstalled(dpkgLines: string, wanted: readonly string[]): string[] {
  const installed = new Set<string>();
  for (const line of dpkgLines.split("\n")) {
    const [name, ...status] = line.trim().split(/\s+/);
    if (status.join(" ") === "install ok installed") installed.add(name);
  }
  return wanted.filter((p) => !installed.has(p));
}

export class InstallError extends Error {}

interface Ran {
  code: number;
  output: string;
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const o = await new Deno.Command(cmd, {
    args,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const dec = new TextDecoder();
  return { code: o.code, output: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

function lastLine(text: string): string {
  return text.trim().split("\n").pop() ?? "";
}

/** The packages of `wanted` not installed, from one dpkg-query; null when there is no dpkg. */
export async function missingPackages(wanted: readonly string[]): Promise<string[] | null> {
  let r: Ran;
  try {
    // Unknown names make dpkg-query exit 1 and print nothing for them, which reads as missing.
    r = await run("dpkg-query", ["-W", "-f=${Package} ${Status}\\n", ...wanted]);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return notInstalled(r.output, wanted);
}

/** One line for a machine where the packages cannot be installed by us: what is missing, and why. */
export function cannotInstallLine(missing: readonly string[], why: "not-root" | "no-dpkg"): string {
  const list = missing.join(" ");
  return why === "not-root"
    ? `missing Debian packages ${list}; run as root to install them ` +
      `(apt-get install ${list}); tests needing them will fail naming the package`
    : `no dpkg-query here (not Debian?); install the equivalents of ${list} yourself`;
}

async function aptInstall(missing: readonly string[]): Promise<void> {
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const upd = await run("apt-get", ["update", "-qq"], env);
  if (upd.code !== 0) throw new InstallError(`apt-get update failed: ${lastLine(upd.output)}`);
  const inst = await run(
    "apt-get",
    ["install", "-y", "-qq", "--no-install-recommends", ...missing],
    env,
  );
  if (inst.code !== 0) {
    throw new InstallError(
      `apt-get install ${missing.join(" ")} failed: ${lastLine(inst.output)}`,
    );
  }
  const still = await missingPackages(missing);
  if (still?.length) {
    throw new InstallError(`still not installed after apt-get: ${still.join(" ")}`);
  }
}

/**
 * Installs what of `wanted` is missing when root. Returns one line saying what happened; throws
 * InstallError only when an install was attempted and failed.
 */
export async function ensurePackages(
  wanted: readonly string[] = ALL_PACKAGES,
  isRoot: boolean = Deno.uid() === 0,
): Promise<string> {
  const missing = await missingPackages(wanted);
  if (missing === null) return cannotInstallLine(wanted, "no-dpkg");
  if (missing.length === 0) return `all ${wanted.length} packages present`;
  if (!isRoot) return cannotInstallLine(missing, "not-root");
  await aptInstall(missing);
  return `installed ${missing.join(" ")}`;
}

if (import.meta.main) {
  try {
    console.log(`install-deps: ${await ensurePackages()}`);
  } catch (e) {
    if (!(e instanceof InstallError)) throw e;
    console.error(`install-deps: ${e.message}`);
    Deno.exit(1);
  }
}
