// Keeps a member's serving certificate fresh: when two thirds of its life has passed, issue a
// new one, persist it, and hand it to the running TLS server (no restart). A failed renewal is
// logged and retried; once the certificate has expired every failure is an error line, so a
// member never goes dark silently. How a certificate is issued is injected: a voter signs with
// its own pki/ca.key, a learner asks a voter.
import type { Logger } from "../log.ts";
import type { x509 } from "./x509.ts";
import { renewDelayMs } from "./member_cert.ts";

/** setTimeout's largest delay; longer waits (a one-year certificate) are taken in steps. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
export const DEFAULT_RETRY_MS = 30_000;

export interface IssuedCertificate {
  cert: x509.X509Certificate;
  chainPem: string;
  keyPem: string;
}

export interface RenewalOptions {
  current: x509.X509Certificate;
  issue: () => Promise<IssuedCertificate>;
  /** Writes the new certificate and key (pki/member.crt, pki/member.key) before it is served. */
  persist: (m: IssuedCertificate) => Promise<void>;
  install: (chainPem: string, keyPem: string) => Promise<void>;
  log: Logger;
  now?: () => number;
  retryMs?: number;
}

export interface Renewal {
  /** The certificate being served now. */
  readonly current: x509.X509Certificate;
  stop(): void;
}

export function startCertificateRenewal(o: RenewalOptions): Renewal {
  const now = o.now ?? Date.now;
  const retryMs = o.retryMs ?? DEFAULT_RETRY_MS;
  let current = o.current;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(tick, Math.min(Math.max(0, ms), MAX_TIMER_MS));
  };
  const tick = async () => {
    const wait = renewDelayMs(current, now());
    if (wait > 0) return schedule(wait); // a long wait taken in steps, or an early wake-up
    try {
      const next = await o.issue();
      await o.persist(next);
      if (stopped) return;
      await o.install(next.chainPem, next.keyPem);
      current = next.cert;
      o.log("info", "member_cert_renewed", {
        serial: next.cert.serialNumber,
        not_after: next.cert.notAfter.toISOString(),
      });
      schedule(renewDelayMs(current, now()));
    } catch (e) {
      const expired = now() >= current.notAfter.getTime();
      o.log(expired ? "error" : "warn", "member_cert_renewal_failed", {
        error: e instanceof Error ? e.message : String(e),
        not_after: current.notAfter.toISOString(),
        expired,
      });
      const left = current.notAfter.getTime() - now();
      schedule(expired ? retryMs : Math.min(retryMs, Math.max(1000, left / 4)));
    }
  };
  schedule(0);
  return {
    get current() {
      return current;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
