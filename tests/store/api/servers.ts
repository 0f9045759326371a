// Test servers for the store API tests: a real etcd 3.4 on loopback (by default on
// 127.0.0.1:24379/24380, which only differential_test.ts uses; another test file must pass ports
// of its own) and twill's API over a LocalKv on 127.0.4.1.

import { createApiApp } from "../../../lib/store/api/app.ts";
import { LocalKv } from "../../../lib/store/local_kv.ts";
import { requireTools } from "../../support/tools.ts";

/** Starts etcd 3.4 on loopback, runs `fn`, always kills it and removes its data dir. */
export async function withEtcd<T>(
  fn: (endpoint: string) => Promise<T>,
  ports: { client: number; peer: number } = { client: 24379, peer: 24380 },
): Promise<T> {
  requireTools(["etcd"]);
  const ETCD_CLIENT = `http://127.0.0.1:${ports.client}`;
  const ETCD_PEER = `http://127.0.0.1:${ports.peer}`;
  const dir = await Deno.makeTempDir({ prefix: "twill-store-api-etcd-" });
  // A unique member name proves we talk to the etcd we started, not another one on the port.
  const name = `store-api-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("etcd", {
      args: [
        "--name",
        name,
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
        `${name}=${ETCD_PEER}`,
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
      }); run scripts/install-deps.ts to install etcd-server`,
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
    let exited = false;
    child.status.then(() => exited = true);
    while (true) {
      if (exited) {
        throw new Error(`etcd exited at start (is ${ETCD_CLIENT} or ${ETCD_PEER} taken?):\n${log}`);
      }
      try {
        const r = await fetch(`${ETCD_CLIENT}/v3/cluster/member/list`, {
          method: "POST",
          body: "{}",
        });
        const members = r.ok ? ((await r.json()).members ?? []) as { name?: string }[] : [];
        if (!r.ok) await r.body?.cancel();
        if (members.some((m) => m.name === name)) break;
        if (members.length) {
          throw new Error(
            `another etcd answers on ${ETCD_CLIENT} (members ${
              members.map((m) => m.name).join(", ")
            }); is a second run of this test using the same ports?`,
          );
        }
      } catch (e) {
        if (e instanceof Error && e.message.startsWith("another etcd")) throw e;
        /* not up yet */
      }
      if (Date.now() > deadline) throw new Error(`etcd did not start within 15 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return await fn(ETCD_CLIENT);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* it already exited (a crash shows in the test's own failure) */ }
    await child.status;
    await drain.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** Serves twill's API over a fresh LocalKv on 127.0.4.1, runs `fn`, always shuts down. */
export async function withTwill<T>(
  token: string,
  fn: (endpoint: string) => Promise<T>,
): Promise<T> {
  const kv = new LocalKv({ expiryCheckMs: 500 });
  const app = createApiApp(kv, { token });
  const server = Deno.serve({ hostname: "127.0.4.1", port: 0, onListen() {} }, app.fetch);
  try {
    return await fn(`http://127.0.4.1:${server.addr.port}`);
  } finally {
    kv.close();
    await server.shutdown();
  }
}
