/**
 * `deno task schedule --config FILE`: combines the filter tables into `schedule.csv`.
 * @module
 */

import { configOnlyCommand, runMain } from "../core/cli.ts";
import { formatBytes } from "../core/format.ts";
import { WORLD_SIZE_KEYS } from "../core/config.ts";
import { ExitCode } from "../core/exit_codes.ts";
import { runSchedule } from "../core/plan/schedule.ts";

/** Runs the scheduler on `args` (default: the command line) and exits with its code. */
export function start(args: string[] = Deno.args): Promise<never> {
  return runMain(async () => {
    const config = await configOnlyCommand(
      "schedule",
      "Combines all filter tables into schedule.csv, assigning files to the\n" +
        "max_nodes * workers_per_node ranks of the worker jobs, balanced by bytes.",
      args,
      WORLD_SIZE_KEYS,
    );
    const s = await runSchedule(config);
    const ideal = s.bytes / s.world;
    const heaviest = Math.max(...s.loads);
    const over = ideal > 0 ? ((heaviest / ideal - 1) * 100).toFixed(2) : "0.00";
    console.log(
      `schedule: ${s.files} files, ${formatBytes(s.bytes)} over ${s.world} ranks; ` +
        `heaviest rank ${formatBytes(heaviest)} (${over}% over the ideal ${formatBytes(ideal)})`,
    );
    console.log(`schedule: wrote ${s.path}`);
    return ExitCode.Ok;
  });
}

if (import.meta.main) await start();
