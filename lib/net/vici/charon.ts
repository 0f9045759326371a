// strongSwan's charon for the ipsec backend: started detached so it outlives the agent (SAs and
// traffic survive an agent restart), configured from the data dir, and reused when its VICI socket
// answers. Like wireguard-go it runs with /run bound to `<data dir>/run` (lib/net/detached.ts), so
// its pid file (/run/charon.pid inside) is `<data dir>/run/charon.pid` and its VICI socket
// `<data dir>/run/charon.vici`: nodes sharing one machine's /run do not collide.
import { dirname, join } from "node:path";
import { writeTextFileAtomic } from "../../fs_atomic.ts";
import { findExecutable, MissingBinaryError, runDirOf, startDetached } from "../detached.ts";
import { ViciClient } from "./client.ts";

// libstrongswan-standard-plugins brings gcm and openssl, which Flannel's default ESP proposal
// needs; without them charon starts but no CHILD_SA is ever agreed.
export const CHARON_PACKAGES = "install the Debian packages strongswan-charon, " +
  "libcharon-extra-plugins and libstrongswan-standard-plugins";

/** Where Debian and other distributions keep charon (it is not on PATH). */
const CHARON_PLACES = [
  "/usr/lib/ipsec/charon",
  "/usr/libexec/ipsec/charon",
  "/usr/lib/strongswan/charon",
  "/usr/libexec/strongswan/charon",
];

/**
 * `kernel`: ESP in the kernel's XFRM. `libipsec`: ESP in charon itself over a TUN device, for
 * kernels without ESP. strongSwan 5.9.8 (Debian 12) sends libipsec's ESP only inside UDP, so in
 * that mode UDP encapsulation is always on, and libipsec's TUN device carries 1400 bytes.
 */
export type IpsecMode = "kernel" | "libipsec";

/**
 * The largest packet libipsec's TUN device carries. Raising the device's MTU does not help:
 * libipsec reads packets into buffers of this size, and larger ones vanish (tests/net/vici).
 */
export const LIBIPSEC_TUN_MTU = 1400;

/** ESP in tunnel mode costs Flannel's 77 bytes; UDP encapsulation 8 more. */
export const ESP_OVERHEAD = 77;
export const UDP_ENCAP_OVERHEAD = 8;

/**
 * The pod MTU the ipsec backend can announce: underlay − 77 (− 8 with UDP encapsulation, which
 * libipsec mode always uses), and never above what libipsec's TUN device carries.
 */
export function ipsecMtu(mode: IpsecMode, underlayMtu: number, udpEncap: boolean): number {
  const encap = udpEncap || mode === "libipsec";
  const mtu = underlayMtu - ESP_OVERHEAD - (encap ? UDP_ENCAP_OVERHEAD : 0);
  return mode === "libipsec" ? Math.min(mtu, LIBIPSEC_TUN_MTU) : mtu;
}

export interface CharonPaths {
  runDir: string;
  /** The VICI socket as seen from outside charon's mount namespace. */
  viciSocket: string;
  pidFile: string;
  config: string;
  log: string;
}

export function charonPaths(dataDir: string): CharonPaths {
  const runDir = runDirOf(dataDir);
  return {
    runDir,
    viciSocket: join(runDir, "charon.vici"),
    pidFile: join(runDir, "charon.pid"),
    config: join(dataDir, "strongswan.conf"),
    log: join(dataDir, "charon.log"),
  };
}

// Crypto for Flannel's proposals (IKE aes256-sha256-modp4096; ESP aes128gcm16-sha256-prfsha256-
// ecp256 needs gcm and openssl, from libstrongswan-standard-plugins); charon skips any of these
// that are not installed and says so in its log.
const CRYPTO_PLUGINS = "random nonce aes sha1 sha2 hmac gmp mgf1 kdf openssl gcm curve25519";

/** strongswan.conf for a twill node's charon (pure). Paths are as charon sees them. */
export function charonConfig(mode: IpsecMode): string {
  const kernel = mode === "libipsec" ? "kernel-libipsec kernel-netlink" : "kernel-netlink";
  return `# Written by twill: charon for the ipsec backend. Rewritten at every start.
charon {
  # Only these plugins: no stroke, no updown scripts, nothing read from /etc/ipsec.*.
  load_modular = no
  load = ${CRYPTO_PLUGINS} pem pkcs1 pubkey x509 ${kernel} socket-default vici
  # Keep SAs up across agent restarts and rekeys.
  make_before_break = yes
  plugins {
    vici {
      socket = unix:///run/charon.vici
    }
  }
  filelog {
    stderr {
      default = 1
      ike = 1
      time_format = %Y-%m-%dT%H:%M:%S
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
`;
}

/** The charon binary, or MissingBinaryError naming the packages. */
export async function findCharon(binary?: string): Promise<string> {
  for (const c of binary ? [binary] : ["charon", ...CHARON_PLACES]) {
    const found = await findExecutable(c);
    if (found) return found;
  }
  throw new MissingBinaryError(binary ?? "charon", CHARON_PACKAGES);
}

/** libipsec mode needs the kernel-libipsec plugin beside charon. */
async function assertLibipsecPlugin(charon: string): Promise<void> {
  const plugin = join(dirname(charon), "plugins", "libstrongswan-kernel-libipsec.so");
  try {
    await Deno.stat(plugin);
  } catch {
    throw new Error(
      `charon's kernel-libipsec plugin is missing (${plugin}): install the Debian package ` +
        "libcharon-extra-plugins",
    );
  }
}

/**
 * Whether the kernel does ESP: add an ESP state (AES-CBC/HMAC-SHA256, which every ESP kernel has)
 * in a network namespace that exists only for this probe and vanishes with it, so nothing of the
 * node's is touched. A kernel without ESP answers "Requested type not found"; one without XFRM at
 * all fails too. Files such as /proc/net/xfrm_stat say only that XFRM exists, not that ESP does,
 * and module lists miss built-in code, hence asking the kernel directly.
 */
export async function kernelHasEsp(): Promise<{ esp: boolean; detail: string }> {
  const key = "0x" + "01".repeat(16);
  const args = [
    "--net",
    "--",
    "ip",
    "xfrm",
    "state",
    "add",
    ...["src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "spi", "0x100", "mode", "tunnel"],
    ...["enc", "cbc(aes)", key, "auth-trunc", "hmac(sha256)", key + key.slice(2), "128"],
  ];
  const out = await new Deno.Command("unshare", { args, stdout: "null", stderr: "piped" }).output();
  const detail = new TextDecoder().decode(out.stderr).trim().replace(/^Error: /, "");
  return { esp: out.success, detail: out.success ? "ESP state accepted" : detail };
}

export interface CharonOptions {
  dataDir: string;
  mode: IpsecMode;
  /** The charon program (default: found on PATH or in the distributions' ipsec directories). */
  binary?: string;
  /** Start it in this network namespace (a path) instead of the agent's. */
  netns?: string;
  /** How long to wait for VICI to answer (default 15 s). */
  readyTimeoutMs?: number;
}

export interface RunningCharon {
  client: ViciClient;
  paths: CharonPaths;
  /** True when a charon from an earlier agent run was answering already. */
  reused: boolean;
  pid?: number;
}

async function tryConnect(socket: string): Promise<ViciClient | null> {
  try {
    const c = await ViciClient.connect(socket, 5000);
    try {
      await c.version();
      return c;
    } catch {
      c.close();
      return null;
    }
  } catch {
    return null;
  }
}

/** The node's charon, reused when its VICI socket answers, else started. */
export async function ensureCharon(opts: CharonOptions): Promise<RunningCharon> {
  const paths = charonPaths(opts.dataDir);
  const running = await tryConnect(paths.viciSocket);
  if (running) return { client: running, paths, reused: true };

  const charon = await findCharon(opts.binary);
  if (opts.mode === "libipsec") await assertLibipsecPlugin(charon);
  await writeTextFileAtomic(paths.config, charonConfig(opts.mode), 0o644);
  // Leftovers of a charon that died would make the new one refuse to start or to listen.
  for (const stale of [paths.viciSocket, paths.pidFile]) await Deno.remove(stale).catch(() => {});
  const proc = await startDetached([charon], paths.runDir, paths.log, {
    env: { STRONGSWAN_CONF: paths.config },
    netns: opts.netns,
  });
  let exitCode: number | undefined;
  proc.exited.then((c) => exitCode = c);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  while (Date.now() < deadline) {
    const client = await tryConnect(paths.viciSocket);
    if (client) return { client, paths, reused: false, pid: proc.pid };
    if (exitCode !== undefined) {
      throw new Error(`charon exited with code ${exitCode} at start; see ${paths.log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`charon did not answer on ${paths.viciSocket} in time; see ${paths.log}`);
}

/** The pid in charon's pid file, or null when there is none. */
export async function charonPid(dataDir: string): Promise<number | null> {
  try {
    const pid = Number((await Deno.readTextFile(charonPaths(dataDir).pidFile)).trim());
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/** Stops the node's charon (SIGTERM: it removes its SAs, policies and TUN device). */
export async function stopCharon(dataDir: string): Promise<boolean> {
  const pid = await charonPid(dataDir);
  if (pid === null) return false;
  try {
    Deno.kill(pid, "SIGTERM");
    return true;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops the charon with this pid and waits until it is gone: SIGTERM (it removes its SAs, routes
 * and TUN device), then SIGKILL after `graceMs`. For a start-up that fails after charon started,
 * so nothing half-configured stays behind.
 */
export async function stopCharonProcess(pid: number, graceMs = 5000): Promise<void> {
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && alive(pid)) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) Deno.kill(pid, "SIGKILL");
}
