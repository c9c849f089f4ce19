/**
 * Progress across ranks without extra MPI traffic: each rank keeps a small JSON snapshot in the
 * tool's `logs/` folder (`rank_progress.ts`) with what it did and the run's totals; rank 0 adds
 * up what the ranks did into one line (`progress_display.ts`). This module is the snapshot's format, its file and the line.
 * @module
 */

import { join } from "node:path";
import { writeAll } from "../io/write_all.ts";
import { formatBytes, formatDuration } from "../format.ts";

/** How often a rank writes its snapshot while it works, in ms. */
export const SNAPSHOT_INTERVAL_MS = 1000;

/** One rank's progress. */
export interface RankProgress {
  /** The rank. */
  rank: number;
  /**
   * Files of the whole run, over all ranks (the same in every rank's snapshot: ranks take
   * files from each other's shares, so no rank's own total is known in advance).
   */
  filesTotal: number;
  /** Bytes of the whole run, over all ranks (the same in every rank's snapshot). */
  bytesTotal: number;
  /** Files this rank finished (verified or failed), its own and those it took over. */
  filesDone: number;
  /**
   * Bytes of the finished files, plus the bytes already copied of the files in flight (each
   * counted up to its size), so that a large file counts while it is being copied.
   */
  bytesDone: number;
  /** Files failed. */
  failed: number;
  /** When the rank started (epoch ms). */
  startedMs: number;
}

function progressPath(logs: string, rank: number): string {
  return join(logs, `progress_rank${rank}.json`);
}

/**
 * A rank's snapshot file, open for the whole run. Each write replaces the JSON in place, padded
 * with spaces to the longest one written: no new file and no rename per update, so progress
 * costs no metadata traffic on a parallel file system. A reader that meets a write half done
 * gets text that does not parse and skips the rank this once.
 */
export class SnapshotFile {
  readonly #file: Deno.FsFile;
  readonly #encoder = new TextEncoder();
  #length = 0;

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /** Creates (or empties) the snapshot file of `rank` in the `logs` folder. */
  static async open(logs: string, rank: number): Promise<SnapshotFile> {
    const file = await Deno.open(progressPath(logs, rank), {
      write: true,
      create: true,
      truncate: true,
    });
    return new SnapshotFile(file);
  }

  /** Replaces the snapshot with `p`. */
  async write(p: RankProgress): Promise<void> {
    const json = JSON.stringify(p);
    this.#length = Math.max(this.#length, json.length);
    await this.#file.seek(0, Deno.SeekMode.Start);
    await writeAll(this.#file, this.#encoder.encode(json.padEnd(this.#length)));
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }
}

/** Reads the snapshots of ranks `0..size-1` (missing ones are skipped). */
export async function readProgress(logs: string, size: number): Promise<RankProgress[]> {
  const out: RankProgress[] = [];
  for (let r = 0; r < size; r++) {
    try {
      out.push(JSON.parse(await Deno.readTextFile(progressPath(logs, r))));
    } catch {
      // not written yet
    }
  }
  return out;
}

/**
 * One progress line from the ranks' snapshots: what they did, added up, out of the run's
 * totals (which every snapshot carries).
 */
export function progressLine(all: RankProgress[], nowMs: number): string {
  const sum = (f: (p: RankProgress) => number) => all.reduce((s, p) => s + f(p), 0);
  const files = sum((p) => p.filesDone);
  const filesTotal = Math.max(files, ...all.map((p) => p.filesTotal));
  const bytes = sum((p) => p.bytesDone);
  const bytesTotal = Math.max(bytes, ...all.map((p) => p.bytesTotal));
  const start = Math.min(...all.map((p) => p.startedMs));
  const secs = (nowMs - start) / 1000;
  const rate = secs > 0 ? bytes / secs : 0;
  const left = rate > 0 ? (bytesTotal - bytes) / rate : Infinity;
  return `progress: ${files}/${filesTotal} files, ${formatBytes(bytes)}/${
    formatBytes(bytesTotal)
  }` +
    `, ${formatBytes(rate)}/s, ${sum((p) => p.failed)} failed, ` +
    `time left ${
      bytes >= bytesTotal ? "0s" : formatDuration(left)
    } (${all.length} ranks reporting)`;
}
