/**
 * The verify phase: compares the plan (filter tables and schedule) with every verification
 * log, checks with one stat each that every published file is there with its logged size
 * (no data file is read), and checks again the problems the filter recorded. Reports what is
 * left, every failure, damage and standing filter problem, writes the manifest and the
 * `_MD5SUMS` lists of what is published, and sets `completed` in the checkpoint when every
 * planned file is verified and nothing stands in the way.
 * @module
 */

import type { Config } from "../config.ts";
import { readCheckpoint, requireSteps, updateCheckpoint } from "../records/checkpoint.ts";
import type { Checkpoint } from "../records/checkpoint.ts";
import { ExitCode } from "../exit_codes.ts";
import type { ExitCodeValue } from "../exit_codes.ts";
import { parseDestinationPath, toolPaths } from "../layout.ts";
import { InputError } from "../errors.ts";
import { readFilterTables, readSchedule } from "../plan/plan_table.ts";
import type { PlanRow, ScheduleRow } from "../plan/plan_table.ts";
import { readVerificationLogs } from "../records/verification_log.ts";
import type { VerificationRecord, VerificationState } from "../records/verification_log.ts";
import { writeManifest, writeMd5Sums } from "./manifest.ts";
import type { PublishedFile } from "./manifest.ts";
import { statEveryPublished } from "./published_check.ts";
import { lstatOrNull } from "../io/lstat_or_null.ts";
import type { DeepProblem } from "./published_check.ts";
import { standingFilterProblems } from "../plan/filter_problems.ts";
import type { StandingProblem } from "../plan/filter_problems.ts";

/** A count of files and their bytes. */
export interface Tally {
  /** Files. */
  files: number;
  /** Bytes. */
  bytes: number;
}

/** A planned file that is not verified. */
export interface PendingFile {
  /** Source path. */
  srcPath: string;
  /** Destination path. */
  dstPath: string;
  /** Bytes as planned. */
  sizeBytes: number;
}

/** A file whose latest record is a failure. */
export interface FailedFile extends PendingFile {
  /** Why it failed, as logged. */
  reason: string;
  /** When it failed (ISO 8601). */
  at: string;
}

/** Where the transfer stands, from the plan and the logs alone. */
export interface TransferState {
  /** Files in the filter tables. */
  planned: Tally;
  /** Rows of the schedule (0 when there is no schedule yet). */
  scheduled: Tally;
  /** Scheduled files whose latest record is `verified` (bytes as logged). */
  verified: Tally;
  /** Scheduled files whose latest record is a failure. */
  failed: Tally;
  /** Scheduled files without any record. */
  left: Tally;
  /** Planned files that the schedule does not hold (the filter found them after it). */
  unscheduled: Tally;
  /** Planned files not verified: `failed + left + unscheduled` (what a next run has to do). */
  remaining: Tally;
  /** Failed files with their reasons, sorted by destination. */
  failures: FailedFile[];
  /** Scheduled files without any record, sorted by destination. */
  leftFiles: PendingFile[];
  /** Planned files missing from the schedule, sorted by destination. */
  unscheduledFiles: PendingFile[];
  /** Every file the logs record as verified (scheduled or not), sorted by destination. */
  published: PublishedFile[];
  /** Verification logs read. */
  logFiles: number;
  /** Log lines that did not parse (torn by a crash, say); they are ignored. */
  badLogLines: string[];
  /** Whether a schedule exists. */
  hasSchedule: boolean;
  /**
   * Problems of the last filter run that are still true (a completed partition with a file
   * missing, say): the transfer is not complete while one stands.
   */
  filterProblems: StandingProblem[];
}

const tally = (): Tally => ({ files: 0, bytes: 0 });
const add = (t: Tally, bytes: number) => {
  t.files++;
  t.bytes += bytes;
};
const byDstPath = (a: { dstPath: string }, b: { dstPath: string }) =>
  a.dstPath < b.dstPath ? -1 : a.dstPath > b.dstPath ? 1 : 0;

/** The manifest row of a verified record. */
function publishedFile(rec: VerificationRecord): PublishedFile {
  const parts = parseDestinationPath(rec.dstPath);
  if (parts === null) {
    throw new InputError(
      `verification log: dst_path ${rec.dstPath} is not a destination this tool writes; ` +
        `was the log edited by hand?`,
    );
  }
  return {
    server: parts.server,
    kind: parts.kind,
    srcPath: rec.srcPath,
    dstPath: rec.dstPath,
    sizeBytes: rec.sizeBytes,
    md5: rec.hashsumDst || rec.hashsumSrc,
    numRows: rec.numRows,
    verifiedAt: rec.verifiedAt,
  };
}

/**
 * Compares the plan with the logs: a pure function of the filter rows (`null` when the
 * schedule is known to hold them all), the schedule (`null` when there is none) and the
 * logs' state. Failures and published files are sorted by destination; left and unscheduled
 * files keep the order of the schedule and the filter tables.
 */
function assessState(
  planned: readonly PlanRow[] | null,
  schedule: readonly ScheduleRow[] | null,
  logs: VerificationState,
): TransferState {
  const s: TransferState = {
    planned: tally(),
    scheduled: tally(),
    verified: tally(),
    failed: tally(),
    left: tally(),
    unscheduled: tally(),
    remaining: tally(),
    failures: [],
    leftFiles: [],
    unscheduledFiles: [],
    published: [],
    logFiles: logs.files.length,
    badLogLines: logs.badLines,
    hasSchedule: schedule !== null,
    filterProblems: [],
  };
  for (const r of schedule ?? []) {
    add(s.scheduled, r.sizeBytes);
    const rec = logs.byDst.get(r.dstPath);
    if (rec?.status === "verified") add(s.verified, rec.sizeBytes);
    else if (rec?.status === "failed") {
      add(s.failed, r.sizeBytes);
      s.failures.push({
        srcPath: r.srcPath,
        dstPath: r.dstPath,
        sizeBytes: r.sizeBytes,
        reason: rec.reason,
        at: rec.verifiedAt,
      });
    } else {
      add(s.left, r.sizeBytes);
      s.leftFiles.push({ srcPath: r.srcPath, dstPath: r.dstPath, sizeBytes: r.sizeBytes });
    }
  }
  if (planned === null) {
    s.planned = { ...s.scheduled };
  } else {
    const inSchedule = new Set((schedule ?? []).map((r) => r.dstPath));
    for (const r of planned) {
      add(s.planned, r.sizeBytes);
      if (inSchedule.has(r.dstPath)) continue;
      add(s.unscheduled, r.sizeBytes);
      s.unscheduledFiles.push({ srcPath: r.srcPath, dstPath: r.dstPath, sizeBytes: r.sizeBytes });
    }
  }
  for (const t of [s.failed, s.left, s.unscheduled]) {
    s.remaining.files += t.files;
    s.remaining.bytes += t.bytes;
  }
  for (const rec of logs.byDst.values()) {
    if (rec.status === "verified") s.published.push(publishedFile(rec));
  }
  s.failures.sort(byDstPath);
  s.published.sort(byDstPath);
  return s;
}

async function readScheduleIfAny(path: string, required: boolean): Promise<ScheduleRow[] | null> {
  try {
    return await readSchedule(path);
  } catch (err) {
    if (required) throw err;
    // No schedule yet is a state (nothing scheduled), not an error; a bad one is an error.
    const exists = await Deno.lstat(path).then(() => true, () => false);
    if (exists) throw err;
    return null;
  }
}

/**
 * Reads the schedule (when there is one), the logs and, unless the checkpoint says the
 * schedule was made from the current filter tables (`scheduling_completed: true`), the
 * filter tables; then checks again, with a stat each, the problems of the last filter run.
 * No data file is read. With `requireSchedule`, a missing schedule is an
 * {@linkcode InputError} naming the first step to run.
 */
export async function readTransferState(
  config: Config,
  options: { requireSchedule?: boolean } = {},
): Promise<TransferState> {
  const paths = toolPaths(config);
  const checkpoint = await readCheckpoint(paths.checkpoint);
  if (options.requireSchedule && (await lstatOrNull(paths.schedule)) === null) {
    requireSteps(checkpoint, paths.checkpoint, "filter"); // names the filter if it never ran
  }
  const upToDate = checkpoint.scheduling_completed === true;
  const [schedule, logs, planned] = await Promise.all([
    readScheduleIfAny(paths.schedule, options.requireSchedule === true),
    readVerificationLogs(paths.verification),
    upToDate ? null : readFilterTables(paths.filterTables),
  ]);
  const state = assessState(schedule === null ? planned ?? [] : planned, schedule, logs);
  state.filterProblems = await standingFilterProblems(paths.filterProblems, () => {
    const sources = new Set<string>();
    for (const r of schedule ?? []) sources.add(r.srcPath);
    for (const r of planned ?? []) sources.add(r.srcPath);
    return sources;
  });
  return state;
}

/** What {@linkcode verifyTransfer} found and did. */
export interface VerifyTransferResult {
  /** The state of the transfer. */
  state: TransferState;
  /**
   * Published files not as their records say: found by one stat each (plain verify), or the
   * deep check's problems that were not repaired (`--deep`).
   */
  damaged: DeepProblem[];
  /** `0` complete, `5` work left, `3` failures, damage or filter problems and nothing left. */
  code: ExitCodeValue;
  /** Whether `completed: true` is now in the checkpoint. */
  completed: boolean;
  /** Path of the manifest written. */
  manifest: string;
  /** Paths of the `_MD5SUMS` files written. */
  md5sums: string[];
  /** The checkpoint after the update. */
  checkpoint: Checkpoint;
}

/**
 * The exit code of a state: {@linkcode ExitCode.Incomplete} when files are left (scheduled
 * and not verified, or planned and not scheduled), else {@linkcode ExitCode.Failures} when
 * some failed, `damaged` files were found or filter problems stand, else
 * {@linkcode ExitCode.Ok}.
 */
export function verifyCode(state: TransferState, damaged = 0): ExitCodeValue {
  if (state.left.files > 0 || state.unscheduled.files > 0) return ExitCode.Incomplete;
  if (state.failed.files > 0 || damaged > 0 || state.filterProblems.length > 0) {
    return ExitCode.Failures;
  }
  return ExitCode.Ok;
}

/** Options of {@linkcode verifyTransfer}. */
export interface VerifyTransferOptions {
  /**
   * Problems a deep check found and did not repair. When given, the published files are not
   * looked at again; when absent, each is checked with one stat (exists, regular, its size).
   */
  deepProblems?: readonly DeepProblem[];
  /** A state already read (by {@linkcode readTransferState}); read afresh when absent. */
  state?: TransferState;
}

/**
 * Runs the verify phase: reads the plan and the logs, checks every published file with one
 * stat (no data is read; skipped when a deep check's problems are given), writes the manifest
 * and the `_MD5SUMS` lists of every verified file, and sets `completed: true` in the
 * checkpoint when nothing is left, failed or damaged and no filter problem stands (and clears
 * a stale `completed: true` otherwise). Throws an {@linkcode InputError} when there is no
 * schedule.
 */
export async function verifyTransfer(
  config: Config,
  options: VerifyTransferOptions = {},
): Promise<VerifyTransferResult> {
  const paths = toolPaths(config);
  const state = options.state ?? await readTransferState(config, { requireSchedule: true });
  const damaged = options.deepProblems
    ? [...options.deepProblems]
    : await statEveryPublished(state.published);
  const code = verifyCode(state, damaged.length);
  await writeManifest(paths.manifest, state.published);
  const md5sums = await writeMd5Sums(config, state.published);
  const complete = code === ExitCode.Ok;
  let checkpoint = await readCheckpoint(paths.checkpoint);
  if (complete && checkpoint.completed !== true) {
    checkpoint = await updateCheckpoint(paths.checkpoint, { completed: true });
  } else if (!complete && checkpoint.completed === true) {
    checkpoint = await updateCheckpoint(paths.checkpoint, { completed: false });
  }
  return {
    state,
    damaged,
    code,
    completed: checkpoint.completed === true,
    manifest: paths.manifest,
    md5sums,
    checkpoint,
  };
}
