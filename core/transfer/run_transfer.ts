/**
 * The run phase on every rank, from options to exit code: what `phases/run.ts` calls under
 * `mpirun`/`srun` or as one process.
 *
 * Rank 0 takes the run lock of the tool folder for the whole job (`run_lock.ts`); each rank
 * copies its share and then takes over files other ranks have not started (`run_rank.ts`,
 * `run_queue.ts`; how much a rank holds follows `speed_check.ts`), and writes its log; rank 0 shows the progress of all ranks. A rank with
 * nothing left to take waits for the others on a nonblocking barrier, sleeping between tests,
 * so that it leaves its core to the ranks still copying (MPICH and Open MPI spin inside a
 * blocking collective, and inside `MPI_Win_free`); the ranks then meet in the gather of their
 * reports, which rank 0 sums up, prints and writes to `run_summary.json`. The barrier after the
 * sweep of leftover temporaries waits the same way.
 * @module
 */

import type { Comm } from "../../mpi/mod.ts";
import type { Config } from "../config.ts";
import { ExitCode, type ExitCodeValue } from "../exit_codes.ts";
import { toolPaths } from "../layout.ts";
import { openLoneEngine, openMd5Engine } from "../md5/open_engine.ts";
import { writeFileAtomic } from "../records/atomic_file.ts";
import { readCheckpoint, requireSteps } from "../records/checkpoint.ts";
import { ProgressDisplay, progressStyle } from "./progress_display.ts";
import { formatBytes } from "../format.ts";
import { runRank, type RunRankOptions } from "./run_rank.ts";
import { openRunQueue, STEAL_OFF_BY_CONFIG } from "./run_queue.ts";
import { acquireRunLock, RunInProgressError, type RunLock } from "./run_lock.ts";
import { RankLog, rankLogPath } from "./run_log.ts";
import { type RankReport, summarize, summaryLines } from "./run_summary.ts";
import { currentToken, formatToken, type WriterToken } from "./temporaries.ts";
import { type Deadline, findDeadline, parseTimeLimit } from "./time_budget.ts";
import type { RunnerHooks } from "./transfer_file.ts";

/** Options of {@linkcode runTransfer}. */
export interface RunTransferOptions {
  /** The tool's configuration. */
  config: Config;
  /** List each rank's files instead of copying them. */
  dryRun?: boolean;
  /** `--time-limit`: stop taking files this long after the start (`[D-]HH:MM:SS`, `90s`). */
  timeLimit?: string;
  /** When to stop taking files (default: from Slurm and `timeLimit`, see `findDeadline`). */
  deadline?: Deadline;
  /** Writer identity of this process (default: from the environment). */
  token?: WriterToken;
  /** Test-only hooks (the test driver `tests/fixtures/run_driver.ts` sets them). */
  hooks?: RunnerHooks;
}

/**
 * Runs the transfer on every rank of the world `openComm` opens once the schedule is known to
 * be complete (collective: every rank calls it) and returns the
 * exit code, the same on every rank: 0 all done, 3 some files failed, 4 stopped for the time
 * budget, 2 when another run holds the tool folder (rank 0 prints which one).
 */
export async function runTransfer(
  openComm: () => Comm,
  options: RunTransferOptions,
): Promise<ExitCodeValue> {
  const { config } = options;
  const dryRun = options.dryRun === true;
  const timeLimitSeconds = parseTimeLimit(options.timeLimit);
  const paths = toolPaths(config);
  // Checked before MPI starts, so that a run started too early prints its one line alone.
  requireSteps(await readCheckpoint(paths.checkpoint), paths.checkpoint, "schedule");
  const comm = openComm();
  const token = options.token ?? currentToken();
  await Deno.mkdir(paths.logs, { recursive: true });
  const log = await RankLog.open(
    rankLogPath(config, comm.rank, formatToken(token)),
    comm.rank,
    comm.size,
  );
  try {
    const engine = openMd5Engine({ prefer: config.transfer.md5Engine, log: log.info });
    const loneEngine = openLoneEngine(config.transfer.md5Engine, engine);
    try {
      if (comm.rank === 0) {
        const lone = loneEngine
          ? ` (${loneEngine.name} for a file that is most of a rank's work)`
          : "";
        console.log(
          `run: ${comm.size} rank(s), MPI ${comm.implementation}, md5 engine ${engine.name}${lone}, ` +
            `verify ${config.transfer.verifyMode}`,
        );
      }
      const deadline = options.deadline ?? await findDeadline({ timeLimitSeconds });
      log.info(`start: md5 ${engine.name}, deadline ${deadline.source}`);
      const rank: RunRankOptions = {
        rank: comm.rank,
        size: comm.size,
        engine,
        loneEngine,
        deadline,
        token,
        log,
        dryRun,
        hooks: options.hooks,
      };
      if (dryRun) {
        await runRank(config, rank);
        return ExitCode.Ok;
      }
      const lock = await lockForAllRanks(comm, paths.runLock, token);
      if (lock === "busy") return ExitCode.Usage;
      try {
        return await copyAndReport(comm, config, rank);
      } finally {
        await lock?.release();
      }
    } finally {
      engine.close();
      loneEngine?.close();
    }
  } finally {
    await log.close();
  }
}

/**
 * Rank 0 takes the run lock; every rank learns whether it did. Returns the lock on rank 0,
 * `null` on the others, and `"busy"` on every rank when another run holds it (rank 0 prints
 * the one line that names it).
 */
async function lockForAllRanks(
  comm: Comm,
  path: string,
  token: WriterToken,
): Promise<RunLock | null | "busy"> {
  let lock: RunLock | null = null;
  let busy: RunInProgressError | null = null;
  if (comm.rank === 0) {
    try {
      lock = await acquireRunLock(path, token, comm.size);
    } catch (err) {
      if (!(err instanceof RunInProgressError)) throw err;
      busy = err;
    }
  }
  await comm.ibarrier().wait();
  if (comm.allreduce(busy === null ? 0 : 1, "max") === 0) return lock;
  if (busy !== null) console.error(`error: ${busy.message}`);
  return "busy";
}

/**
 * Every rank copies its share while rank 0 shows the progress of all; a rank that is done
 * waits for the others without spinning; rank 0 sums up the gathered reports.
 */
async function copyAndReport(
  comm: Comm,
  config: Config,
  rank: RunRankOptions,
): Promise<ExitCodeValue> {
  const paths = toolPaths(config);
  const display = comm.rank === 0
    ? new ProgressDisplay({
      logs: paths.logs,
      size: comm.size,
      style: progressStyle(Deno.env.toObject(), Deno.stdout.isTerminal()),
      intervalMs: config.transfer.progressIntervalSeconds * 1000,
    }).start()
    : null;
  let report: RankReport;
  let stealingOff: string | null = null;
  try {
    report = await runRank(config, {
      ...rank,
      barrier: () => comm.ibarrier().wait(),
      postRate: (bytesPerSecond) => comm.iallreduce(bytesPerSecond, "max"),
      openQueue: (lists) => {
        const queue = openRunQueue(comm, lists, config.transfer.steal);
        stealingOff = queue.stealingOff;
        if (comm.rank === 0 && stealingOff !== null && stealingOff !== STEAL_OFF_BY_CONFIG) {
          console.error(`warning: run: balancing at run time is off: ${stealingOff}`);
        }
        return queue;
      },
    });
    rank.log.info(
      `end: ${report.done} copied, ${report.existing} found published, ${report.failed.length} ` +
        `failed, ${report.takenFromOthers} taken from other ranks, ${report.left} of its own ` +
        `left, ${formatBytes(report.bytes)}`,
    );
  } finally {
    display?.stop();
  }
  // Every rank has passed the barrier that ends runRank: these collectives do not wait long.
  const reports = comm.gatherObject(report, 0);
  const failed = comm.allreduce(report.failed.length, "sum");
  const left = comm.allreduce(report.left, "sum");
  const stopped = comm.allreduce(report.stoppedForTime ? 1 : 0, "max") > 0 && left > 0;
  if (reports !== null) {
    const scheduled = report.skipped + reports.reduce((n, r) => n + r.assigned, 0);
    const s = summarize(reports, scheduled, stealingOff);
    await writeFileAtomic(paths.runSummary, JSON.stringify(s, null, 2) + "\n");
    for (const f of s.failures) console.error(`failed: ${f.srcPath} -> ${f.dstPath}: ${f.reason}`);
    for (const line of summaryLines(s, paths.runSummary)) console.log(line);
  }
  return failed > 0 ? ExitCode.Failures : stopped ? ExitCode.TimeBudget : ExitCode.Ok;
}
