// Address and prefix arithmetic for IPv4 and IPv6, pure. Addresses are carried as bigint so one
// code path serves both families; `family` says how to format them.

export type Family = 4 | 6;

export interface IP {
  family: Family;
  value: bigint;
}

export interface CIDR {
  ip: IP; // the network address (host bits zero) unless built with keepHost
  prefix: number;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export function bits(family: Family): number {
  return BITS[family];
}

export function parseIP(text: string): IP {
  const s = text.trim();
  if (s.includes(":")) return { family: 6, value: parseV6(s) };
  return { family: 4, value: parseV4(s) };
}

/** Returns null instead of throwing, for validation paths. */
export function tryParseIP(text: string): IP | null {
  try {
    return parseIP(text);
  } catch {
    return null;
  }
}

function parseV4(s: string): bigint {
  const parts = s.split(".");
  if (parts.length !== 4) throw new Error(`invalid IPv4 address: ${s}`);
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`invalid IPv4 address: ${s}`);
    v = (v << 8n) | BigInt(Number(p));
  }
  return v;
}

function parseV6(s: string): bigint {
  let text = s;
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const v4 = parseV4(tail);
    text = text.slice(0, lastColon + 1) + ((v4 >> 16n) & 0xffffn).toString(16) + ":" +
      (v4 & 0xffffn).toString(16);
  }
  const halves = text.split("::");
  if (halves.length > 2) throw new Error(`invalid IPv6 address: ${s}`);
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const rest = halves.length === 2 ? (halves[1] === "" ? [] : halves[1].split(":")) : [];
  const missing = 8 - head.length - rest.length;
  if (
    (halves.length === 1 && missing !== 0) || missing < 0 || (halves.length === 2 && missing < 1)
  ) {
    throw new Error(`invalid IPv6 address: ${s}`);
  }
  const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw new Error(`invalid IPv6 address: ${s}`);
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  return v;
}

export function formatIP(ip: IP): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((sh) => ((v >> sh) & 0xffn).toString()).join(".");
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (length >= 2) of zero groups, leftmost on ties.
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

export function ipToBytes(ip: IP): Uint8Array {
  const n = BITS[ip.family] / 8;
  const out = new Uint8Array(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function ipFromBytes(b: Uint8Array): IP {
  if (b.length !== 4 && b.length !== 16) {
    throw new Error(`an IP address has 4 or 16 bytes, not ${b.length}`);
  }
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return { family: b.length === 4 ? 4 : 6, value: v };
}

function mask(family: Family, prefix: number): bigint {
  const total = BigInt(BITS[family]);
  const all = (1n << total) - 1n;
  return all ^ ((1n << (total - BigInt(prefix))) - 1n);
}

/** Parses "10.5.0.0/16". With keepHost the address keeps its host bits ("10.5.0.1/24"). */
export function parseCIDR(text: string, keepHost = false): CIDR {
  const slash = text.indexOf("/");
  if (slash < 0) throw new Error(`invalid CIDR (no prefix length): ${text}`);
  const ip = parseIP(text.slice(0, slash));
  const ptext = text.slice(slash + 1).trim();
  const prefix = Number(ptext);
  if (!/^\d+$/.test(ptext) || prefix > BITS[ip.family]) throw new Error(`invalid CIDR: ${text}`);
  return {
    ip: keepHost ? ip : { family: ip.family, value: ip.value & mask(ip.family, prefix) },
    prefix,
  };
}

export function tryParseCIDR(text: string, keepHost = false): CIDR | null {
  try {
    return parseCIDR(text, keepHost);
  } catch {
    return null;
  }
}

export function formatCIDR(c: CIDR): string {
  return `${formatIP(c.ip)}/${c.prefix}`;
}

/** The network containing `c` (host bits cleared). */
export function networkOf(c: CIDR): CIDR {
  return {
    ip: { family: c.ip.family, value: c.ip.value & mask(c.ip.family, c.prefix) },
    prefix: c.prefix,
  };
}

export function contains(net: CIDR, ip: IP): boolean {
  if (net.ip.family !== ip.family) return false;
  const m = mask(ip.family, net.prefix);
  return (ip.value & m) === (net.ip.value & m);
}

/** True when `inner` lies entirely inside `outer`. */
export function containsCIDR(outer: CIDR, inner: CIDR): boolean {
  return inner.prefix >= outer.prefix && contains(outer, inner.ip);
}

/** Number of addresses in the prefix (2^(bits-prefix)). */
export function size(c: CIDR): bigint {
  return 1n << BigInt(BITS[c.ip.family] - c.prefix);
}

export function addIP(ip: IP, n: bigint | number): IP {
  return { family: ip.family, value: ip.value + BigInt(n) };
}

/** The n-th address of the prefix (0 = network address). */
export function nthIP(c: CIDR, n: bigint | number): IP {
  return addIP(networkOf(c).ip, n);
}

export function lastIP(c: CIDR): IP {
  return addIP(networkOf(c).ip, size(c) - 1n);
}

export function ipEqual(a: IP, b: IP): boolean {
  return a.family === b.family && a.value === b.value;
}

export function cidrEqual(a: CIDR, b: CIDR): boolean {
  return a.prefix === b.prefix && ipEqual(a.ip, b.ip);
}

/** The subnet of length `subnetLen` that follows `s` (same length), e.g. 10.5.1.0/24 -> 10.5.2.0/24. */
export function nextSubnet(s: CIDR, subnetLen = s.prefix): CIDR {
  return {
    ip: addIP(networkOf(s).ip, 1n << BigInt(BITS[s.ip.family] - subnetLen)),
    prefix: subnetLen,
  };
}
