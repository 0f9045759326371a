// Real `twill agent --store-only` processes on loopback (127.0.7.x, store-raft's range), for
// multi-process tests: start/init/join, SIGKILL, SIGSTOP/SIGCONT, restart from the data dir, and a
// no-retry HTTPS client (node:https, a fresh connection per request) so a write is never sent twice.
// The store speaks TLS only: once the first member has made the cluster CA, requests verify it and
// carry that member's admin credential unless a test passes another credential.
import https from "node:https";
import { Buffer } from "node:buffer";
import { join } from "node:path";

export const MAIN = new URL("../../main.ts", import.meta.url).pathname;
/** The join secret the first member is started with (`--init --token`). A test that spawns
 *  `--join … --token TOKEN` gets the cluster's join token (K10<ca hash>::TOKEN) in its place. */
export const TOKEN = "store-test-token";

/** The CA and admin credential of the cluster under test (one at a time per test process). */
let trust: { caPem: string; admin: string; joinToken: string } | undefined;

/** The current cluster's trust material; throws before the first member has made it. */
export function clusterTrust(): { caPem: string; admin: string; joinToken: string } {
  if (!trust) throw new Error("no cluster trust yet: start the first member first");
  return trust;
}

export interface HttpResult {
  status: number;
  body: Record<string, unknown>;
}

/** Thrown when the request certainly never reached the server (connection refused). */
export class NotSent extends Error {}

/** One POST over a fresh connection, never retried. Rejects NotSent on ECONNREFUSED. */
export function post(
  address: string,
  path: string,
  body: unknown,
  timeoutMs = 3000,
  token?: string,
): Promise<HttpResult> {
  const [host, port] = address.split(":");
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const credential = token ?? trust?.admin;
    const req = https.request({
      host,
      port: Number(port),
      path,
      method: "POST",
      agent: false,
      ca: trust?.caPem,
      headers: {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(payload),
        ...(credential ? { authorization: `Bearer ${credential}` } : {}),
      },
    }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () => {
        clearTimeout(timer);
        let parsed: Record<string, unknown> = {};
        try {
          parsed = text ? JSON.parse(text) : {};
        } catch {
          parsed = { raw: text };
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error("client timeout")), timeoutMs);
    req.on("error", (e: Error & { code?: string }) => {
      clearTimeout(timer);
      reject(e.code === "ECONNREFUSED" ? new NotSent(e.message) : e);
    });
    req.end(payload);
  });
}

let tlsClient: { caPem: string; client: Deno.HttpClient } | undefined;

/** fetch() against the cluster under test: https verified by its CA, with its admin credential
 *  unless `init` sets an authorization header. `address` is host:port. */
export function storeFetch(address: string, path: string, init: RequestInit = {}) {
  const t = clusterTrust();
  if (tlsClient?.caPem !== t.caPem) {
    tlsClient?.client.close();
    tlsClient = { caPem: t.caPem, client: Deno.createHttpClient({ caCerts: [t.caPem] }) };
  }
  const headers = new Headers(init.headers);
  if (!headers.has("authorization")) headers.set("authorization", `Bearer ${t.admin}`);
  return fetch(`https://${address}${path}`, { ...init, headers, client: tlsClient.client });
}

export const b64 = (s: string) => Buffer.from(s).toString("base64");
export const unb64 = (
  s: unknown,
) => (typeof s === "string" ? Buffer.from(s, "base64").toString() : "");

export function prefixEnd(prefix: string): string {
  const b = Buffer.from(prefix);
  b[b.length - 1]++;
  return b.toString("base64");
}

export interface Member {
  index: number;
  address: string;
  dataDir: string;
  child?: Deno.ChildProcess;
  log: string[];
  stopped: boolean;
}

export interface ClusterOptions {
  /** Third octet base: member i listens on 127.0.7.(base+i):8473. */
  base: number;
  size: number;
  extraArgs?: string[];
  /** Start only these many initially (others joined later by the test). */
  initial?: number;
}

export class ProcessCluster {
  members: Member[] = [];
  root = "";

  constructor(readonly opts: ClusterOptions) {}

  async setup(): Promise<void> {
    this.root = await Deno.makeTempDir({ prefix: "twill-store-test-" });
    for (let i = 0; i < this.opts.size; i++) {
      this.members.push({
        index: i,
        address: `127.0.7.${this.opts.base + i + 1}:8473`,
        dataDir: join(this.root, `m${i + 1}`),
        log: [],
        stopped: true,
      });
    }
  }

  /** --init the first member, --join the rest one after another, wait for `voters` voters. */
  async start(voters = Math.min(this.opts.size, 3)): Promise<void> {
    await this.setup();
    const n = this.opts.initial ?? this.opts.size;
    this.spawn(this.members[0], ["--init", "--token", TOKEN, "--voters", String(voters)]);
    await this.loadTrust(this.members[0]);
    await this.waitReady(this.members[0]);
    for (let i = 1; i < n; i++) {
      this.spawn(this.members[i], [
        "--join",
        this.members[0].address,
        "--token",
        TOKEN,
        "--voters",
        String(voters),
      ]);
    }
    await this.waitFor(
      async () => {
        const m = await this.membersView();
        return m !== undefined &&
          m.members.filter((x) => x.kind === "voter").length === Math.min(voters, n) &&
          m.members.length === n;
      },
      30_000,
      `${n} members with ${Math.min(voters, n)} voters`,
    );
  }

  /** Waits for the --init member's pki/ca.crt, admin-credential and join-token, and makes them
   *  what post() and later joins use. */
  async loadTrust(first: Member, timeoutMs = 20_000): Promise<void> {
    const read = (f: string) => Deno.readTextFile(join(first.dataDir, f)).catch(() => "");
    await this.waitFor(
      async () => (await read("join-token")) !== "" && (await read("admin-credential")) !== "",
      timeoutMs,
      `${first.address} to make the cluster CA and credentials`,
    );
    trust = {
      caPem: await read("pki/ca.crt"),
      admin: (await read("admin-credential")).trim(),
      joinToken: (await read("join-token")).trim(),
    };
  }

  spawn(m: Member, givenArgs: string[]): void {
    // A join with the test secret gets the join token of the cluster the secret belongs to.
    const args = givenArgs.map((a, i) =>
      a === TOKEN && givenArgs[i - 1] === "--token" && givenArgs.includes("--join") && trust
        ? trust.joinToken
        : a
    );
    const cmd = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "agent",
        "--store-only",
        "--listen",
        m.address,
        "--data-dir",
        m.dataDir,
        "--name",
        `m${m.index + 1}`,
        "--healthz-ip", // each member's health server on its own loopback address
        m.address.split(":")[0],
        ...(this.opts.extraArgs ?? []),
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    });
    const child = cmd.spawn();
    m.child = child;
    m.stopped = false;
    const pump = async (s: ReadableStream<Uint8Array>) => {
      const dec = new TextDecoder();
      let buf = "";
      try {
        for await (const chunk of s) {
          buf += dec.decode(chunk, { stream: true });
          let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            m.log.push(buf.slice(0, i));
            if (m.log.length > 5000) m.log.splice(0, 1000);
            buf = buf.slice(i + 1);
          }
        }
      } catch { /* process gone */ }
    };
    void pump(child.stdout);
    void pump(child.stderr);
  }

  /** Restart from the data dir alone. */
  restart(m: Member, extra: string[] = []): void {
    this.spawn(m, extra);
  }

  async kill(m: Member, signal: Deno.Signal = "SIGKILL"): Promise<void> {
    if (!m.child || m.stopped) return;
    try {
      m.child.kill(signal);
    } catch { /* already gone */ }
    await m.child.status;
    m.stopped = true;
  }

  signal(m: Member, signal: Deno.Signal): void {
    m.child?.kill(signal);
  }

  async teardown(): Promise<void> {
    for (const m of this.members) {
      if (m.child && !m.stopped) {
        try {
          m.child.kill("SIGCONT");
        } catch { /* gone */ }
        await this.kill(m, "SIGKILL");
      }
    }
    if (this.root) await Deno.remove(this.root, { recursive: true }).catch(() => {});
    trust = undefined;
  }

  async status(m: Member): Promise<Record<string, unknown> | undefined> {
    try {
      const r = await post(m.address, "/raft/status", {}, 1000);
      return r.status === 200 ? r.body : undefined;
    } catch {
      return undefined;
    }
  }

  async membersView(): Promise<
    | { leader: number; members: { id: number; kind: string; address: string; match: number }[] }
    | undefined
  > {
    for (const m of this.members) {
      if (m.stopped) continue;
      try {
        const r = await post(m.address, "/raft/members", {}, 1500);
        if (r.status === 200) return r.body as never;
      } catch { /* next */ }
    }
    return undefined;
  }

  async leader(): Promise<Member | undefined> {
    for (const m of this.members) {
      if (m.stopped) continue;
      const s = await this.status(m);
      if (s?.role === "leader") return m;
    }
    return undefined;
  }

  async waitLeader(timeoutMs = 10_000): Promise<Member> {
    let found: Member | undefined;
    await this.waitFor(
      async () => (found = await this.leader()) !== undefined,
      timeoutMs,
      "a leader",
    );
    return found!;
  }

  async waitReady(m: Member, timeoutMs = 20_000): Promise<void> {
    await this.waitFor(
      async () => {
        const s = await this.status(m);
        return s !== undefined && Number(s.leader) > 0;
      },
      timeoutMs,
      `${m.address} to serve with a leader`,
    );
  }

  async waitFor(
    cond: () => Promise<boolean> | boolean,
    timeoutMs: number,
    what: string,
  ): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!(await cond())) {
      if (Date.now() > end) {
        throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}\n${this.logTail()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  logTail(lines = 15): string {
    return this.members.map((m) =>
      `--- m${m.index + 1} (${m.address})\n${m.log.slice(-lines).join("\n")}`
    ).join("\n");
  }
}

/**
 * Runs `body` against a new cluster and always tears it down; when `body` fails, the members'
 * last `tail` log lines are printed first, to say what the cluster was doing.
 */
export async function withCluster(
  opts: ClusterOptions,
  body: (c: ProcessCluster) => Promise<void>,
  tail = 25,
): Promise<void> {
  const c = new ProcessCluster(opts);
  try {
    await body(c);
  } catch (e) {
    console.error(c.logTail(tail));
    throw e;
  } finally {
    await c.teardown();
  }
}
