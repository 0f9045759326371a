// twill install-cni into temporary directories (never the real /opt/cni/bin).
import assert from "node:assert/strict";
import { CONFLIST, isCompiled, launcherScript } from "../../cmd/install.ts";
import { DENO, installCni, listDir, MAIN, sh } from "./support.ts";

Deno.test("install-cni from source writes a working launcher and kube-flannel's conflist", async () => {
  const dir = await Deno.makeTempDir({ prefix: "twc-install" });
  try {
    // An old conflist is replaced whole.
    await Deno.mkdir(`${dir}/net.d`);
    await Deno.writeTextFile(`${dir}/net.d/10-flannel.conflist`, "old");
    const out = await installCni(`${dir}/bin`, `${dir}/net.d`);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(await listDir(`${dir}/bin`), ["flannel"]);
    assert.deepEqual(await listDir(`${dir}/net.d`), ["10-flannel.conflist"]);
    assert.equal((await Deno.stat(`${dir}/bin/flannel`)).mode! & 0o777, 0o755);
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(`${dir}/net.d/10-flannel.conflist`)),
      CONFLIST,
    );
    assert.equal(CONFLIST.plugins[0].type, "flannel");
    // The launcher is the plugin: a runtime execs it with CNI_COMMAND set.
    const v = await sh([`${dir}/bin/flannel`], `{"cniVersion":"1.0.0"}`, {
      CNI_COMMAND: "VERSION",
    });
    assert.equal(v.code, 0, v.stderr);
    assert.deepEqual(JSON.parse(v.stdout).supportedVersions, [
      "0.3.0",
      "0.3.1",
      "0.4.0",
      "1.0.0",
      "1.1.0",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("install-cni: compiled vs source, quoting, and a clear error for an unwritable target", async () => {
  assert.equal(isCompiled("/usr/local/bin/deno"), false);
  assert.equal(isCompiled("/opt/twill/dist/twill"), true);
  const s = launcherScript("/x/deno", "/it's/main.ts");
  assert.match(s, /^#!\/bin\/sh\n/);
  assert.ok(s.includes(`exec '/x/deno' run -A --quiet '/it'"'"'s/main.ts' "$@"`));
  const dir = await Deno.makeTempDir({ prefix: "twc-install" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "");
    const out = await installCni(`${dir}/file/bin`, `${dir}/c`);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /twill install-cni: .*writable/);
    const bad = await sh([DENO, "run", "-A", MAIN, "install-cni", "--frob"]);
    assert.equal(bad.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
