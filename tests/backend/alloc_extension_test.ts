// alloc (a lease and nothing else) and extension's pure parts and command runner: fields, the
// split-and-expand of a command line as Flannel does it (no shell), the per-subnet variables and
// stdin, BackendData from PreStartupCommand's stdout, and a failing command's stderr. Also the
// backend-switch detection every backend shares.
import assert from "node:assert/strict";
import { ALLOC } from "../../lib/backend/alloc.ts";
import { backendSwitches, backendSwitchMessage } from "../../lib/backend/backend.ts";
import {
  commandArgv,
  expandVars,
  EXTENSION,
  parseExtensionConfig,
  runCommand,
  subnetEnv,
  subnetStdin,
} from "../../lib/backend/extension.ts";
import { parseCIDR } from "../../lib/net/cidr.ts";
import { silentLogger } from "../../lib/log.ts";
import { NetConfigError } from "../../lib/subnet/config.ts";
import { encodeLeaseAttrs, type Lease } from "../../lib/subnet/lease.ts";

const ctx = {
  iface: {
    name: "eth0",
    index: 2,
    mtu: 1500,
    address: "10.99.0.1",
    prefixLen: 24,
    address6: null,
    prefixLen6: 0,
  },
  publicIP: "10.99.0.1",
  network: parseCIDR("10.50.0.0/16"),
  network6: null,
  dataDir: "/nonexistent",
  log: silentLogger,
};

function lease(n: number, type: string, data?: unknown): Lease {
  return {
    subnet: parseCIDR(`10.50.${n}.0/24`),
    ipv6Subnet: null,
    attrs: { publicIP: `10.99.0.${n}`, publicIPv6: null, backendType: type, backendData: data },
    modRevision: 0n,
    storeLease: 0n,
    expiresAt: null,
  };
}

Deno.test("alloc: the lease names alloc with no data; nothing is programmed", async () => {
  const be = await ALLOC.init(ALLOC.parseConfig(() => undefined), ctx);
  assert.equal(be.mtu, 1500);
  assert.equal(
    encodeLeaseAttrs(be.leaseAttrs()),
    '{"PublicIP":"10.99.0.1","PublicIPv6":null,"BackendType":"alloc"}',
  );
  const r = await be.reconcile([lease(2, "alloc")]);
  assert.deepEqual([r.added, r.removed, r.peersProgrammed, r.errors], [0, 0, 0, ""]);
  assert.equal(await be.applyEvents([{ type: "added", lease: lease(3, "alloc") }]), "");
});

Deno.test("extension config: four command strings; a non-string is refused", () => {
  const c = parseExtensionConfig((k) =>
    ({ SubnetAddCommand: " /bin/x $SUBNET " } as Record<string, unknown>)[k]
  );
  assert.deepEqual(c, {
    type: "extension",
    preStartupCommand: "",
    postStartupCommand: "",
    subnetAddCommand: "/bin/x $SUBNET",
    subnetRemoveCommand: "",
  });
  assert.throws(
    () => parseExtensionConfig((k) => (k === "PreStartupCommand" ? ["ls"] : undefined)),
    (e) => e instanceof NetConfigError && /PreStartupCommand must be a string/.test(e.message),
  );
});

Deno.test("extension command lines: split on white space, $VAR and ${VAR} expanded, no shell", () => {
  const env = { SUBNET: "10.50.2.0/24", PUBLIC_IP: "10.99.0.2" };
  assert.deepEqual(commandArgv("  /bin/hook  add\t$SUBNET via:${PUBLIC_IP} $NOPE 'a b' | x", env), [
    "/bin/hook",
    "add",
    "10.50.2.0/24",
    "via:10.99.0.2",
    "",
    "'a",
    "b'",
    "|",
    "x",
  ]);
  assert.equal(expandVars("$SUBNET$SUBNET", env), "10.50.2.0/2410.50.2.0/24");
});

Deno.test("extension per-subnet variables and stdin: SUBNET, PUBLIC_IP, BackendData + newline", () => {
  const l = lease(2, "extension", "peer-data");
  assert.deepEqual(subnetEnv(l), { SUBNET: "10.50.2.0/24", PUBLIC_IP: "10.99.0.2" });
  assert.equal(subnetStdin(l), "peer-data\n");
  assert.equal(subnetStdin(lease(3, "extension")), "\n");
});

Deno.test("extension runCommand: env and stdin reach the program; failure keeps stderr", async () => {
  const ok = await runCommand("/bin/sh -c read\\ x;echo\\ $$x-$SUBNET", { SUBNET: "s1" }, "in\n");
  // no shell splits the words: sh gets exactly one -c argument, with the backslashes kept
  assert.equal(ok.ok, false);
  const echo = await runCommand("/bin/echo out $SUBNET", { SUBNET: "10.50.2.0/24" }, "\n");
  assert.deepEqual([echo.ok, echo.stdout], [true, "out 10.50.2.0/24"]);
  const cat = await runCommand("/bin/cat", {}, "peer-data\n");
  assert.equal(cat.stdout, "peer-data");
  const bad = await runCommand("/bin/ls /nonexistent-twill-path", {}, "\n");
  assert.equal(bad.ok, false);
  assert.match(bad.stderr, /nonexistent-twill-path/);
  const missing = await runCommand("/nonexistent/hook", {}, "\n");
  assert.equal(missing.ok, false);
});

Deno.test("extension: PreStartupCommand's stdout is BackendData (a JSON string); failure is fatal", async () => {
  const cfg = parseExtensionConfig((
    k,
  ) => (k === "PreStartupCommand" ? "/bin/echo hello" : undefined));
  const be = await EXTENSION.init(cfg, ctx);
  assert.equal(
    encodeLeaseAttrs(be.leaseAttrs()),
    '{"PublicIP":"10.99.0.1","PublicIPv6":null,"BackendType":"extension","BackendData":"hello"}',
  );
  const failing = parseExtensionConfig((
    k,
  ) => (k === "PreStartupCommand" ? "/bin/ls /nonexistent-x" : undefined));
  await assert.rejects(
    () => EXTENSION.init(failing, ctx),
    /PreStartupCommand failed \(exit 2\): .*nonexistent-x/,
  );
});

Deno.test("backend switch: leases of another type are found and named in one line", () => {
  const leases = [lease(1, "vxlan"), lease(2, "wireguard"), lease(3, "vxlan")];
  const s = backendSwitches(leases, "wireguard", "10.99.0.1");
  assert.equal(s.own?.attrs.publicIP, "10.99.0.1");
  assert.deepEqual(s.peers.map((l) => l.attrs.publicIP), ["10.99.0.3"]);
  const text = backendSwitchMessage(s, "wireguard")!;
  assert.match(
    text,
    /^this node's lease and 1 peer lease\(s\) carry backend type vxlan but the config says wireguard: .*reset/,
  );
  assert.ok(!text.includes("\n"));
  assert.equal(
    backendSwitchMessage(backendSwitches([lease(2, "wireguard")], "wireguard", "x"), "wireguard"),
    null,
  );
});
