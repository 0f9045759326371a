// Shared helpers for the durable-storage tests.
import type { Entry } from "../../../lib/raft/types.ts";
import { join } from "node:path";

export function ent(index: number, term: number, text = `e${index}t${term}`): Entry {
  return { index, term, type: "normal", data: new TextEncoder().encode(text) };
}

export function ents(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(ent(i, term));
  return out;
}

/** A fresh temporary directory, removed by the returned cleanup function. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "twill-wal-test-" });
  return { dir, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

/** Copy a directory tree (the storage's files) so a test can damage the copy. */
export async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(join(from, e.name), join(to, e.name));
    else await Deno.copyFile(join(from, e.name), join(to, e.name));
  }
}

/** Collects warning lines instead of printing them. */
export function warnings(): { lines: string[]; warn: (line: string) => void } {
  const lines: string[] = [];
  return { lines, warn: (line) => lines.push(line) };
}
