/**
 * The run phase on one rank: its share of what is left (`rank_plan.ts`), leftover temporaries
 * of dead writers removed, then the worker loop copies the files the run's queue hands it
 * (`run_queue.ts`: its own share, then files other ranks have not started) with
 * `transfer_file.ts` until none is left or the time is out, each result appended to the rank's
 * verification log; then it waits for the other ranks and releases the queue.
 * @module
 */

import { dirname } from "node:path";
import type { Config } from "../config.ts";
import { syncDirectory } from "../io/sync_directory.ts";
import { toolPaths } from "../layout.ts";
import type { Md5Engine } from "../md5/engine.ts";
import type { ScheduleRow } from "../plan/plan_table.ts";
import { VerificationLog } from "../records/verification_log.ts";
import type { VerificationRecord } from "../records/verification_log.ts";
import { InHand } from "./in_hand.ts";
import { holdingLimit, type PendingMax, SpeedCheck, type SpeedVerdict } from "./speed_check.ts";
import { planRank } from "./rank_plan.ts";
import type { RunQueue } from "./run_queue.ts";
import { ProgressRecorder } from "./rank_progress.ts";
import type { RunLog } from "./run_log.ts";
import type { RankReport } from "./run_summary.ts";
import { formatToken, sweepTemporaries } from "./temporaries.ts";
import type { WriterToken } from "./temporaries.ts";
import { type Deadline, outOfTime } from "./time_budget.ts";
import {
  closeTransferContext,
  openTransferContext,
  type RunnerHooks,
  transferFile,
} from "./transfer_file.ts";
import { runWorkers } from "./worker_loop.ts";

/** Options of {@linkcode runRank}. */
export interface RunRankOptions {
  /** This process's rank. */
  rank: number;
  /** Number of ranks. */
  size: number;
  /** MD5 engine. */
  engine: Md5Engine;
  /** MD5 engine for a file that is most of the rank's work left (see `openTransferContext`). */
  loneEngine?: Md5Engine;
  /** When to stop taking files. */
  deadline: Deadline;
  /** Writer identity of this process. */
  token: WriterToken;
  /** The rank's log. */
  log: RunLog;
  /** List this rank's files instead of copying them. */
  dryRun?: boolean;
  /** Test-only hooks. */
  hooks?: RunnerHooks;
  /** Epoch ms now (for tests). */
  now?: () => number;
  /**
   * Opens the queue the rank's workers take from, over every rank's list (collective under
   * MPI). Needed to copy; a dry run has no use for it.
   */
  openQueue?: (lists: ScheduleRow[][]) => RunQueue;
  /**
   * Resolves once every rank has called it, without spinning. Called after the leftover
   * temporaries are swept, before any copy starts (so that no sweep ever sees a temporary of
   * this run), and once the rank has nothing left to take, before the queue is released.
   */
  barrier?: () => Promise<void>;
  /**
   * Starts the max-reduction of this rank's copy rate over every rank (`Comm.iallreduce`;
   * collective, called once on every rank when the queue balances at run time).
   */
  postRate?: (bytesPerSecond: number) => PendingMax;
}

/** How a verdict of the speed check reads in the rank's log. */
function verdictLine(verdict: SpeedVerdict, limit: number): string {
  const mib = (bytesPerSecond: number) => `${(bytesPerSecond / 2 ** 20).toFixed(0)} MiB/s`;
  return `speed check: ${mib(verdict.bytesPerSecond)}, fastest rank ` +
    `${mib(verdict.fastestBytesPerSecond)}: ` +
    (verdict.fast
      ? "holding as many files as there are workers"
      : `slower than half the fastest, holding at most ${(limit / 2 ** 20).toFixed(1)} MiB ` +
        "(one file at a time when that is less than a file)");
}

/** Runs this rank's share of the schedule. */
export async function runRank(config: Config, options: RunRankOptions): Promise<RankReport> {
  const now = options.now ?? Date.now;
  const started = now();
  const paths = toolPaths(config);
  const t = config.transfer;
  const { log } = options;
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
    takenFromOthers: 0,
  };
  if (options.dryRun) {
    for (const r of plan.mine) {
      log.notice(`would copy ${r.srcPath} -> ${r.dstPath} (${r.sizeBytes} bytes)`);
    }
    report.left = plan.mine.length;
    return report;
  }
  const tokenText = formatToken(options.token);
  const finals = new Set(plan.all.map((r) => r.dstPath));
  const folders = [...new Set(plan.all.map((r) => dirname(r.dstPath)))].sort()
    .filter((_, i) => i % options.size === options.rank);
  const sweep = await sweepTemporaries(folders, finals, options.token);
  report.temporariesRemoved = sweep.removed.length;
  for (const p of sweep.removed) log.info(`removed leftover temporary ${p}`);
  for (const p of sweep.kept) log.notice(`kept temporary ${p}: its writer may still be running`);
  await options.barrier?.();

  // Folders that received a published file since the log's last sync: their entries are
  // made durable just before the records that say the files are there.
  const unsyncedFolders = new Set<string>();
  const records = await VerificationLog.create(
    paths.verification,
    `rank${options.rank}_${tokenText}_${started}`,
    t.logSyncEvery,
    async () => {
      const folders = [...unsyncedFolders];
      unsyncedFolders.clear();
      await Promise.all(folders.map(syncDirectory));
    },
  );
  const everyRow = plan.lists.flat();
  const runBytes = everyRow.reduce((s, r) => s + r.sizeBytes, 0);
  const progress = new ProgressRecorder(paths.logs, {
    rank: options.rank,
    filesTotal: everyRow.length,
    bytesTotal: runBytes,
    startedMs: started,
  }, log.info);
  await progress.start();
  let readBytes = 0;

  const finish = async (row: ScheduleRow, rec: VerificationRecord) => {
    await records.append(rec);
    if (rec.status === "verified") {
      report.md5.push([row.dstPath, rec.hashsumSrc]);
      if (rec.verifyMode === "existing") report.existing++;
      else report.done++;
      report.bytes += rec.sizeBytes;
      log.info(
        `verified ${row.dstPath} (${rec.sizeBytes} bytes, md5 ${rec.hashsumSrc}, ${rec.verifyMode})`,
      );
    } else {
      report.failed.push({ srcPath: row.srcPath, dstPath: row.dstPath, reason: rec.reason });
      log.notice(`FAILED ${row.srcPath} -> ${row.dstPath}: ${rec.reason}`);
    }
  };

  const context = await openTransferContext(config, {
    engine: options.engine,
    loneEngine: options.loneEngine,
    rankBytes: plan.mine.reduce((s, r) => s + r.sizeBytes, 0),
    token: tokenText,
    log: log.info,
    unsyncedFolders,
    beforeReadBack: options.hooks?.beforeReadBack,
  });
  if (options.openQueue === undefined) throw new TypeError("runRank: openQueue is needed to copy");
  const queue = options.openQueue(plan.lists);
  if (queue.stealingOff !== null) log.info(`balancing at run time off: ${queue.stealingOff}`);
  // What a rank holds cannot go to a faster rank: with others to take it, a rank holds at most
  // a files_in_flight-th of a fair share of the run (at least what its buffers hold) until the
  // speed check has shown it is about as fast as the fastest rank; then it holds as many files
  // as it has workers, side by side in the MD5 lanes. A slow rank holds less still.
  const balancing = queue.stealingOff === null && options.size > 1;
  const narrow = Math.max(t.buffers * t.bufferSize, runBytes / (options.size * t.filesInFlight));
  const inHand = new InHand(balancing ? narrow : Infinity);
  const postRate = options.postRate;
  const speed = balancing && postRate !== undefined
    ? new SpeedCheck({
      sampleBytes: narrow,
      sampleMs: options.hooks?.speedSampleMs,
      postRate,
      now,
      onVerdict: (verdict) => {
        inHand.setLimit(holdingLimit(verdict, narrow));
        log.info(verdictLine(verdict, inHand.limit));
      },
    })
    : null;
  const hooks = options.hooks;
  let dry = false;
  try {
    const loop = await runWorkers({
      room: () => inHand.room(),
      take: async () => {
        const taken = await queue.take();
        if (taken !== null) inHand.take(taken.item.dstPath, taken.item.sizeBytes);
        if (taken === null && !dry) {
          dry = true;
          await hooks?.queueDry?.();
        }
        return taken;
      },
      workers: t.filesInFlight,
      beforeTake: hooks?.beforeTake,
      beforeItem: (taken) => hooks?.beforeFile?.(taken.item, taken.from),
      mustStop: () => outOfTime(options.deadline, t.timeMarginSeconds, now()),
      onStop: () =>
        log.notice(
          `time budget: less than ${t.timeMarginSeconds}s left (${options.deadline.source}); ` +
            `stopping: the files not started are left for the next job`,
        ),
      work: async ({ item: row, from }) => {
        if (from !== options.rank) {
          report.takenFromOthers++;
          log.info(`took ${row.dstPath} from rank ${from}`);
        }
        const file = progress.begin(row.sizeBytes);
        try {
          const { record, bytesRead } = await transferFile(row, context, (bytes) => {
            file.add(bytes);
            inHand.copied(row.dstPath, bytes);
            speed?.copied(bytes);
          });
          readBytes += bytesRead;
          await finish(row, record);
          file.end(record.status !== "verified");
        } finally {
          inHand.done(row.dstPath);
        }
      },
    });
    report.stoppedForTime = loop.stopped;
  } finally {
    try {
      await closeTransferContext(context);
      await records.close();
    } finally {
      await progress.stop();
    }
  }
  report.elapsedMs = now() - started;
  await speed?.finish();
  // Done here: wait for the ranks still copying without taking a core from them (they may
  // still take from this rank's list), then count what nobody took and release the queue.
  await options.barrier?.();
  report.left = await queue.left();
  queue.free();
  report.readsPerByte = report.bytes > 0 ? readBytes / report.bytes : 0;
  return report;
}
