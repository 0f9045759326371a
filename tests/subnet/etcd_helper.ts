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
