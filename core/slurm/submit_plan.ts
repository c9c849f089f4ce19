/**
 * Planning the tool's Slurm chain: filter, scheduler, `num_workers` worker jobs and the
 * verifier, each `sbatch --dependency=afterany:<previous>`, skipping what the checkpoint
 * shows done (pure: nothing is read or written).
 *
 * Every job is given `--export=ALL,DT_HOME=<repo>,CONFIG_PATH=<config>,DT_SITE=<site file>`:
 * sbatch runs a copy of the script from its spool folder, so the script cannot find the
 * repository next to itself.
 * @module
 */

import { join } from "node:path";
import type { Config } from "../config.ts";
import { CONFIG_ENV, toolsParameter } from "../config.ts";
import type { Checkpoint } from "../records/checkpoint.ts";
import { toolPaths } from "../layout.ts";
import { parseSlurmDuration } from "./client.ts";
import { SITE_ENV } from "./site_settings.ts";
import type { SiteSettings } from "./site_settings.ts";
import { SLURM_SCRIPTS } from "./slurm_phase.ts";
import type { SlurmPhase } from "./slurm_phase.ts";
import { SubmitError } from "./submit_error.ts";

/** Time limit of a worker job when neither `--worker-time` nor `DT_WORKER_TIME` says. */
export const DEFAULT_WORKER_TIME = "03:00:00";

/** Environment variable naming the repository inside the jobs. */
const REPOSITORY_ENV = "DT_HOME";

/**
 * Checks a time limit in one of the forms sbatch accepts (`MM`, `MM:SS`, `HH:MM:SS`, `D-HH`,
 * `D-HH:MM`, `D-HH:MM:SS`) and returns its seconds, or null.
 */
export function parseSbatchTime(text: string): number | null {
  if (!/^(\d+-\d+(:\d+){0,2}|\d+(:\d+){0,2})$/.test(text.trim())) return null;
  return parseSlurmDuration(text);
}

/** Options of a submission. */
export interface SubmitOptions {
  /** Root of this repository (holds `phases/` and `slurm/`). */
  home: string;
  /** The site settings. */
  site: SiteSettings;
  /** Clear `filtering_completed` and `scheduling_completed`: run the filter again. */
  resetFiltering?: boolean;
  /** Clear `scheduling_completed`: run the scheduler again. */
  resetScheduling?: boolean;
  /** Clear `completed`: run workers and the verifier even if the checkpoint says done. */
  resetRunners?: boolean;
  /** Time limit of the worker jobs (sbatch form); default site's, else 03:00:00. */
  workerTime?: string;
  /** Job id the first job waits for (`afterany`). */
  after?: string;
}

/** One job of a planned chain. */
export interface PlannedJob {
  /** Its phase. */
  phase: SlurmPhase;
  /** `filter`, `scheduler`, `worker_1`..., `verifier`: a shell variable name in dry runs. */
  key: string;
  /** For people: `worker 1/2`. */
  label: string;
  /** The batch script, absolute. */
  script: string;
  /** sbatch arguments without `--parsable`, `--dependency` and the script. */
  args: string[];
}

/** What a submission will do. */
export interface SubmitPlan {
  /** Jobs in submission order; each depends on the one before (the first on `after`). */
  jobs: PlannedJob[];
  /** Checkpoint flags the resets clear (set to false) before submitting. */
  resets: Checkpoint;
  /** Why phases are skipped, one line each. */
  skipped: string[];
  /** Warnings, one line each. */
  warnings: string[];
  /** Folder of the jobs' output files (created before submitting). */
  outputFolder: string;
  /** Job id the first job waits for. */
  after?: string;
}

/** Folder of the jobs' `%x-%j.out` files: `<tool folder>/logs/slurm`. */
function slurmOutputFolder(config: Config): string {
  return join(toolPaths(config).logs, "slurm");
}

/**
 * Plans a submission from the checkpoint as it is now (pure: nothing is read or written).
 * The filter runs when reset or not completed; the scheduler when the filter runs, when reset
 * or not completed; the workers and the verifier when the scheduler runs, when reset or when
 * the checkpoint does not say `completed: true`.
 */
export function planSubmission(
  config: Config,
  checkpoint: Checkpoint,
  options: SubmitOptions,
): SubmitPlan {
  for (const [what, path] of [["config", config.configPath], ["repository", options.home]]) {
    if (path.includes(",")) {
      throw new SubmitError(
        `the ${what} path ${path} holds a comma, which sbatch --export cannot pass; move it`,
      );
    }
  }
  const resets: Checkpoint = {};
  if (options.resetFiltering) {
    resets.filtering_completed = false;
    resets.scheduling_completed = false;
  }
  if (options.resetScheduling) resets.scheduling_completed = false;
  if (options.resetRunners) resets.completed = false;
  const cp = { ...checkpoint, ...resets };
  const skipped: string[] = [];
  const warnings: string[] = [];
  const runFilter = cp.filtering_completed !== true;
  if (!runFilter) skipped.push("filter: skipped, the checkpoint says filtering_completed");
  const runScheduler = runFilter || cp.scheduling_completed !== true;
  if (!runScheduler) skipped.push("scheduler: skipped, the checkpoint says scheduling_completed");
  const runWorkers = runScheduler || cp.completed !== true;
  if (!runWorkers) {
    skipped.push(
      "workers and verifier: skipped, the checkpoint says completed (--reset-runners runs them)",
    );
  }

  const workerTime = options.workerTime ?? options.site.workerTime ?? DEFAULT_WORKER_TIME;
  const seconds = parseSbatchTime(workerTime);
  if (seconds === null) {
    throw new SubmitError(
      `worker time "${workerTime}" is not an sbatch time limit ` +
        `(MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)`,
    );
  }
  if (runWorkers && seconds <= config.transfer.timeMarginSeconds) {
    warnings.push(
      `worker time ${workerTime} (${seconds}s) is not more than data_transfer.` +
        `time_margin_seconds (${config.transfer.timeMarginSeconds}s): every worker job will ` +
        `stop before copying anything (exit 4)`,
    );
  }
  if (options.after !== undefined && !/^\d+(_\d+)?$/.test(options.after)) {
    throw new SubmitError(`--after: expected a Slurm job id, got "${options.after}"`);
  }

  const outputFolder = slurmOutputFolder(config);
  const site = options.site;
  const common = (phase: SlurmPhase) => [
    ...site.sbatchArgs,
    ...site.phaseArgs[phase],
    `--output=${join(outputFolder, "%x-%j.out")}`,
    `--export=ALL,${REPOSITORY_ENV}=${options.home},${CONFIG_ENV}=${config.configPath},` +
    `${SITE_ENV}=${site.path}`,
  ];
  const script = (phase: SlurmPhase) => join(options.home, "slurm", SLURM_SCRIPTS[phase]);
  const jobs: PlannedJob[] = [];
  const add = (phase: SlurmPhase, key: string, label: string, extra: string[] = []) =>
    jobs.push({ phase, key, label, script: script(phase), args: [...common(phase), ...extra] });
  if (runFilter) add("filter", "filter", "filter");
  if (runScheduler) add("scheduler", "scheduler", "scheduler");
  if (runWorkers) {
    const workerArgs = [
      `--nodes=${toolsParameter(config, "max_nodes")}`,
      `--ntasks-per-node=${toolsParameter(config, "workers_per_node")}`,
      `--cpus-per-task=${toolsParameter(config, "cpu_per_worker")}`,
      `--time=${workerTime}`,
    ];
    const workers = toolsParameter(config, "num_workers");
    for (let i = 1; i <= workers; i++) {
      add("worker", `worker_${i}`, `worker ${i}/${workers}`, workerArgs);
    }
    add("verifier", "verifier", "verifier");
  }
  return { jobs, resets, skipped, warnings, outputFolder, after: options.after };
}

/** The full sbatch argument list of a job, with its dependency. */
export function sbatchArgv(job: PlannedJob, dependency: string | undefined): string[] {
  return [
    "--parsable",
    ...(dependency === undefined ? [] : [`--dependency=afterany:${dependency}`]),
    ...job.args,
    job.script,
  ];
}
