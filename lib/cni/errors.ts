// CNI errors: the spec's well-known codes and the one error type every command throws. The
// entry point (cmd/cni.ts) turns it into {"cniVersion","code","msg","details"} on stdout.

export const ERR = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnv: 4,
  io: 5,
  decode: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  notAvailable: 50,
  limitedConnectivity: 51,
  /** twill's own (100+ is plugin-specific): CHECK found the attachment not as ADD left it. */
  checkFailed: 100,
  /** twill's own: the address range has no free address left. */
  exhausted: 101,
  /** twill's own: the kernel refused a change. */
  kernel: 102,
  /** Anything unexpected (the number Go plugins use for internal errors). */
  internal: 999,
} as const;

export class CniError extends Error {
  constructor(readonly code: number, msg: string, readonly details = "") {
    super(msg);
  }
}

export function errorJSON(version: string, e: CniError): Record<string, unknown> {
  return { cniVersion: version, code: e.code, msg: e.message, details: e.details };
}
