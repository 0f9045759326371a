// Addresses as HOST:PORT strings, the way flags and member tables carry them.

/** "host:port" or "[v6]:port" → [host, port]. Throws a one-line error when malformed. */
export function splitHostPort(addr: string): [string, number] {
  const m = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) {
    throw new Error(`"${addr}" is not HOST:PORT (e.g. 10.0.0.1:8473)`);
  }
  return [m[1] ?? m[2], port];
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
