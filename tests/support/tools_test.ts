import assert from "node:assert/strict";
import { missingToolMessage, requireTools, toolPresent } from "./tools.ts";
import {
  ALL_PACKAGES,
  cannotInstallLine,
  DEMO_PACKAGES,
  notInstalled,
  PACKAGES,
} from "../../scripts/install-deps.ts";

Deno.test("requireTools names the Debian package of a missing tool, in one line", () => {
  const fake = [{ name: "twill-fake-pkg", tools: ["twill-no-such-tool", "/nonexistent/twill"] }];
  const want = "missing tool twill-no-such-tool: install the Debian package twill-fake-pkg " +
    "(apt-get install twill-fake-pkg)";
  assert.equal(missingToolMessage("twill-no-such-tool", "twill-fake-pkg"), want);
  assert.throws(() => requireTools(["twill-no-such-tool"], fake), { message: want });
  assert.throws(() => requireTools(["/nonexistent/twill"], fake), /Debian package twill-fake-pkg/);
});

Deno.test("requireTools passes a present command or path, and refuses a tool of no listed package", () => {
  const deno = Deno.execPath();
  const dir = deno.slice(0, deno.lastIndexOf("/"));
  const name = deno.slice(dir.length + 1);
  const fake = [{ name: "deno-pkg", tools: [deno, name] }];
  requireTools([deno], fake);
  const path = Deno.env.get("PATH");
  Deno.env.set("PATH", `/nonexistent:${dir}`);
  try {
    assert.equal(toolPresent(name), true);
    requireTools([name], fake);
  } finally {
    if (path === undefined) Deno.env.delete("PATH");
    else Deno.env.set("PATH", path);
  }
  assert.throws(() => requireTools(["gcc"]), /gcc is in no package of scripts\/install-deps\.ts/);
});

Deno.test("notInstalled reads dpkg-query's status lines; absent and half-installed are missing", () => {
  const lines = [
    "iproute2 install ok installed",
    "tcpdump deinstall ok config-files",
    "podman install ok half-configured",
    "",
  ].join("\n");
  assert.deepEqual(
    notInstalled(lines, ["iproute2", "tcpdump", "podman", "etcd-server"]),
    ["tcpdump", "podman", "etcd-server"],
  );
  assert.deepEqual(notInstalled("", []), []);
});

Deno.test("the package list: unique names, the demo's subset, the upcoming data-plane packages", () => {
  assert.equal(new Set(ALL_PACKAGES).size, ALL_PACKAGES.length);
  assert.deepEqual([...DEMO_PACKAGES].sort(), ["iproute2", "iputils-ping", "nftables"]);
  for (const p of ["tcpdump", "podman", "etcd-server", "wireguard-go", "strongswan-swanctl"]) {
    assert.ok(ALL_PACKAGES.includes(p), p);
  }
  const tools = PACKAGES.flatMap((p) => p.tools);
  assert.equal(new Set(tools).size, tools.length, "a tool belongs to one package");
});

Deno.test("not root: one line naming what is missing and that root is needed", () => {
  const line = cannotInstallLine(["tcpdump", "podman"], "not-root");
  assert.ok(!line.includes("\n"));
  assert.match(line, /missing Debian packages tcpdump podman; run as root/);
});

Deno.test("deno task test and deno task demo install their packages first", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)))
    .tasks as Record<string, string>;
  assert.match(tasks.test, /^deno run -A scripts\/install-deps\.ts && deno test /);
  const demo = await Deno.readTextFile(new URL("../../scripts/demo.ts", import.meta.url));
  assert.match(demo, /installPackages\(DEMO_PACKAGES\)/);
});

Deno.test("every tool the list names is where the list says, once install-deps has run", () => {
  requireTools(PACKAGES.flatMap((p) => p.tools));
});
