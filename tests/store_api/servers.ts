// Test servers for the store API tests: a real etcd 3.4 on loopback (by default on
// 127.0.0.1:24379/24380, which only differential_test.ts uses; another test file must pass ports
// of its own) and twill's API over a LocalBackend on 127.0.4.1.

import { createApiApp } from "../../lib/store/api/app.ts";
import { LocalBackend } from "../../lib/store/local_backend.ts";

/** Starts etcd 3.4 on loopback, runs `fn`, always kills it and removes its data dir. */
export async function withEtcd<T>(
  fn: (endpoint: string) => Promise<T>,
  ports: { client: number; peer: number } = { client: 24379, peer: 24380 },
): Promise<T> {
  const ETCD_CLIENT = `http://127.0.0.1:${ports.client}`;
  const ETCD_PEER = `http://127.0.0.1:${ports.peer}`;
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
