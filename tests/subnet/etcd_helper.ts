// Starts a throwaway etcd 3.4 (Debian's etcd-server) for agent tests; killed by the caller.
import { requireTools } from "../support/tools.ts";

export interface EtcdProc {
  endpoint: string;
  /** SIGKILL, keeping the data dir: start again with restart(). */
  kill(): Promise<void>;
  /** Starts again on the same data dir (after kill()). */
  restart(): Promise<EtcdProc>;
  stop(): Promise<void>;
}

export async function startEtcd(
  clientAddr: string,
  peerAddr: string,
  netns?: string,
  existingDir?: string,
): Promise<EtcdProc> {
  requireTools(["etcd", "curl"]);
  const dir = existingDir ?? await Deno.makeTempDir({ prefix: "twa-etcd-" });
  const args = [
    "--name",
    "twa",
    "--data-dir",
    dir,
    "--listen-client-urls",
    `http://${clientAddr}`,
    "--advertise-client-urls",
    `http://${clientAddr}`,
    "--listen-peer-urls",
    `http://${peerAddr}`,
    "--initial-advertise-peer-urls",
    `http://${peerAddr}`,
    "--initial-cluster",
    `twa=http://${peerAddr}`,
  ];
  const cmd = netns ? "ip" : "etcd";
  const full = netns ? ["netns", "exec", netns, "etcd", ...args] : args;
  const child = new Deno.Command(cmd, { args: full, stdout: "null", stderr: "null" }).spawn();
  const endpoint = `http://${clientAddr}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (netns) {
      const o = await new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          netns,
          "curl",
          "-s",
          "-m",
          "1",
          `${endpoint}/v3/kv/range`,
          "-d",
          '{"key":"eA=="}',
        ],
        stdout: "piped",
        stderr: "null",
      }).output();
      if (o.code === 0 && new TextDecoder().decode(o.stdout).includes("header")) break;
    } else {
      try {
        const r = await fetch(`${endpoint}/v3/kv/range`, {
          method: "POST",
          body: JSON.stringify({ key: btoa("x") }),
        });
        await r.body?.cancel();
        if (r.ok) break;
      } catch { /* not yet */ }
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`etcd on ${clientAddr} did not start`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
    },
    restart: () => startEtcd(clientAddr, peerAddr, netns, dir),
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

// ---------------------------------------------------------------- etcd over TLS, with auth

/** PEM files made with openssl for one TLS etcd: its CA, a server certificate for 127.0.0.1, a
 *  client certificate, and an unrelated CA. The client certificate has no Common Name: with
 *  --client-cert-auth and auth enabled, etcd's JSON gateway answers 400 to any client
 *  certificate that has one. The server certificate may also act as a client, since etcd's
 *  gateway dials etcd's own gRPC port with it. */
export interface EtcdTlsFiles {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  otherCaCert: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const o = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (o.code !== 0) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(o.stderr).trim()}`);
  }
}

/** Makes the certificates in `dir` (ECDSA P-256, valid one day). */
export async function makeEtcdTlsFiles(dir: string): Promise<EtcdTlsFiles> {
  requireTools(["openssl"]);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  for (const ca of ["ca", "other-ca"]) {
    await openssl(
      dir,
      ["req", "-x509", ...ec, "-keyout", `${ca}.key`, "-out", `${ca}.crt`]
        .concat(["-days", "1", "-subj", `/CN=twa ${ca}`]),
    );
  }
  const leaf = async (name: string, subject: string, ext: string) => {
    await openssl(
      dir,
      ["req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`]
        .concat(["-subj", subject]),
    );
    await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
    await openssl(
      dir,
      ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key"]
        .concat([
          "-CAcreateserial",
          "-out",
          `${name}.crt`,
          "-days",
          "1",
          "-extfile",
          `${name}.ext`,
        ]),
    );
  };
  const serverExt = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n";
  await leaf("server", "/CN=127.0.0.1", serverExt);
  await leaf("client", "/O=twa client", "extendedKeyUsage=clientAuth\n");
  return {
    dir,
    caCert: `${dir}/ca.crt`,
    serverCert: `${dir}/server.crt`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.crt`,
    clientKey: `${dir}/client.key`,
    otherCaCert: `${dir}/other-ca.crt`,
  };
}

/** A loopback port nobody listens on right now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** etcdctl against a TLS etcd with the client certificate; returns stdout, throws on failure. */
export async function etcdctl(endpoint: string, tls: EtcdTlsFiles, args: string[]) {
  requireTools(["etcdctl"]);
  const o = await new Deno.Command("etcdctl", {
    args: [`--endpoints=${endpoint}`, `--cacert=${tls.caCert}`, `--cert=${tls.clientCert}`]
      .concat([`--key=${tls.clientKey}`, "--dial-timeout=5s", ...args]),
    env: { ETCDCTL_API: "3" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(o.stdout);
  if (o.code !== 0) {
    throw new Error(`etcdctl ${args[0]} failed: ${new TextDecoder().decode(o.stderr).trim()}`);
  }
  return out;
}

/** A throwaway etcd 3.4 serving clients over TLS with --client-cert-auth (peers in plain HTTP,
 *  on loopback), on free ports; `authTokenTtl` sets how long an idle etcd auth token lives. */
export async function startEtcdTls(
  tls: EtcdTlsFiles,
  opts: { authTokenTtl?: number } = {},
  existing?: { dir: string; client: string; peer: string },
): Promise<EtcdProc> {
  requireTools(["etcd", "curl"]);
  const dir = existing?.dir ?? await Deno.makeTempDir({ prefix: "twa-etcd-tls-" });
  const client = existing?.client ?? `127.0.0.1:${freePort()}`;
  const peer = existing?.peer ?? `127.0.0.1:${freePort()}`;
  const args = ["--name", "twa", "--data-dir", dir]
    .concat(["--listen-client-urls", `https://${client}`])
    .concat(["--advertise-client-urls", `https://${client}`])
    .concat(["--listen-peer-urls", `http://${peer}`])
    .concat(["--initial-advertise-peer-urls", `http://${peer}`])
    .concat(["--initial-cluster", `twa=http://${peer}`])
    .concat(["--client-cert-auth", "--trusted-ca-file", tls.caCert])
    .concat(["--cert-file", tls.serverCert, "--key-file", tls.serverKey])
    .concat(["--auth-token-ttl", String(opts.authTokenTtl ?? 300)]);
  const child = new Deno.Command("etcd", { args, stdout: "null", stderr: "null" }).spawn();
  const endpoint = `https://${client}`;
  const stop = async (removeDir: boolean) => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    if (removeDir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    const o = await new Deno.Command("curl", {
      args: ["-s", "-m", "1", "--cacert", tls.caCert, "--cert", tls.clientCert]
        .concat(["--key", tls.clientKey, `${endpoint}/health`]),
      stdout: "piped",
      stderr: "null",
    }).output();
    if (o.code === 0 && new TextDecoder().decode(o.stdout).includes("health")) break;
    if (Date.now() > deadline) {
      await stop(true);
      throw new Error(`etcd over TLS on ${client} did not start`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    kill: () => stop(false),
    restart: () => startEtcdTls(tls, opts, { dir, client, peer }),
    stop: () => stop(true),
  };
}
