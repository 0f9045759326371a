import assert from "node:assert/strict";
import { join } from "node:path";
import { readJson, writeJsonAtomic } from "../../../lib/store/wal/data_dir.ts";
import { tempDir } from "./helpers.ts";

Deno.test("identity files are written atomically and read back; a missing one is undefined", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const sub = join(dir, "data");
    assert.equal(await readJson(sub, "node.json"), undefined);
    await writeJsonAtomic(sub, "node.json", { nodeId: 3, clusterId: "abc" });
    await writeJsonAtomic(sub, "node.json", { nodeId: 4, clusterId: "abc" });
    assert.deepEqual(await readJson(sub, "node.json"), { nodeId: 4, clusterId: "abc" });
    assert.deepEqual([...Deno.readDirSync(sub)].map((e) => e.name), ["node.json"]);
    await Deno.writeTextFile(join(sub, "bad.json"), "{nope");
    await assert.rejects(
      () => readJson(sub, "bad.json"),
      /bad\.json is not valid JSON .*fix or remove/,
    );
  } finally {
    await cleanup();
  }
});
