import assert from "node:assert/strict";
import { main } from "../../cmd/dispatch.ts";
import { VERSION } from "../../cmd/version.ts";

Deno.test("twill version prints the version from deno.json", async () => {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../main.ts", import.meta.url).pathname, "version"],
    stdout: "piped",
  });
  const out = await cmd.output();
  assert.equal(out.code, 0);
  assert.match(new TextDecoder().decode(out.stdout), new RegExp(`^twill ${VERSION} `));
});

Deno.test("an unknown command exits 2", async () => {
  const orig = console.error;
  const lines: string[] = [];
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    assert.equal(await main(["frobnicate"], {}), 2);
  } finally {
    console.error = orig;
  }
  assert.match(lines[0], /unknown command "frobnicate"/);
});

Deno.test("--help exits 0 and names every face", async () => {
  const orig = console.log;
  let text = "";
  console.log = (...a: unknown[]) => (text += a.join(" "));
  try {
    assert.equal(await main(["--help"], {}), 0);
  } finally {
    console.log = orig;
  }
  for (const face of ["agent", "ctl", "install-cni", "version", "CNI_COMMAND"]) {
    assert.ok(text.includes(face), face);
  }
});
