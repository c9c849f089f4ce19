/**
 * The run phase on one MPI rank: copies this rank's share of the schedule, each file read
 * once while hashed, made durable, verified, then published under its final name by a step
 * that never overwrites. Resumable: what a verification log records as verified is skipped.
 * @module
 */

import { dirname, join } from "node:path";
import type { Config } from "../config.ts";
import { readCheckpoint, requireSteps } from "../records/checkpoint.ts";
import { InputError } from "../errors.ts";
import { syncDirectory } from "../io/sync_directory.ts";
import { datasetFolder, parseDestinationPath, safeServerName, toolPaths } from "../layout.ts";
import { isWithin } from "../is_within.ts";
import { readSchedule } from "../plan/plan_table.ts";
import type { ScheduleRow } from "../plan/plan_table.ts";
import { balanceRows } from "../plan/schedule.ts";
import { readVerificationLogs, VerificationLog } from "../records/verification_log.ts";
import type { VerificationRecord } from "../records/verification_log.ts";
import type { Md5Engine } from "../md5/engine.ts";
import { closeTransferContext, openTransferContext, transferFile } from "./transfer_file.ts";
import type { BeforeReadBackHook } from "./transfer_file.ts";
import { currentToken, formatToken, sweepTemporaries } from "./temporaries.ts";
import type { WriterToken } from "./temporaries.ts";
import type { Deadline } from "./time_budget.ts";
import { writeProgress } from "./progress.ts";
import type { RankProgress } from "./progress.ts";

/** What one rank did in one run. */
export interface RankReport {
  /** The rank. */
  rank: number;
  /** Files assigned to this rank in this run (not verified before). */
  assigned: number;
  /** Files copied and verified in this run. */
  done: number;
  /** Files found already published with the right content (counted as verified). */
  existing: number;
  /** Files of the schedule already verified before this run (all ranks see the same). */
  skipped: number;
  /** Files that failed, with their reasons. */
  failed: Array<{ srcPath: string; dstPath: string; reason: string }>;
  /** Files not started because the time budget ran out. */
  left: number;
  /** Bytes copied and verified. */
  bytes: number;
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

/** Test-only hooks (set by the tests through the environment, see `phases/run.ts`). */
export interface RunnerHooks {
  /** Runs when a file is taken, before it is copied (tests slow a run down with it). */
  beforeFile?: (row: ScheduleRow) => Promise<void> | void;
  /** Runs once a range of a temporary is on storage, before it is read back. */
  beforeReadBack?: BeforeReadBackHook;
}

/** Options of {@linkcode runRank}. */
export interface RunRankOptions {
  /** This process's rank. */
  rank: number;
  /** Number of ranks. */
  size: number;
  /** MD5 engine. */
  engine: Md5Engine;
  /** MD5 engine for a file that is most of the rank's work left (see `TransferContextOptions`). */
  loneEngine?: Md5Engine;
  /** When to stop taking files. */
  deadline: Deadline;
  /** List this rank's files instead of copying them. */
  dryRun?: boolean;
  /** Receives one log line (the caller writes it to the rank's log and stderr). */
  log: (line: string) => void;
  /** Test-only hooks. */
  hooks?: RunnerHooks;
  /** Writer identity (default: from the environment). */
  token?: WriterToken;
  /** Epoch ms now (for tests). */
  now?: () => number;
  /**
   * Called once every rank has to wait for the others: after the leftover temporaries are
   * swept, before any copy starts (`comm.barrier` under MPI), so that no sweep ever sees a
   * temporary of this run.
   */
  barrier?: () => void;
}

/** Thrown when the schedule names a path outside the configured folders. */
export class ScheduleRootError extends InputError {}

/**
 * Checks that a schedule row reads under the images folder and writes exactly
 * `<dst folder>/server=<safe name>/<data|errors>_<id>.parquet`. A hand-edited schedule cannot
 * make the runner write anywhere else.
 */
export function checkRowRoots(config: Config, row: ScheduleRow, where: string): void {
  if (!isWithin(config.imagesFolder, row.srcPath) || row.srcPath === config.imagesFolder) {
    throw new ScheduleRootError(
      `${where}: src_path ${row.srcPath} is outside the images folder ${config.imagesFolder}: refused`,
    );
  }
  const root = datasetFolder(config, row.kind);
  const parts = parseDestinationPath(row.dstPath);
  if (
    parts === null || parts.root !== root || parts.kind !== row.kind ||
    parts.server !== safeServerName(parts.server)
  ) {
    throw new ScheduleRootError(
      `${where}: dst_path ${row.dstPath} is not of the form ${root}/server=<name>/` +
        `${row.kind === "successes" ? "data" : "errors"}_<id>.parquet: refused`,
    );
  }
}

/** This rank's work for a run: the rows not yet verified, balanced over `size` ranks. */
export interface RankPlan {
  /** Rows of this rank, largest first. */
  mine: ScheduleRow[];
  /** Rows of the schedule already verified. */
  verified: number;
  /** All rows of the schedule. */
  all: ScheduleRow[];
}

/** Loads the schedule and the logs and returns this rank's share of what is left. */
export async function planRank(config: Config, rank: number, size: number): Promise<RankPlan> {
  const paths = toolPaths(config);
  requireSteps(await readCheckpoint(paths.checkpoint), paths.checkpoint, "schedule");
  const all = await readSchedule(paths.schedule);
  all.forEach((row, i) => checkRowRoots(config, row, `${paths.schedule} row ${i + 2}`));
  const state = await readVerificationLogs(paths.verification);
  const left = all.filter((r) => state.byDst.get(r.dstPath)?.status !== "verified");
  const mine = balanceRows(left, size).filter((r) => r.rank === rank);
  mine.sort((a, b) => b.sizeBytes - a.sizeBytes || (a.srcPath < b.srcPath ? -1 : 1));
  return { mine, verified: all.length - left.length, all };
}

/** Runs this rank's share of the schedule. */
export async function runRank(config: Config, options: RunRankOptions): Promise<RankReport> {
  const now = options.now ?? Date.now;
  const started = now();
  const paths = toolPaths(config);
  const t = config.transfer;
  const plan = await planRank(config, options.rank, options.size);
  const report: RankReport = {
    rank: options.rank,
    assigned: plan.mine.length,
    done: 0,
    existing: 0,
    skipped: plan.verified,
    failed: [],
    left: 0,
    bytes: 0,
    md5: [],
    stoppedForTime: false,
    elapsedMs: 0,
    readsPerByte: 0,
    temporariesRemoved: 0,
  };
  if (options.dryRun) {
    for (const r of plan.mine) {
      options.log(`would copy ${r.srcPath} -> ${r.dstPath} (${r.sizeBytes} bytes)`);
    }
    report.left = plan.mine.length;
    return report;
  }
  const token = options.token ?? currentToken();
  const tokenText = formatToken(token);
  await Deno.mkdir(paths.logs, { recursive: true });
  const finals = new Set(plan.all.map((r) => r.dstPath));
  const folders = [...new Set(plan.all.map((r) => dirname(r.dstPath)))].sort()
    .filter((_, i) => i % options.size === options.rank);
  const sweep = await sweepTemporaries(folders, finals, token);
  report.temporariesRemoved = sweep.removed.length;
  for (const p of sweep.removed) options.log(`removed leftover temporary ${p}`);
  for (const p of sweep.kept) options.log(`kept temporary ${p}: its writer may still be running`);
  options.barrier?.();

  // Folders that received a published file since the log's last sync: their entries are
  // made durable just before the records that say the files are there.
  const unsyncedFolders = new Set<string>();
  const log = await VerificationLog.create(
    paths.verification,
    `rank${options.rank}_${tokenText}_${started}`,
    t.logSyncEvery,
    async () => {
      const folders = [...unsyncedFolders];
      unsyncedFolders.clear();
      await Promise.all(folders.map(syncDirectory));
    },
  );
  const progress: RankProgress = {
    rank: options.rank,
    filesTotal: plan.mine.length,
    bytesTotal: plan.mine.reduce((s, r) => s + r.sizeBytes, 0),
    filesDone: 0,
    bytesDone: 0,
    failed: 0,
    startedMs: started,
  };
  await writeProgress(paths.logs, progress);
  let lastProgress = now();
  let readBytes = 0;
  const marginMs = t.timeMarginSeconds * 1000;
  const queue = plan.mine.slice();

  const finish = async (row: ScheduleRow, rec: VerificationRecord) => {
    await log.append(rec);
    progress.filesDone++;
    progress.bytesDone += row.sizeBytes;
    if (rec.status === "verified") {
      report.md5.push([row.dstPath, rec.hashsumSrc]);
      if (rec.verifyMode === "existing") report.existing++;
      else report.done++;
      report.bytes += rec.sizeBytes;
      options.log(
        `verified ${row.dstPath} (${rec.sizeBytes} bytes, md5 ${rec.hashsumSrc}, ${rec.verifyMode})`,
      );
    } else {
      progress.failed++;
      report.failed.push({ srcPath: row.srcPath, dstPath: row.dstPath, reason: rec.reason });
      options.log(`FAILED ${row.srcPath} -> ${row.dstPath}: ${rec.reason}`);
    }
    if (now() - lastProgress > 2000) {
      lastProgress = now();
      await writeProgress(paths.logs, progress);
    }
  };

  const context = await openTransferContext(config, {
    engine: options.engine,
    loneEngine: options.loneEngine,
    rankBytes: progress.bytesTotal,
    token: tokenText,
    log: options.log,
    unsyncedFolders,
    beforeReadBack: options.hooks?.beforeReadBack,
  });
  const worker = async () => {
    while (queue.length > 0) {
      const end = options.deadline.endsAtMs;
      if (end !== null && now() + marginMs >= end) {
        if (!report.stoppedForTime) {
          options.log(
            `time budget: less than ${t.timeMarginSeconds}s left (${options.deadline.source}); ` +
              `stopping with ${queue.length} files left for the next job`,
          );
        }
        report.stoppedForTime = true;
        return;
      }
      const row = queue.shift()!;
      await options.hooks?.beforeFile?.(row);
      const { record, bytesRead } = await transferFile(row, context);
      readBytes += bytesRead;
      await finish(row, record);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, t.filesInFlight) }, worker));
  } finally {
    await closeTransferContext(context);
    await log.close();
  }
  report.left = queue.length;
  report.elapsedMs = now() - started;
  report.readsPerByte = report.bytes > 0 ? readBytes / report.bytes : 0;
  await writeProgress(paths.logs, progress);
  return report;
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
  /** Any rank stopped for the time budget. */
  stoppedForTime: boolean;
  /** Every failure with its reason. */
  failures: RankReport["failed"];
  /** Per-rank figures. */
  ranks: Array<Omit<RankReport, "md5" | "failed">>;
}

/** Combines the ranks' reports (rank order) into the run summary. */
export function summarize(reports: RankReport[], scheduled: number): RunSummary {
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
    stoppedForTime: reports.some((r) => r.stoppedForTime),
    failures: reports.flatMap((r) => r.failed),
    ranks: reports.map(({ md5: _m, failed: _f, ...rest }) => rest),
  };
}

/** Path of a rank's log in the tool's `logs/` folder. */
export function rankLogPath(config: Config, rank: number, token: string): string {
  return join(toolPaths(config).logs, `run_rank${rank}_${token}.log`);
}
