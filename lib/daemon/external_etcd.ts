// How the agent reaches an external etcd (--etcd-endpoints): Flannel's --etcd-cafile,
// --etcd-certfile, --etcd-keyfile, --etcd-username and --etcd-password, checked and read once at
// start so a mistake is one line and exit 1 before anything runs.
//
// Decisions (Flannel's behaviour, where it has one):
// - TLS is used for https:// endpoints. Without --etcd-cafile the server is verified against the
//   system's CAs, as Flannel (Go) does; we read the system bundle (SSL_CERT_FILE, else the
//   distribution's usual path) and say so in one log line.
// - A client certificate needs its key and the reverse; a username needs its password and the
//   reverse. Flannel quietly falls back to plain HTTP when only one of cert/key is given; we
//   refuse instead, since a user who gave a certificate meant TLS.
// - --etcd-cafile is used whenever it is given; Flannel reads it only together with a client
//   certificate and otherwise verifies against the system's CAs, which fails for a private CA.
// - TLS files with an http:// endpoint, or https:// and http:// endpoints mixed, are refused:
//   the http:// endpoint would carry the traffic (and the password) in clear while the flags
//   suggest otherwise. A username with only http:// endpoints is allowed (etcd allows it) with a
//   warning.
// - The password never appears in a log line or an error.
// Limit: Deno's TLS client trusts its built-in (Mozilla) roots besides the CAs it is given
// (measured in Deno 2.9.6), so with --etcd-cafile a server certificate from a public CA for the
// endpoint's name is accepted too; Flannel (Go) trusts the given CA alone.
import type { EtcdClientOptions } from "../etcd/client.ts";
import type { DaemonConfig } from "./config.ts";

/** The parts of EtcdClientOptions the flags decide. */
export type ExternalEtcdAccess = Pick<EtcdClientOptions, "tls" | "user">;

/** Where Linux distributions keep the system CA bundle, first match wins. */
export const SYSTEM_CA_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
  "/etc/pki/tls/certs/ca-bundle.crt", // Fedora, RHEL, CentOS
  "/etc/ssl/ca-bundle.pem", // openSUSE
  "/etc/ssl/cert.pem",
];

type EtcdFlags = Pick<
  DaemonConfig,
  "etcdEndpoints" | "etcdCaFile" | "etcdCertFile" | "etcdKeyFile" | "etcdUsername" | "etcdPassword"
>;

/** Checks the flags together; throws one line naming what is wrong. Pure. */
export function checkExternalEtcdFlags(f: EtcdFlags): void {
  const given = (v: string | undefined) => v !== undefined && v !== "";
  if (given(f.etcdCertFile) !== given(f.etcdKeyFile)) {
    throw new Error(
      given(f.etcdCertFile)
        ? "--etcd-certfile needs --etcd-keyfile (the certificate's private key)"
        : "--etcd-keyfile needs --etcd-certfile (the certificate it belongs to)",
    );
  }
  if (given(f.etcdUsername) !== given(f.etcdPassword)) {
    throw new Error(
      given(f.etcdUsername)
        ? "--etcd-username needs --etcd-password (or FLANNELD_ETCD_PASSWORD)"
        : "--etcd-password needs --etcd-username",
    );
  }
  const tlsFlags = [
    ["--etcd-cafile", f.etcdCaFile],
    ["--etcd-certfile", f.etcdCertFile],
  ].filter(([, v]) => given(v)).map(([n]) => n);
  const plain = f.etcdEndpoints.filter((e) => !/^https:\/\//i.test(e));
  if (tlsFlags.length > 0 && plain.length > 0) {
    throw new Error(
      `${tlsFlags.join(" and ")} need https:// endpoints, but --etcd-endpoints has ${plain[0]}`,
    );
  }
  if (plain.length > 0 && plain.length < f.etcdEndpoints.length) {
    throw new Error(
      `--etcd-endpoints mixes https:// and plain endpoints (${plain[0]}); use https:// for all`,
    );
  }
}

/** Whether the endpoints speak TLS (checkExternalEtcdFlags has made them all https:// or all
 *  plain). */
function wantsTls(f: EtcdFlags): boolean {
  return f.etcdEndpoints.some((e) => /^https:\/\//i.test(e));
}

/** Checks the flags and reads the files they name. Throws one line on a missing or unreadable
 *  file, or one that is not PEM; `note` receives one line per decision worth logging. */
export async function readExternalEtcdAccess(
  f: EtcdFlags,
  note: (level: "info" | "warn", event: string, detail: string) => void,
  env: { sslCertFile?: string; bundles?: string[] } = {},
): Promise<ExternalEtcdAccess> {
  checkExternalEtcdFlags(f);
  const access: ExternalEtcdAccess = {};
  if (f.etcdUsername) {
    access.user = { name: f.etcdUsername, password: f.etcdPassword ?? "" };
    if (!wantsTls(f)) {
      note(
        "warn",
        "etcd_password_in_clear",
        "the etcd password goes to http:// endpoints without TLS",
      );
    }
  }
  if (!wantsTls(f)) return access;
  let caCerts: string;
  if (f.etcdCaFile) {
    caCerts = await readPem("--etcd-cafile", f.etcdCaFile, "CERTIFICATE");
  } else {
    const bundle = await findSystemBundle(env.sslCertFile, env.bundles ?? SYSTEM_CA_BUNDLES);
    caCerts = await readPem("the system CA bundle", bundle, "CERTIFICATE");
    note("info", "etcd_system_cas", `no --etcd-cafile: verifying etcd against ${bundle}`);
  }
  access.tls = { caCerts: [caCerts] };
  if (f.etcdCertFile && f.etcdKeyFile) {
    access.tls.cert = await readPem("--etcd-certfile", f.etcdCertFile, "CERTIFICATE");
    access.tls.key = await readPem("--etcd-keyfile", f.etcdKeyFile, "PRIVATE KEY");
  }
  return access;
}

async function findSystemBundle(sslCertFile: string | undefined, bundles: string[]) {
  if (sslCertFile) return sslCertFile;
  for (const p of bundles) {
    try {
      if ((await Deno.stat(p)).isFile) return p;
    } catch {
      // not on this distribution
    }
  }
  throw new Error(
    `https:// etcd endpoints without --etcd-cafile need the system's CA bundle, and none of ${
      bundles.join(", ")
    } exists; give --etcd-cafile`,
  );
}

/** A file's text, checked to hold a PEM block of `kind` ("CERTIFICATE", "PRIVATE KEY" matches
 *  PKCS#8, EC and RSA keys alike). The error names the flag and path, never the content. */
async function readPem(flag: string, path: string, kind: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : (e as Error).message;
    throw new Error(`${flag} ${path}: cannot read it (${why})`);
  }
  if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(text)) {
    throw new Error(`${flag} ${path}: not a PEM ${kind.toLowerCase()}`);
  }
  return text;
}
