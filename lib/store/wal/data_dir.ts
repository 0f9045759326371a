// Small JSON files in the data dir (node identity, cluster id, token, VTEP MAC), replaced
// atomically so that a crash never leaves a half-written one.
import { join } from "node:path";
import { ensureDir, writeFileAtomic } from "../../fs_atomic.ts";

/** The parsed content of `dir/name`, or undefined when the file does not exist. */
export async function readJson<T = unknown>(dir: string, name: string): Promise<T | undefined> {
  const path = join(dir, name);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(
      `data dir: ${path} is not valid JSON (${(e as Error).message}); fix or remove the file`,
    );
  }
}

/** Write `obj` as JSON to `dir/name` (temp file, fsync, rename, directory fsync). Creates dir. */
export async function writeJsonAtomic(dir: string, name: string, obj: unknown): Promise<void> {
  await ensureDir(dir);
  await writeFileAtomic(join(dir, name), new TextEncoder().encode(JSON.stringify(obj, null, 2)));
}
