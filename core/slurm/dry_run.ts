/**
 * A submission's plan as the bash script that would submit the same chain (`submit --dry-run`).
 * @module
 */

import { shellQuote } from "../shell_quote.ts";
import { sbatchArgv } from "./submit_plan.ts";
import type { SubmitPlan } from "./submit_plan.ts";

/**
 * The plan as a bash script that submits the same chain: one `key=$(sbatch ...)` line per
 * job, dependencies as `$previous_key`.
 */
export function formatDryRun(plan: SubmitPlan): string[] {
  const lines = ["# dry run: nothing submitted; checkpoint and job_history.csv unchanged"];
  const cleared = Object.keys(plan.resets);
  if (cleared.length > 0) {
    lines.push(`# would set to false in tool_checkpoint.yaml: ${cleared.join(", ")}`);
  }
  for (const s of plan.skipped) lines.push(`# ${s}`);
  for (const w of plan.warnings) lines.push(`# warning: ${w}`);
  if (plan.jobs.length === 0) {
    lines.push("# nothing to submit");
    return lines;
  }
  lines.push(`mkdir -p ${shellQuote(plan.outputFolder)}`);
  let previous: string | undefined = plan.after;
  for (const job of plan.jobs) {
    // A dependency on a job of this script is a shell variable: left unquoted (ids are digits).
    const argv = sbatchArgv(job, previous).map((a) =>
      a.startsWith("--dependency=afterany:$") ? a : shellQuote(a)
    );
    lines.push(`${job.key}=$(sbatch ${argv.join(" ")})`);
    previous = `$${job.key}`;
  }
  return lines;
}
