// Test servers for the store API tests: a real etcd 3.4 on 127.0.0.1:24379/24380 (only one test
// file, differential_test.ts, may start it, since the ports are fixed) and twill's API over a
// LocalBackend on 127.0.4.1.

import { createApiApp } from "../../lib/store/api/app.ts";
import { LocalBackend } from "../../lib/store/local_backend.ts";

const ETCD_CLIENT = "http://127.0.0.1:24379";
const ETCD_PEER = "http://127.0.0.1:24380";

/** Starts etcd 3.4 on loopback, runs `fn`, always kills it and removes its data dir. */
export async function withEtcd<T>(fn: (endpoint: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "twill-store-api-etcd-" });
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("etcd", {
      args: [
        "--name",
        "diff",
        "--data-dir",
        dir,
        "--listen-client-urls",
        ETCD_CLIENT,
        "--advertise-client-urls",
        ETCD_CLIENT,
        "--listen-peer-urls",
        ETCD_PEER,
        "--initial-advertise-peer-urls",
        ETCD_PEER,
        "--initial-cluster",
        `diff=${ETCD_PEER}`,
        "--log-level",
        "error",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(
      `cannot start etcd (${
        (e as Error).message
      }); run scripts/install-deps.sh to install etcd-server`,
    );
  }
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  const drain = (async () => {
    while (true) {
      const { value, done } = await stderr.read();
      if (done) return;
      log += value;
    }
  })();
  try {
    const deadline = Date.now() + 15_000;
    while (true) {
      try {
        const r = await fetch(`${ETCD_CLIENT}/v3/maintenance/status`, {
          method: "POST",
          body: "{}",
        });
        await r.body?.cancel();
        if (r.ok) break;
      } catch { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`etcd did not start within 15 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return await fn(ETCD_CLIENT);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await drain.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** Serves twill's API over a fresh LocalBackend on 127.0.4.1, runs `fn`, always shuts down. */
export async function withTwill<T>(
  token: string,
  fn: (endpoint: string) => Promise<T>,
): Promise<T> {
  const backend = new LocalBackend({ expiryCheckMs: 500 });
  const app = createApiApp(backend, { token });
  const server = Deno.serve({ hostname: "127.0.4.1", port: 0, onListen() {} }, app.fetch);
  try {
    return await fn(`http://127.0.4.1:${server.addr.port}`);
  } finally {
    backend.close();
    await server.shutdown();
  }
}
