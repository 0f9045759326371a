// What the store benchmarks share: an etcd TLS certificate made with openssl, polling with a
// deadline, and a process's RSS and CPU read from /proc (NaN when it cannot be read).
import { join } from "node:path";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A CA and one certificate for 127.0.0.1 (ECDSA P-256, as twill's), made with openssl. Its
 *  extended key usage has clientAuth besides serverAuth: etcd's peers present their certificate
 *  as clients when the peer CA is set (no --client-cert-auth on the client URLs). */
export async function etcdCertificates(base: string) {
  const f = (n: string) => join(base, n);
  const files = { ca: f("etcd-ca.crt"), cert: f("etcd.crt"), key: f("etcd.key") };
  await Deno.writeTextFile(
    f("etcd-ext.cnf"),
    "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
  );
  const steps = [
    ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f("etcd-ca.key")],
    ["req", "-x509", "-new", "-key", f("etcd-ca.key"), "-subj", "/CN=bench etcd CA", "-days", "2"]
      .concat(["-out", files.ca]),
    ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", files.key],
    ["req", "-new", "-key", files.key, "-subj", "/CN=etcd", "-out", f("etcd.csr")],
    ["x509", "-req", "-in", f("etcd.csr"), "-CA", files.ca, "-CAkey", f("etcd-ca.key")]
      .concat(["-CAcreateserial", "-days", "2", "-extfile", f("etcd-ext.cnf"), "-out", files.cert]),
  ];
  for (const args of steps) {
    const o = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" }).output();
    if (!o.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(o.stderr)}`);
  }
  return { files, caPem: await Deno.readTextFile(files.ca) };
}

export async function waitFor(what: string, ms: number, ok: () => Promise<boolean>): Promise<void> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    try {
      if (await ok()) return;
    } catch { /* not yet */ }
    await sleep(100);
  }
  throw new Error(`bench: timed out after ${ms} ms waiting for ${what}`);
}

export function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU time (user + system) a process has used so far, in milliseconds. */
export function cpuMillis(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10; // clock ticks of 10 ms
  } catch {
    return NaN;
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}
