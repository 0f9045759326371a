// Snapshot files: `<index>-<term>.snap` (16 hex digits each, so names sort by index) holding
//
//   "TWSNAP1\n"  u32 LE metadata length  metadata JSON {index, term, confState}  data  u32 LE crc32
//
// where the crc covers everything before it. Written atomically; the newest `keep` are retained.
import { crc32 } from "node:zlib";
import { join } from "node:path";
import type { Snapshot } from "../../raft/types.ts";
import { decodeSnapshotMetadata, encodeJson } from "./codec.ts";
import { WalCorruptError } from "./errors.ts";
import { ensureDir, fsyncDir, removeTempFiles, writeFileAtomic } from "../../fs_atomic.ts";

const MAGIC = new TextEncoder().encode("TWSNAP1\n");
const NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export interface SnapshotFile {
  path: string;
  index: number;
  term: number;
}

export function snapshotFileName(index: number, term: number): string {
  return `${index.toString(16).padStart(16, "0")}-${term.toString(16).padStart(16, "0")}.snap`;
}

export function encodeSnapshot(snap: Snapshot): Uint8Array {
  const meta = encodeJson(snap.metadata);
  const out = new Uint8Array(MAGIC.length + 4 + meta.length + snap.data.length + 4);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(MAGIC.length, meta.length, true);
  out.set(meta, MAGIC.length + 4);
  out.set(snap.data, MAGIC.length + 4 + meta.length);
  const end = out.length - 4;
  view.setUint32(end, crc32(out.subarray(0, end)) >>> 0, true);
  return out;
}

/** Parse and verify a snapshot file's bytes; throws WalCorruptError naming `path`. */
export function decodeSnapshot(bytes: Uint8Array, path: string): Snapshot {
  const bad = (reason: string): never => {
    throw new WalCorruptError(path, undefined, reason);
  };
  if (bytes.length < MAGIC.length + 8) bad("snapshot file too short");
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) bad("not a snapshot file");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length - 4;
  if ((crc32(bytes.subarray(0, end)) >>> 0) !== view.getUint32(end, true)) {
    bad("snapshot crc mismatch");
  }
  const metaLen = view.getUint32(MAGIC.length, true);
  const metaStart = MAGIC.length + 4;
  if (metaStart + metaLen > end) bad("snapshot metadata length out of range");
  let metadata;
  try {
    metadata = decodeSnapshotMetadata(bytes.subarray(metaStart, metaStart + metaLen));
  } catch (e) {
    return bad((e as Error).message);
  }
  return { metadata, data: bytes.slice(metaStart + metaLen, end) };
}

/** The snapshot directory: listing, writing, loading and pruning snapshot files. */
export class SnapshotDir {
  constructor(readonly dir: string) {}

  async init(): Promise<void> {
    await ensureDir(this.dir);
    await removeTempFiles(this.dir);
  }

  /** Snapshot files, newest (highest index) first. */
  async list(): Promise<SnapshotFile[]> {
    const files: SnapshotFile[] = [];
    for await (const e of Deno.readDir(this.dir)) {
      const m = e.isFile ? NAME.exec(e.name) : null;
      if (m) {
        files.push({
          path: join(this.dir, e.name),
          index: parseInt(m[1], 16),
          term: parseInt(m[2], 16),
        });
      }
    }
    return files.sort((a, b) => b.index - a.index || b.term - a.term);
  }

  async write(snap: Snapshot): Promise<SnapshotFile> {
    const { index, term } = snap.metadata;
    const path = join(this.dir, snapshotFileName(index, term));
    await writeFileAtomic(path, encodeSnapshot(snap));
    return { path, index, term };
  }

  /**
   * The newest snapshot that reads back intact. A damaged newer file is skipped with a warning
   * (the log still reaches back to the older one, see DurableStorage's segment retention).
   */
  async loadNewest(
    warn: (line: string) => void,
  ): Promise<{ snapshot?: Snapshot; damaged: WalCorruptError[] }> {
    const damaged: WalCorruptError[] = [];
    for (const f of await this.list()) {
      try {
        const snap = decodeSnapshot(await Deno.readFile(f.path), f.path);
        if (snap.metadata.index !== f.index || snap.metadata.term !== f.term) {
          throw new WalCorruptError(f.path, undefined, "file name and content disagree");
        }
        return { snapshot: snap, damaged };
      } catch (e) {
        if (!(e instanceof WalCorruptError)) throw e;
        damaged.push(e);
        warn(`wal: skipping damaged snapshot ${f.path} (${e.reason}); trying an older one`);
      }
    }
    return { damaged };
  }

  /** Delete all but the newest `keep` snapshot files; returns the retained ones. */
  async prune(keep: number): Promise<SnapshotFile[]> {
    const files = await this.list();
    const old = files.slice(keep);
    for (const f of old) await Deno.remove(f.path);
    if (old.length > 0) await fsyncDir(this.dir);
    return files.slice(0, keep);
  }
}
