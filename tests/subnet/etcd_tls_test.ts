// External etcd with TLS and auth (Flannel's --etcd-cafile/-certfile/-keyfile/-username/
// -password): the flag checks, then the one etcd client and the registry against a real etcd 3.4
// started with --client-cert-auth and certificates made here with openssl, with and without
// etcd's user auth. Spawns etcd: run under flock /tmp/twill-kernel.lock.
import assert from "node:assert/strict";
import { EtcdClient, EtcdClientError, text, type WatchResponse } from "../../lib/etcd/client.ts";
import { EtcdClientRegistry } from "../../lib/subnet/etcd_client_registry.ts";
import { LeaseManager } from "../../lib/subnet/manager.ts";
import { backendConfigParser } from "../../lib/backend/registry.ts";
import { checkExternalEtcdFlags, readExternalEtcdAccess } from "../../lib/daemon/external_etcd.ts";
import { etcdctl, type EtcdTlsFiles, makeEtcdTlsFiles, startEtcdTls } from "./etcd_helper.ts";

const PASSWORD = "twa-Secret-pw-7";
const noNote = () => {};

function flags(o: Record<string, string | undefined>, endpoints = ["https://127.0.0.1:1"]) {
  return {
    etcdEndpoints: endpoints,
    etcdCaFile: o.ca,
    etcdCertFile: o.cert,
    etcdKeyFile: o.key,
    etcdUsername: o.user,
    etcdPassword: o.password,
  };
}

Deno.test("external etcd flags: each mistake is one clear line", () => {
  const cases: [Record<string, string>, string[] | undefined, RegExp][] = [
    [{ cert: "c.pem" }, undefined, /^--etcd-certfile needs --etcd-keyfile/],
    [{ key: "k.pem" }, undefined, /^--etcd-keyfile needs --etcd-certfile/],
    [{ user: "root" }, undefined, /^--etcd-username needs --etcd-password/],
    [{ password: PASSWORD }, undefined, /^--etcd-password needs --etcd-username$/],
    [{ ca: "ca.pem" }, ["http://127.0.0.1:2379"], /--etcd-cafile need https:\/\/ endpoints/],
    [
      { cert: "c.pem", key: "k.pem" },
      ["https://127.0.0.1:2379", "127.0.0.1:2380"],
      /--etcd-certfile need https:\/\/ endpoints, but --etcd-endpoints has 127\.0\.0\.1:2380/,
    ],
    [
      { user: "root", password: PASSWORD },
      ["https://127.0.0.1:2379", "http://127.0.0.1:2380"],
      /^--etcd-endpoints mixes https:\/\/ and plain endpoints \(http:\/\/127\.0\.0\.1:2380\); use https:\/\/ for all$/,
    ],
  ];
  for (const [o, endpoints, want] of cases) {
    assert.throws(() => checkExternalEtcdFlags(flags(o, endpoints)), (e: Error) => {
      assert.match(e.message, want);
      assert.ok(!e.message.includes("\n") && !e.message.includes(PASSWORD), e.message);
      return true;
    });
  }
  checkExternalEtcdFlags(flags({ user: "root", password: PASSWORD }, ["http://127.0.0.1:2379"]));
  checkExternalEtcdFlags(flags({ ca: "ca.pem", cert: "c.pem", key: "k.pem" }));
});

Deno.test("external etcd files: unreadable or not PEM is one line; no CA file means the system's CAs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twa-etcd-tls-files-" });
  try {
    const tls = await makeEtcdTlsFiles(dir);
    await Deno.writeTextFile(`${dir}/junk.pem`, "not a certificate\n");
    const bad: [Record<string, string>, RegExp][] = [
      [
        { ca: `${dir}/missing.pem` },
        /--etcd-cafile .*missing\.pem: cannot read it \(no such file\)$/,
      ],
      [{ ca: `${dir}/junk.pem` }, /--etcd-cafile .*junk\.pem: not a PEM certificate$/],
      [
        { ca: tls.caCert, cert: tls.clientCert, key: tls.clientCert },
        /--etcd-keyfile .*client\.crt: not a PEM private key$/,
      ],
    ];
    for (const [o, want] of bad) {
      await assert.rejects(readExternalEtcdAccess(flags(o), noNote), want);
    }
    const notes: string[] = [];
    const access = await readExternalEtcdAccess(
      flags({ user: "root", password: PASSWORD }),
      (level, event, detail) => notes.push(`${level} ${event} ${detail}`),
      { bundles: [`${dir}/absent.pem`, tls.otherCaCert] },
    );
    assert.equal(access.tls?.caCerts[0], await Deno.readTextFile(tls.otherCaCert));
    assert.equal(access.tls?.cert, undefined);
    assert.deepEqual(access.user, { name: "root", password: PASSWORD });
    assert.deepEqual(notes, [
      `info etcd_system_cas no --etcd-cafile: verifying etcd against ${tls.otherCaCert}`,
    ]);
    await assert.rejects(
      readExternalEtcdAccess(flags({}), noNote, { bundles: [`${dir}/absent.pem`] }),
      /need the system's CA bundle, and none of .*absent\.pem exists; give --etcd-cafile$/,
    );
    const clear: string[] = [];
    await readExternalEtcdAccess(
      flags({ user: "root", password: PASSWORD }, ["http://127.0.0.1:2379"]),
      (level, event) => clear.push(`${level} ${event}`),
    );
    assert.deepEqual(clear, ["warn etcd_password_in_clear"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("twill agent: a bad external etcd flag, from the command line or FLANNELD_ETCD_*, is one line and exit 1 at start", async () => {
  const agent = async (args: string[], env: Record<string, string>) => {
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("../../main.ts", import.meta.url).pathname, "agent", ...args],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
    assert.ok(!out.includes(PASSWORD), "the password is never printed");
    return { code: o.code, last: out.trim().split("\n").at(-1) };
  };
  const endpoints = ["--etcd-endpoints", "https://127.0.0.1:9"];
  const user = { FLANNELD_ETCD_USERNAME: "root", FLANNELD_ETCD_PASSWORD: PASSWORD };
  assert.deepEqual(await agent([...endpoints, "--etcd-certfile", "/nonexistent/c.pem"], user), {
    code: 1,
    last: "twill agent: --etcd-certfile needs --etcd-keyfile (the certificate's private key)",
  });
  assert.deepEqual(
    await agent(endpoints, {
      ...user,
      FLANNELD_ETCD_CERTFILE: "/nonexistent/c.pem",
      FLANNELD_ETCD_KEYFILE: "/nonexistent/k.pem",
      FLANNELD_ETCD_CAFILE: "/nonexistent/ca.pem",
    }),
    {
      code: 1,
      last: "twill agent: --etcd-cafile /nonexistent/ca.pem: cannot read it (no such file)",
    },
  );
  assert.deepEqual(await agent([...endpoints, "--etcd-username", "root"], {}), {
    code: 1,
    last: "twill agent: --etcd-username needs --etcd-password (or FLANNELD_ETCD_PASSWORD)",
  });
});

/** Starts a TLS etcd on fresh certificates; `body` runs, then everything is removed. */
async function withTlsEtcd(
  opts: { authTokenTtl?: number },
  body: (endpoint: string, tls: EtcdTlsFiles) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "twa-etcd-tls-" });
  try {
    const tls = await makeEtcdTlsFiles(dir);
    const etcd = await startEtcdTls(tls, opts);
    try {
      await body(etcd.endpoint, tls);
    } finally {
      await etcd.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const read = (p: string) => Deno.readTextFileSync(p);

Deno.test("EtcdClient against etcd 3.4 with --client-cert-auth: the client certificate works; none, or a wrong CA, fails clearly", async () => {
  await withTlsEtcd({}, async (endpoint, tls) => {
    const good = new EtcdClient({
      endpoints: [endpoint],
      tls: { caCerts: [read(tls.caCert)], cert: read(tls.clientCert), key: read(tls.clientKey) },
    });
    await good.put("/twa/tls", "over tls");
    const r = await good.range("/twa/tls");
    assert.equal(text(r.kvs[0].value), "over tls");

    const noCert = new EtcdClient({ endpoints: [endpoint], tls: { caCerts: [read(tls.caCert)] } });
    await assert.rejects(noCert.range("/twa/tls"), (e: EtcdClientError) => {
      assert.equal(e.grpcCode, 14);
      assert.match(e.message, /no endpoint reachable for \/v3\/kv\/range/);
      assert.match(e.message, /certificate|handshake|alert|reset|closed/i);
      return true;
    });
    const wrongCa = new EtcdClient({
      endpoints: [endpoint],
      tls: {
        caCerts: [read(tls.otherCaCert)],
        cert: read(tls.clientCert),
        key: read(tls.clientKey),
      },
    });
    await assert.rejects(wrongCa.range("/twa/tls"), (e: EtcdClientError) => {
      assert.equal(e.grpcCode, 14);
      assert.match(e.message, /UnknownIssuer|certificate/i);
      return true;
    });
  });
});

Deno.test("EtcdClient with etcd's user auth over TLS: the password works, a wrong one is a clear error, an expired token is renewed", async () => {
  await withTlsEtcd({ authTokenTtl: 1 }, async (endpoint, tls) => {
    await etcdctl(endpoint, tls, ["user", "add", `root:${PASSWORD}`]);
    await etcdctl(endpoint, tls, ["auth", "enable"]);
    const tlsOpts = {
      caCerts: [read(tls.caCert)],
      cert: read(tls.clientCert),
      key: read(tls.clientKey),
    };
    // The certificate alone (no user in it) no longer reads anything.
    const anon = new EtcdClient({ endpoints: [endpoint], tls: tlsOpts });
    await assert.rejects(anon.range("/twa/auth"), EtcdClientError);

    const c = new EtcdClient({
      endpoints: [endpoint],
      tls: tlsOpts,
      user: { name: "root", password: PASSWORD },
    });
    await c.put("/twa/auth", "v1");
    assert.equal(text((await c.range("/twa/auth")).kvs[0].value), "v1");

    // etcd forgets an idle token after --auth-token-ttl; the client authenticates again, for a
    // read, a write and a new watch alike. First show that etcd does reject the old token.
    const http = Deno.createHttpClient(tlsOpts);
    try {
      const auth = await fetch(`${endpoint}/v3/auth/authenticate`, {
        client: http,
        method: "POST",
        body: JSON.stringify({ name: "root", password: PASSWORD }),
      }).then((r) => r.json()) as { token: string };
      await new Promise((r) => setTimeout(r, 3_000));
      const stale = await fetch(`${endpoint}/v3/kv/range`, {
        client: http,
        method: "POST",
        headers: { authorization: auth.token },
        body: JSON.stringify({ key: btoa("/twa/auth") }),
      }).then((r) => r.text());
      assert.match(stale, /invalid auth token/);
    } finally {
      http.close();
    }
    await c.put("/twa/auth", "v2");
    assert.equal(text((await c.range("/twa/auth")).kvs[0].value), "v2");
    await new Promise((r) => setTimeout(r, 3_000));
    const ac = new AbortController();
    try {
      const it = c.watch("/twa/auth", { signal: ac.signal, startRevision: 1 })[
        Symbol.asyncIterator
      ]();
      const created = (await it.next()).value as WatchResponse;
      assert.equal(created.canceled, false, created.cancelReason);
      const events = (await it.next()).value as WatchResponse;
      assert.deepEqual(events.events.map((e) => text(e.kv.value)), ["v1", "v2"]);
    } finally {
      ac.abort();
    }

    const wrong = new EtcdClient({
      endpoints: [endpoint],
      tls: tlsOpts,
      user: { name: "root", password: "not-the-password" },
    });
    await assert.rejects(wrong.range("/twa/auth"), (e: EtcdClientError) => {
      assert.match(e.message, /^etcd client: authenticating as etcd user "root" failed: /);
      assert.match(e.message, /invalid user ID or password/);
      assert.ok(!e.message.includes("not-the-password") && !e.message.includes(PASSWORD));
      return true;
    });
  });
});

Deno.test("registry acquires a subnet lease through etcd 3.4 with client certificates and user auth, from the agent's flags", async () => {
  await withTlsEtcd({}, async (endpoint, tls) => {
    await etcdctl(endpoint, tls, ["user", "add", `root:${PASSWORD}`]);
    await etcdctl(endpoint, tls, ["auth", "enable"]);
    const access = await readExternalEtcdAccess(
      flags({
        ca: tls.caCert,
        cert: tls.clientCert,
        key: tls.clientKey,
        user: "root",
        password: PASSWORD,
      }, [endpoint]),
      noNote,
    );
    const client = new EtcdClient({ endpoints: [endpoint], ...access });
    const P = "/coreos.com/network";
    await client.put(`${P}/config`, '{"Network":"10.9.0.0/16","Backend":{"Type":"vxlan"}}');
    const reg = new EtcdClientRegistry(client);
    const m = new LeaseManager(reg, {
      prefix: P,
      ttlSeconds: 60,
      now: () => Date.now(),
      randomInt: () => 0,
    });
    const lease = await m.acquire(await m.getNetworkConfig(backendConfigParser), {
      publicIP: "192.0.2.7",
      publicIPv6: null,
      backendType: "vxlan",
      backendData: { VNI: 1, VtepMAC: "02:00:00:00:00:07" },
    }, null);
    const kv = await reg.get(`${P}/subnets/10.9.1.0-24`);
    assert.ok(kv, "the lease is in etcd");
    assert.equal(kv.lease, lease.storeLease);
    const listed = await etcdctl(endpoint, tls, [
      `--user=root:${PASSWORD}`,
      "get",
      "--prefix",
      "--keys-only",
      `${P}/subnets/`,
    ]);
    assert.match(listed, /\/coreos\.com\/network\/subnets\/10\.9\.1\.0-24/);
    const renewed = await m.renew(lease);
    assert.ok(renewed.modRevision > lease.modRevision);
  });
});
