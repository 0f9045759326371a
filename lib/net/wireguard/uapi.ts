// The cross-platform WireGuard userspace API (https://www.wireguard.com/xplatform/) spoken by
// wireguard-go on `<socket dir>/<dev>.sock`: `get=1` or `set=1` and key=value lines, a blank line
// ends the request; the answer ends with `errno=N` and a blank line. Keys travel in hex. The
// encoders and decoders are pure; UapiClient is the thin socket adapter.
import { type CIDR, formatCIDR, formatIP, type IP, parseCIDR, parseIP } from "../cidr.ts";
import { keyFromHex, keyToHex } from "./keys.ts";

export interface Endpoint {
  ip: IP;
  port: number;
}

/** A peer as the device reports it. */
export interface PeerState {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: Endpoint;
  allowedIPs: CIDR[];
  persistentKeepalive: number;
  /** Unix time of the last handshake, in seconds (0: never). */
  lastHandshakeSec: number;
  rxBytes: bigint;
  txBytes: bigint;
}

export interface DeviceState {
  privateKey?: Uint8Array;
  listenPort: number;
  fwmark: number;
  peers: PeerState[];
}

/** A peer to add, or to update in place when its public key is already known. */
export interface PeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: Endpoint;
  allowedIPs: CIDR[];
  /** Seconds; 0 turns keepalives off. */
  persistentKeepalive?: number;
}

export interface DeviceConfig {
  privateKey?: Uint8Array;
  listenPort?: number;
}

/** The device refused a request (errno is positive). */
export class UapiError extends Error {
  constructor(readonly op: string, readonly errno: number) {
    super(`wireguard uapi ${op}: refused with errno ${errno}`);
  }
}

/** Replies larger than this are refused: a device with thousands of peers stays well below. */
export const MAX_REPLY_BYTES = 4 << 20;

function assertPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${what} ${port} is not a port number`);
  }
}

export function formatEndpoint(e: Endpoint): string {
  assertPort(e.port, "endpoint port");
  const host = formatIP(e.ip);
  return e.ip.family === 6 ? `[${host}]:${e.port}` : `${host}:${e.port}`;
}

export function parseEndpoint(s: string): Endpoint {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw new Error(`endpoint ${JSON.stringify(s)} is not host:port`);
  const port = Number(m[2]);
  assertPort(port, "endpoint port");
  return { ip: parseIP(m[1]), port };
}

/** The request reading the whole device. */
export function encodeGet(): string {
  return "get=1\n\n";
}

function peerLines(p: PeerConfig): string[] {
  const lines = [`public_key=${keyToHex(p.publicKey)}`];
  if (p.presharedKey) lines.push(`preshared_key=${keyToHex(p.presharedKey)}`);
  if (p.endpoint) lines.push(`endpoint=${formatEndpoint(p.endpoint)}`);
  if (p.persistentKeepalive !== undefined) {
    const k = p.persistentKeepalive;
    if (!Number.isInteger(k) || k < 0 || k > 65535) throw new Error(`keepalive ${k} out of range`);
    lines.push(`persistent_keepalive_interval=${k}`);
  }
  // The peer's allowed IPs become exactly the given list, so a shrunken lease loses its old ones.
  lines.push("replace_allowed_ips=true");
  for (const c of p.allowedIPs) lines.push(`allowed_ip=${formatCIDR(c)}`);
  return lines;
}

/** A `set=1` request: device settings, peers to add or update, peers to remove. */
export function encodeSet(
  op: { device?: DeviceConfig; peers?: PeerConfig[]; removePeers?: Uint8Array[] },
): string {
  const lines = ["set=1"];
  if (op.device?.privateKey) lines.push(`private_key=${keyToHex(op.device.privateKey)}`);
  if (op.device?.listenPort !== undefined) {
    assertPort(op.device.listenPort, "listen port");
    lines.push(`listen_port=${op.device.listenPort}`);
  }
  for (const p of op.peers ?? []) lines.push(...peerLines(p));
  for (const k of op.removePeers ?? []) lines.push(`public_key=${keyToHex(k)}`, "remove=true");
  return lines.join("\n") + "\n\n";
}

/** The key=value pairs of a reply and its errno; a reply without `errno=` is malformed. */
export function decodeReply(text: string): { errno: number; pairs: [string, string][] } {
  const pairs: [string, string][] = [];
  let errno: number | undefined;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`malformed uapi line ${JSON.stringify(line.slice(0, 80))}`);
    const key = line.slice(0, eq), value = line.slice(eq + 1);
    if (key === "errno") errno = Math.abs(Number(value));
    else pairs.push([key, value]);
  }
  if (errno === undefined || Number.isNaN(errno)) throw new Error("uapi reply has no errno line");
  return { errno, pairs };
}

function newPeer(publicKey: Uint8Array): PeerState {
  return {
    publicKey,
    allowedIPs: [],
    persistentKeepalive: 0,
    lastHandshakeSec: 0,
    rxBytes: 0n,
    txBytes: 0n,
  };
}

function applyPeerPair(p: PeerState, key: string, value: string): void {
  switch (key) {
    case "preshared_key":
      if (!/^0+$/.test(value)) p.presharedKey = keyFromHex(value, "preshared key");
      return;
    case "endpoint":
      p.endpoint = parseEndpoint(value);
      return;
    case "allowed_ip":
      p.allowedIPs.push(parseCIDR(value));
      return;
    case "persistent_keepalive_interval":
      p.persistentKeepalive = Number(value);
      return;
    case "last_handshake_time_sec":
      p.lastHandshakeSec = Number(value);
      return;
    case "rx_bytes":
      p.rxBytes = BigInt(value);
      return;
    case "tx_bytes":
      p.txBytes = BigInt(value);
      return;
  }
  // Other keys (protocol_version, last_handshake_time_nsec, newer ones) carry nothing we use.
}

/** The device state in a `get=1` reply's pairs. */
export function decodeDevice(pairs: [string, string][]): DeviceState {
  const dev: DeviceState = { listenPort: 0, fwmark: 0, peers: [] };
  let peer: PeerState | undefined;
  for (const [key, value] of pairs) {
    if (key === "public_key") {
      peer = newPeer(keyFromHex(value, "peer public key"));
      dev.peers.push(peer);
    } else if (peer) {
      applyPeerPair(peer, key, value);
    } else if (key === "private_key") {
      dev.privateKey = keyFromHex(value, "private key");
    } else if (key === "listen_port") {
      dev.listenPort = Number(value);
    } else if (key === "fwmark") {
      dev.fwmark = Number(value);
    }
  }
  return dev;
}

/** One request per connection, as `wg` does; wireguard-go serves each connection in turn. */
export class UapiClient {
  constructor(readonly socketPath: string, readonly timeoutMs = 5000) {}

  /** Sends one encoded request; returns the reply's pairs or throws UapiError. */
  async exchange(op: string, request: string): Promise<[string, string][]> {
    const conn = await Deno.connect({ transport: "unix", path: this.socketPath });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, this.timeoutMs);
    try {
      await conn.write(new TextEncoder().encode(request));
      const text = await readReply(conn, op);
      const { errno, pairs } = decodeReply(text);
      if (errno !== 0) throw new UapiError(op, errno);
      return pairs;
    } catch (e) {
      if (timedOut) throw new Error(`wireguard uapi ${op}: no answer in ${this.timeoutMs} ms`);
      throw e;
    } finally {
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* closed by the timer */ }
    }
  }

  async get(): Promise<DeviceState> {
    return decodeDevice(await this.exchange("get", encodeGet()));
  }

  async configureDevice(device: DeviceConfig): Promise<void> {
    await this.exchange("set device", encodeSet({ device }));
  }

  /** Adds the peer, or updates it (endpoint, keys, allowed IPs replaced) when present. */
  async setPeer(peer: PeerConfig): Promise<void> {
    await this.exchange("set peer", encodeSet({ peers: [peer] }));
  }

  async removePeer(publicKey: Uint8Array): Promise<void> {
    await this.exchange("remove peer", encodeSet({ removePeers: [publicKey] }));
  }
}

async function readReply(conn: Deno.Conn, op: string): Promise<string> {
  const dec = new TextDecoder();
  const buf = new Uint8Array(64 * 1024);
  let text = "";
  let total = 0;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) {
      throw new Error(`wireguard uapi ${op}: connection closed before the reply ended`);
    }
    total += n;
    if (total > MAX_REPLY_BYTES) {
      throw new Error(`wireguard uapi ${op}: reply over ${MAX_REPLY_BYTES} bytes`);
    }
    text += dec.decode(buf.subarray(0, n), { stream: true });
    if (text.endsWith("\n\n")) return text;
  }
}
