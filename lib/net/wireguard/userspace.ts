// WireGuard without kernel support: one wireguard-go process per device, started detached so it
// outlives the agent (traffic keeps flowing across an agent restart) and found again by its UAPI
// socket afterwards. Its /run is `<data dir>/run` (see lib/net/detached.ts), so the socket of
// device D is `<data dir>/run/wireguard/D.sock`.
import { join } from "node:path";
import { findExecutable, MissingBinaryError, runDirOf, startDetached } from "../detached.ts";
import { UapiClient } from "./uapi.ts";

export const WIREGUARD_GO = "wireguard-go";

/** Where the UAPI socket of `device` lives for the node with this data dir. */
export function uapiSocketPath(dataDir: string, device: string): string {
  return join(runDirOf(dataDir), "wireguard", `${device}.sock`);
}

export interface UserspaceDevice {
  device: string;
  socketPath: string;
  client: UapiClient;
  /** True when a wireguard-go from an earlier agent run was answering already. */
  reused: boolean;
  /** The process id when this call started it. */
  pid?: number;
}

export interface StartOptions {
  dataDir: string;
  device: string;
  /** The program (default `wireguard-go` on PATH). */
  binary?: string;
  /** How long to wait for the socket to answer (default 10 s). */
  readyTimeoutMs?: number;
  /** Start it in this network namespace (a path) instead of the agent's. */
  netns?: string;
}

async function answers(client: UapiClient): Promise<boolean> {
  try {
    await client.get();
    return true;
  } catch {
    return false;
  }
}

/**
 * The device's wireguard-go, reused when its socket answers, else started. Device names follow
 * the kernel's rule (1–15 characters, no `/`, whitespace or `:`), checked here because the name
 * becomes a path.
 */
export async function ensureWireguardGo(opts: StartOptions): Promise<UserspaceDevice> {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(opts.device) || opts.device.startsWith(".")) {
    throw new Error(`invalid WireGuard device name ${JSON.stringify(opts.device)}`);
  }
  const socketPath = uapiSocketPath(opts.dataDir, opts.device);
  const client = new UapiClient(socketPath);
  if (await answers(client)) return { device: opts.device, socketPath, client, reused: true };

  const binary = await findExecutable(opts.binary ?? WIREGUARD_GO);
  if (!binary) {
    throw new MissingBinaryError(
      opts.binary ?? WIREGUARD_GO,
      "install the Debian package wireguard-go",
    );
  }
  // A socket left by a wireguard-go that died would make the new one's listen fail.
  await Deno.remove(socketPath).catch(() => {});
  const logPath = join(opts.dataDir, `${opts.device}.wireguard-go.log`);
  const proc = await startDetached([binary, "-f", opts.device], runDirOf(opts.dataDir), logPath, {
    netns: opts.netns,
  });
  let exitCode: number | undefined;
  proc.exited.then((c) => exitCode = c);
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 10_000);
  while (Date.now() < deadline) {
    if (await answers(client)) {
      return { device: opts.device, socketPath, client, reused: false, pid: proc.pid };
    }
    if (exitCode !== undefined) {
      throw new Error(
        `wireguard-go for ${opts.device} exited with code ${exitCode}: ${await lastLine(logPath)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`wireguard-go for ${opts.device} did not answer on ${socketPath} in time`);
}

/** Stops the device's wireguard-go: removing its socket makes it remove the device and exit. */
export async function stopWireguardGo(dataDir: string, device: string): Promise<void> {
  await Deno.remove(uapiSocketPath(dataDir, device)).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

async function lastLine(path: string): Promise<string> {
  try {
    const lines = (await Deno.readTextFile(path)).trim().split("\n");
    return lines[lines.length - 1] || "(no output)";
  } catch {
    return "(no output)";
  }
}
