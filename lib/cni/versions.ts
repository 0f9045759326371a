// The CNI versions twill speaks and what each allows.

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export const LATEST = "1.1.0";

export function isSupported(v: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

function parts(v: string): number[] {
  return v.split(".").map((x) => Number(x));
}

/** Semantic comparison of "a.b.c" versions: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = parts(a), pb = parts(b);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** CHECK exists from 0.4.0, STATUS and GC from 1.1.0. */
export function allows(version: string, command: string): boolean {
  if (command === "CHECK") return compareVersions(version, "0.4.0") >= 0;
  if (command === "STATUS" || command === "GC") return compareVersions(version, "1.1.0") >= 0;
  return true;
}
