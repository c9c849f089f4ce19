/**
 * The run phase on one rank: its share of what is left (`rank_plan.ts`), leftover temporaries
 * of dead writers removed, then the worker loop copies its files (`transfer_file.ts`) until
 * done or out of time, each result appended to the rank's verification log.
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
import { planRank } from "./rank_plan.ts";
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
   * Resolves once every rank has called it: after the leftover temporaries are swept, before
   * any copy starts, so that no sweep ever sees a temporary of this run.
   */
  barrier?: () => Promise<void>;
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
  const progress = new ProgressRecorder(paths.logs, {
    rank: options.rank,
    filesTotal: plan.mine.length,
    bytesTotal: plan.mine.reduce((s, r) => s + r.sizeBytes, 0),
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
  try {
    const loop = await runWorkers({
      queue: plan.mine.slice(),
      workers: t.filesInFlight,
      beforeItem: options.hooks?.beforeFile,
      mustStop: () => outOfTime(options.deadline, t.timeMarginSeconds, now()),
      onStop: (left) =>
        log.notice(
          `time budget: less than ${t.timeMarginSeconds}s left (${options.deadline.source}); ` +
            `stopping with ${left} files left for the next job`,
        ),
      work: async (row) => {
        const file = progress.begin(row.sizeBytes);
        const { record, bytesRead } = await transferFile(row, context, file.add);
        readBytes += bytesRead;
        await finish(row, record);
        file.end(record.status !== "verified");
      },
    });
    report.left = loop.left;
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
  report.readsPerByte = report.bytes > 0 ? readBytes / report.bytes : 0;
  return report;
}
