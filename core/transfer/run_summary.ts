/**
 * What a run did: each rank's report, and the summary of all of them that rank 0 prints and
 * writes to `run_summary.json` (which `status` reads back).
 * @module
 */

import { formatBytes } from "../format.ts";
import { formatDuration } from "../format.ts";

/** A file that failed in this run, with the reason. */
export interface RunFailure {
  /** Source path. */
  srcPath: string;
  /** Planned destination path. */
  dstPath: string;
  /** Why it failed, in the system's words where there are some. */
  reason: string;
}

/** What one rank did in one run. */
export interface RankReport {
  /** The rank. */
  rank: number;
  /** Files of this rank's own list in this run (not verified before). */
  assigned: number;
  /** Files copied and verified in this run. */
  done: number;
  /** Files found already published with the right content (counted as verified). */
  existing: number;
  /** Files of the schedule already verified before this run (all ranks see the same). */
  skipped: number;
  /** Files that failed, with their reasons. */
  failed: RunFailure[];
  /** Files of this rank's own list that no rank started (the time budget ran out). */
  left: number;
  /** Bytes this rank copied and verified (its own files and those it took from others). */
  bytes: number;
  /** Files this rank took from another rank's list (balancing at run time). */
  takenFromOthers: number;
  /** MD5 of each verified file: `[dst_path, md5]`. */
  md5: Array<[string, string]>;
  /** True when the rank stopped taking files for the time budget. */
  stoppedForTime: boolean;
  /** Wall time of the rank in ms. */
  elapsedMs: number;
  /** Bytes read from storage (source and destination) per byte copied. */
  readsPerByte: number;
  /** Temporaries of crashed runs removed by this rank. */
  temporariesRemoved: number;
}

/** Summary of a run over all ranks, as rank 0 writes it to `run_summary.json`. */
export interface RunSummary {
  /** When the run ended (ISO 8601). */
  finishedAt: string;
  /** Ranks. */
  size: number;
  /** Schedule rows. */
  scheduled: number;
  /** Already verified before this run. */
  skipped: number;
  /** Copied and verified in this run. */
  done: number;
  /** Found already published and correct. */
  existing: number;
  /** Failed in this run. */
  failed: number;
  /** Not started for lack of time. */
  left: number;
  /** Bytes copied and verified. */
  bytes: number;
  /** Longest rank wall time, seconds. */
  seconds: number;
  /** Bytes per second over the run. */
  bytesPerSecond: number;
  /** Storage reads per byte copied, over all ranks. */
  readsPerByte: number;
  /** A rank stopped for the time budget and files are left for the next job. */
  stoppedForTime: boolean;
  /** True when ranks took over files of slower ranks' lists (balancing at run time). */
  stealing: boolean;
  /** Why balancing at run time was off, or `null` when it was on. */
  stealingOff: string | null;
  /** Files taken from another rank's list, over all ranks. */
  takenFromOthers: number;
  /** Every failure with its reason. */
  failures: RunFailure[];
  /** Per-rank figures. */
  ranks: Array<Omit<RankReport, "md5" | "failed">>;
}

/**
 * Combines the ranks' reports (rank order) into the run summary; `stealingOff` says why the run
 * did not balance at run time (`null`: it did).
 */
export function summarize(
  reports: RankReport[],
  scheduled: number,
  stealingOff: string | null,
): RunSummary {
  const sum = (f: (r: RankReport) => number) => reports.reduce((s, r) => s + f(r), 0);
  const seconds = Math.max(...reports.map((r) => r.elapsedMs)) / 1000;
  const bytes = sum((r) => r.bytes);
  return {
    finishedAt: new Date().toISOString(),
    size: reports.length,
    scheduled,
    skipped: reports[0]?.skipped ?? 0,
    done: sum((r) => r.done),
    existing: sum((r) => r.existing),
    failed: sum((r) => r.failed.length),
    left: sum((r) => r.left),
    bytes,
    seconds,
    bytesPerSecond: seconds > 0 ? bytes / seconds : 0,
    readsPerByte: bytes > 0 ? sum((r) => r.readsPerByte * r.bytes) / bytes : 0,
    stoppedForTime: reports.some((r) => r.stoppedForTime) && sum((r) => r.left) > 0,
    stealing: stealingOff === null,
    stealingOff,
    takenFromOthers: sum((r) => r.takenFromOthers),
    failures: reports.flatMap((r) => r.failed),
    ranks: reports.map(({ md5: _m, failed: _f, ...rest }) => rest),
  };
}

/** The summary as the lines rank 0 prints on standard output. */
export function summaryLines(s: RunSummary, path: string): string[] {
  const lines = [
    `run: ${s.done} files copied and verified, ${s.existing} found already published, ` +
    `${s.skipped} verified before, ${s.failed} failed, ${s.left} left; ` +
    `${formatBytes(s.bytes)} in ${formatDuration(s.seconds)} ` +
    `(${formatBytes(s.bytesPerSecond)}/s, ${s.readsPerByte.toFixed(2)} reads per byte)`,
  ];
  if (s.stealing && s.size > 1) {
    const moved = s.ranks.map((r) => formatBytes(r.bytes)).join(", ");
    lines.push(
      `run: ${s.takenFromOthers} files taken over from other ranks' shares; ` +
        `bytes moved by rank: ${moved}`,
    );
  }
  if (s.stoppedForTime) {
    lines.push(`run: stopped for the time budget; ${s.left} files left for the next job`);
  }
  lines.push(`run: summary in ${path}`);
  return lines;
}
