// Crash-safe file replacement: write a temporary file, fsync it, rename it over the target,
// fsync the directory. After a crash the target holds either the old or the new content.
import { basename, dirname, join, resolve } from "node:path";
import { writeAll } from "./bytes.ts";

export const TEMP_SUFFIX = ".tmp";

/** fsync a directory so that creations, renames and removals in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

/** Write the whole buffer synchronously (for small appends that only reach the page cache). */
export function writeAllSync(file: Deno.FsFile, bytes: Uint8Array): void {
  let at = 0;
  while (at < bytes.length) at += file.writeSync(bytes.subarray(at));
}

/** Replace `path` with `bytes` crash-safely; the file gets `mode` (secrets keep the 0600 default). */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
  mode = 0o600,
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}${TEMP_SUFFIX}`);
  const f = await Deno.open(tmp, { write: true, create: true, truncate: true, mode });
  try {
    await writeAll(f, bytes);
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.chmod(tmp, mode);
  await Deno.rename(tmp, path);
  await fsyncDir(dir);
}

/** Replace `path` with `text` crash-safely (see writeFileAtomic). */
export function writeTextFileAtomic(path: string, text: string, mode = 0o600): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text), mode);
}

/** Remove temporary files a crash may have left behind in `dir`. */
export async function removeTempFiles(dir: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.startsWith(".") && e.name.endsWith(TEMP_SUFFIX)) {
      await Deno.remove(join(dir, e.name));
    }
  }
}

/** Create `dir` (and missing parents, mode 0700) so that its existence is durable. */
export async function ensureDir(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = resolve(dir); !(await isDir(d)); d = dirname(d)) {
    missing.push(d);
    if (dirname(d) === d) break;
  }
  if (missing.length === 0) return;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  for (const d of missing) await fsyncDir(dirname(d));
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
