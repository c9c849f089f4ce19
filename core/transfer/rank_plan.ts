/**
 * What is left for each rank: the schedule's rows that no verification log shows verified,
 * balanced by bytes over the current world with the schedule's own algorithm (so a re-run with
 * another number of ranks is fine), after checking that no row reads or writes outside the
 * configured folders.
 * @module
 */

import type { Config } from "../config.ts";
import { InputError } from "../errors.ts";
import { isWithin } from "../is_within.ts";
import { datasetFolder, parseDestinationPath, safeServerName, toolPaths } from "../layout.ts";
import { readSchedule } from "../plan/plan_table.ts";
import type { ScheduleRow } from "../plan/plan_table.ts";
import { balanceRows } from "../plan/schedule.ts";

import { readVerificationLogs } from "../records/verification_log.ts";

/** Thrown when the schedule names a path outside the configured folders. */
export class ScheduleRootError extends InputError {}

/**
 * Checks that a schedule row reads under the images folder and writes exactly
 * `<dst folder>/server=<safe name>/<data|errors>_<id>.parquet`. A hand-edited schedule cannot
 * make the runner write anywhere else.
 */
function checkRowRoots(config: Config, row: ScheduleRow, where: string): void {
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

/** The work of a run: the rows not yet verified, balanced over `size` ranks. */
export interface RankPlan {
  /**
   * Every rank's list, in rank order, each largest first: the same on every rank (the shared
   * work queue checks it), each rank starting on its own.
   */
  lists: ScheduleRow[][];
  /** Rows of this rank, largest first (`lists[rank]`). */
  mine: ScheduleRow[];
  /** Rows of the schedule already verified. */
  verified: number;
  /** All rows of the schedule. */
  all: ScheduleRow[];
}

/** Largest first, then by source path: the order each rank works its list in. */
function largestFirst(a: ScheduleRow, b: ScheduleRow): number {
  return b.sizeBytes - a.sizeBytes || (a.srcPath < b.srcPath ? -1 : a.srcPath > b.srcPath ? 1 : 0);
}

/** Loads the schedule and the logs and returns every rank's share of what is left. */
export async function planRank(config: Config, rank: number, size: number): Promise<RankPlan> {
  const paths = toolPaths(config);
  const all = await readSchedule(paths.schedule);
  all.forEach((row, i) => checkRowRoots(config, row, `${paths.schedule} row ${i + 2}`));
  const state = await readVerificationLogs(paths.verification);
  const left = all.filter((r) => state.byDst.get(r.dstPath)?.status !== "verified");
  const lists: ScheduleRow[][] = Array.from({ length: size }, () => []);
  for (const row of balanceRows(left, size)) lists[row.rank].push(row);
  for (const list of lists) list.sort(largestFirst);
  return { lists, mine: lists[rank], verified: all.length - left.length, all };
}
