/**
 * `deno task filter --config FILE`: plans the transfer of every completed partition. What it
 * cannot plan is reported (exit 3) and recorded in `filter_problems.json`, which `verify` and
 * `status` check again.
 * @module
 */

import { configOnlyCommand, runMain } from "../core/cli.ts";
import { formatBytes } from "../core/format.ts";
import { ExitCode } from "../core/exit_codes.ts";
import { runFilter } from "../core/plan/filter.ts";

/** Runs the filter on `args` (default: the command line) and exits with its code. */
export function start(args: string[] = Deno.args): Promise<never> {
  return runMain(async () => {
    const config = await configOnlyCommand(
      "filter",
      "Finds the successes.parquet and errors.parquet of every completed partition and plans a\n" +
        "destination for each file not planned before (filter_table/*.csv).",
      args,
    );
    const s = await runFilter(config);
    for (const p of s.changed) {
      console.error(`warning: changed since planned: ${p.path}: ${p.reason}`);
    }
    for (const p of s.vanished) console.error(`warning: vanished: ${p.path}: ${p.reason}`);
    for (const p of s.problems) console.error(`problem: ${p.path}: ${p.reason}`);
    console.log(
      `filter: ${s.partitionsSeen} partitions seen, ${s.partitionsCompleted} completed; ` +
        `files planned: ${s.newFiles} new (${formatBytes(s.newBytes)}), ` +
        `${s.alreadyPlanned} already planned; ${s.totalFiles} files, ${
          formatBytes(s.totalBytes)
        } ` +
        `planned in all; ${s.changed.length} changed, ${s.vanished.length} vanished, ` +
        `${s.problems.length} problems`,
    );
    console.log(s.tableWritten ? `filter: wrote ${s.tableWritten}` : "filter: nothing new to plan");
    return s.problems.length > 0 ? ExitCode.Failures : ExitCode.Ok;
  });
}

if (import.meta.main) await start();
