/**
 * The schedule phase: combines all filter tables into one schedule whose rows are assigned
 * to the ranks of the worker world, balanced by bytes.
 * @module
 */

import type { Config } from "../config.ts";
import { worldSize } from "../config.ts";
import { readCheckpoint, requireSteps, updateCheckpoint } from "../records/checkpoint.ts";
import { InputError } from "../errors.ts";
import { writeFileAtomic } from "../records/atomic_file.ts";
import { toolPaths } from "../layout.ts";
import { assignRanks, rankLoads } from "./balance.ts";
import { formatSchedule, listFilterTables, readFilterTables } from "./plan_table.ts";
import type { PlanRow, ScheduleRow } from "./plan_table.ts";
import { withToolLock } from "../records/tool_lock.ts";

/** What a schedule run wrote. */
export interface ScheduleSummary {
  /** Path of the schedule written. */
  path: string;
  /** Rows in the schedule. */
  files: number;
  /** Bytes in the schedule. */
  bytes: number;
  /** Ranks of the world the schedule is made for. */
  world: number;
  /** Bytes assigned to each rank. */
  loads: number[];
}

/** Compares two plan rows by source path (a total, deterministic order). */
function bySourcePath(a: PlanRow, b: PlanRow): number {
  return a.srcPath < b.srcPath ? -1 : a.srcPath > b.srcPath ? 1 : 0;
}

/**
 * Assigns `rows` to `world` ranks with the schedule's algorithm. The result depends only on
 * the set of rows and the world size, not on their order.
 */
export function balanceRows<T extends PlanRow>(
  rows: readonly T[],
  world: number,
): Array<T & { rank: number }> {
  const sorted = rows.slice().sort(bySourcePath);
  const ranks = assignRanks(sorted.map((r) => r.sizeBytes), world);
  return sorted.map((r, i) => ({ ...r, rank: ranks[i] }));
}

/** Runs the schedule phase for `config`. */
export async function runSchedule(config: Config): Promise<ScheduleSummary> {
  const paths = toolPaths(config);
  requireSteps(await readCheckpoint(paths.checkpoint), paths.checkpoint, "filter");
  if ((await listFilterTables(paths.filterTables)).length === 0) {
    throw new InputError(
      `${paths.filterTables}: no filter table yet; run 'deno task filter' first (if it ran, ` +
        `it found no file of a completed partition in ${config.imagesFolder})`,
    );
  }
  return await withToolLock(paths.lock, "filter or schedule", async () => {
    const rows = await readFilterTables(paths.filterTables);
    const world = worldSize(config);
    const scheduled: ScheduleRow[] = balanceRows(rows, world);
    scheduled.sort((a, b) => a.rank - b.rank || bySourcePath(a, b));
    await writeFileAtomic(paths.schedule, formatSchedule(scheduled));
    await updateCheckpoint(paths.checkpoint, {
      scheduling_completed: true,
    });
    return {
      path: paths.schedule,
      files: scheduled.length,
      bytes: scheduled.reduce((s, r) => s + r.sizeBytes, 0),
      world,
      loads: rankLoads(scheduled.map((r) => r.sizeBytes), scheduled.map((r) => r.rank), world),
    };
  });
}
