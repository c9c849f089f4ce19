/**
 * Submitting the tool's Slurm chain as {@linkcode planSubmission} plans it: refuse while an
 * earlier chain is queued, apply the resets to the checkpoint, then `sbatch` job after job,
 * recording each id in `job_history.csv` and cancelling the chain's jobs if sbatch refuses one.
 *
 * The batch scripts are `slurm/tools_{filter,scheduler,worker,verifier}.slurm`; the site's
 * settings are read by `site_settings.ts`, the history kept by `job_history.ts`.
 * @module
 */

import type { Config } from "../config.ts";
import { errorMessage } from "../errors.ts";
import { toolPaths } from "../layout.ts";
import { readCheckpoint, updateCheckpoint } from "../records/checkpoint.ts";
import { cancelJobs, submitBatch } from "./client.ts";
import { activeChainJobs, appendJobHistory } from "./job_history.ts";
import { planSubmission, sbatchArgv } from "./submit_plan.ts";
import type { PlannedJob, SubmitOptions, SubmitPlan } from "./submit_plan.ts";
import { SubmitError } from "./submit_error.ts";

/** One submitted job. */
export interface SubmittedJob {
  /** The planned job. */
  job: PlannedJob;
  /** Its Slurm job id. */
  id: string;
  /** The job it waits for, if any. */
  dependency?: string;
}

/** Runs `sbatch --parsable ...` and returns the job id. */
export type SbatchRunner = (argv: string[]) => Promise<string>;

/** Result of {@linkcode submitChain}. */
export interface SubmitResult {
  /** The plan that was carried out. */
  plan: SubmitPlan;
  /** Jobs submitted, in order. */
  submitted: SubmittedJob[];
}

/** Extra hooks of {@linkcode submitChain}, for tests. */
export interface SubmitHooks {
  /** Replaces the real sbatch. */
  sbatch?: SbatchRunner;
  /** Receives the skipped phases, the resets and a line per job submitted (its id last). */
  print?: (line: string) => void;
  /** Receives each warning (default: `warning: ...` on stderr). */
  warn?: (line: string) => void;
  /** Skip the check for jobs of an earlier submission still queued. */
  ignoreActive?: boolean;
}

/**
 * Submits the chain: refuses while jobs of an earlier submission are pending or running
 * (unless `after` chains onto them), applies the resets to the checkpoint, creates the output
 * folder, then submits job after job, appending each id to `job_history.csv` as soon as it
 * exists. If sbatch refuses a job, the jobs this call submitted are cancelled.
 */
export async function submitChain(
  config: Config,
  options: SubmitOptions,
  hooks: SubmitHooks = {},
): Promise<SubmitResult> {
  const paths = toolPaths(config);
  const print = hooks.print ?? console.log;
  const warn = hooks.warn ?? ((line: string) => console.error(`warning: ${line}`));
  const plan = planSubmission(config, await readCheckpoint(paths.checkpoint), options);
  for (const w of plan.warnings) warn(w);
  for (const s of plan.skipped) print(s);
  if (plan.jobs.length === 0) return { plan, submitted: [] };
  if (!hooks.ignoreActive && options.after === undefined) {
    const active = await activeChainJobs(paths.jobHistory);
    if (active.length > 0) {
      const last = active[active.length - 1].split(" ")[0];
      throw new SubmitError(
        `jobs of an earlier submission are still queued or running: ${active.join(", ")}; ` +
          `wait for them, cancel them (scancel), or chain after them with --after ${last}`,
      );
    }
  }
  await Deno.mkdir(paths.root, { recursive: true });
  await Deno.mkdir(plan.outputFolder, { recursive: true });
  const cleared = Object.keys(plan.resets);
  if (cleared.length > 0) {
    await updateCheckpoint(paths.checkpoint, plan.resets);
    print(`checkpoint: set to false: ${cleared.join(", ")}`);
  }
  const sbatch = hooks.sbatch ?? submitBatch;
  const submitted: SubmittedJob[] = [];
  let previous = options.after;
  for (const job of plan.jobs) {
    let id: string;
    try {
      id = await sbatch(sbatchArgv(job, previous));
    } catch (err) {
      if (submitted.length > 0 && hooks.sbatch === undefined) {
        await cancelJobs(submitted.map((s) => s.id));
      }
      const cancelled = submitted.length > 0
        ? ` (cancelled the jobs submitted before it: ${submitted.map((s) => s.id).join(" ")})`
        : "";
      throw new SubmitError(`${job.label}: ${errorMessage(err)}${cancelled}`);
    }
    submitted.push({ job, id, dependency: previous });
    await appendJobHistory(paths.jobHistory, [{
      submitted_at: new Date().toISOString(),
      phase: job.phase,
      job_id: id,
      dependency: previous ?? "",
      script: job.script,
    }]);
    const after = previous === undefined ? "" : ` (after ${previous})`;
    print(`${job.label}: submitted${after} job ${id}`);
    previous = id;
  }
  return { plan, submitted };
}
