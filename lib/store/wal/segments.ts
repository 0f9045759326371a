// The log's segment files, `<seq>.wal` (16 hex digits): opening and scanning them (cutting off a
// torn tail of the last one), appending with one write and at most one fdatasync, starting a new
// segment when the current one is full, and deleting old ones after a snapshot.
import { join } from "node:path";
import { encodeHardState, encodeJson, type SegmentHeader } from "./codec.ts";
import { WalCorruptError, WalInconsistentError } from "./errors.ts";
import {
  ensureDir,
  fsyncDir,
  removeTempFiles,
  writeAllSync,
  writeFileAtomic,
} from "../../fs_atomic.ts";
import { encodeRecord, RecordType, scanRecords } from "./record.ts";
import { concatBytes } from "../../bytes.ts";
import type { ScannedSegment } from "./replay.ts";
import type { HardState } from "../../raft/types.ts";

const NAME = /^([0-9a-f]{16})\.wal$/;

export function segmentFileName(seq: number): string {
  return `${seq.toString(16).padStart(16, "0")}.wal`;
}

export interface SegmentInfo {
  seq: number;
  path: string;
  /** Highest log index any record in the segment mentions (0 for none). */
  maxIndex: number;
}

/** Timing of the durable writes, for metrics and the benchmark. */
export interface WalStats {
  writes: number;
  syncs: number;
  bytes: number;
  syncMillis: number;
}

export class SegmentLog {
  private segs: SegmentInfo[] = [];
  private file: Deno.FsFile | undefined;
  private size = 0;
  readonly stats: WalStats = { writes: 0, syncs: 0, bytes: 0, syncMillis: 0 };

  private constructor(readonly dir: string) {}

  /**
   * Open the segment directory and scan every segment. A torn record at the very end of the last
   * segment is cut off (with a warning); any other damage throws WalCorruptError.
   */
  static async open(
    dir: string,
    warn: (line: string) => void,
  ): Promise<{ log: SegmentLog; scanned: ScannedSegment[] }> {
    await ensureDir(dir);
    await removeTempFiles(dir);
    const log = new SegmentLog(dir);
    const found: { seq: number; path: string }[] = [];
    for await (const e of Deno.readDir(dir)) {
      const m = e.isFile ? NAME.exec(e.name) : null;
      if (m) found.push({ seq: parseInt(m[1], 16), path: join(dir, e.name) });
    }
    found.sort((a, b) => a.seq - b.seq);
    const scanned: ScannedSegment[] = [];
    for (let i = 0; i < found.length; i++) {
      const { seq, path } = found[i];
      if (i > 0 && seq !== found[i - 1].seq + 1) {
        throw new WalInconsistentError(
          dir,
          `segment ${segmentFileName(found[i - 1].seq + 1)} is missing`,
        );
      }
      const bytes = await Deno.readFile(path);
      const { records, end } = scanRecords(bytes);
      const isLast = i === found.length - 1;
      if (end.kind === "corrupt" || (end.kind === "torn" && !isLast)) {
        throw new WalCorruptError(path, end.offset, end.reason);
      }
      let size = bytes.length;
      if (end.kind === "torn") {
        if (records.length === 0) throw new WalCorruptError(path, end.offset, end.reason);
        warn(
          `wal: truncated a torn record at the end of ${path} at offset ${end.offset} ` +
            `(${end.reason}); the last unfinished write is discarded`,
        );
        await Deno.truncate(path, end.offset);
        const f = await Deno.open(path, { write: true });
        try {
          await f.sync();
        } finally {
          f.close();
        }
        size = end.offset;
      }
      if (records.length === 0) throw new WalCorruptError(path, 0, "segment is empty");
      scanned.push({ path, seq, records });
      log.segs.push({ seq, path, maxIndex: 0 });
      if (isLast) log.size = size;
    }
    if (log.segs.length > 0) {
      log.file = await Deno.open(log.segs[log.segs.length - 1].path, { write: true, append: true });
    }
    return { log, scanned };
  }

  get segments(): readonly SegmentInfo[] {
    return this.segs;
  }

  /** Bytes in the segment being appended to. */
  get currentBytes(): number {
    return this.size;
  }

  /** Record what replay found: the highest index each segment mentions. */
  setMaxIndexes(maxIndexes: readonly number[]): void {
    this.segs.forEach((s, i) => s.maxIndex = maxIndexes[i] ?? 0);
  }

  /** Append one buffer with one write; fdatasync once when `sync`. */
  async append(bytes: Uint8Array, sync: boolean, maxIndex: number): Promise<void> {
    if (!this.file) throw new Error("wal: no open segment (call roll first)");
    if (bytes.length > 0) {
      // A synchronous write: it only copies into the page cache (microseconds), while an async
      // one costs a thread hop and an event-loop turn on every Ready. The fdatasync stays async.
      writeAllSync(this.file, bytes);
      this.size += bytes.length;
      this.stats.writes++;
      this.stats.bytes += bytes.length;
      const seg = this.segs[this.segs.length - 1];
      seg.maxIndex = Math.max(seg.maxIndex, maxIndex);
    }
    if (sync) {
      const t0 = performance.now();
      await this.file.syncData();
      this.stats.syncMillis += performance.now() - t0;
      this.stats.syncs++;
    }
  }

  /**
   * Start the next segment: its header says where the log stands (prevIndex/prevTerm), followed
   * by the hard state and metadata so that older segments can later be deleted whole. The new
   * file appears atomically (written, fsynced, renamed, directory fsynced).
   */
  async roll(
    prevIndex: number,
    prevTerm: number,
    hardState: HardState,
    metadata: Record<string, unknown> | undefined,
  ): Promise<void> {
    const seq = this.segs.length > 0 ? this.segs[this.segs.length - 1].seq + 1 : 1;
    const header: SegmentHeader = { seq, prevIndex, prevTerm };
    const parts = [
      encodeRecord(RecordType.segmentHeader, encodeJson(header)),
      encodeRecord(RecordType.hardState, encodeHardState(hardState)),
    ];
    if (metadata) parts.push(encodeRecord(RecordType.metadata, encodeJson(metadata)));
    const bytes = concatBytes(parts);
    const path = join(this.dir, segmentFileName(seq));
    // The old segment's data must be durable before a newer segment can exist.
    if (this.file) {
      await this.file.syncData();
      this.file.close();
    }
    await writeFileAtomic(path, bytes);
    this.file = await Deno.open(path, { write: true, append: true });
    this.segs.push({ seq, path, maxIndex: 0 });
    this.size = bytes.length;
  }

  /**
   * Delete the oldest segments whose every index is at or below `index` (never the one being
   * appended to). Returns the deleted paths.
   */
  async removeThrough(index: number): Promise<string[]> {
    const removed: string[] = [];
    while (this.segs.length > 1 && this.segs[0].maxIndex <= index) {
      const seg = this.segs.shift()!;
      await Deno.remove(seg.path);
      removed.push(seg.path);
    }
    if (removed.length > 0) await fsyncDir(this.dir);
    return removed;
  }

  close(): void {
    this.file?.close();
    this.file = undefined;
  }
}
