/**
 * Submitting the tool's Slurm chain: filter, scheduler, `num_workers` worker jobs and the
 * verifier, each `sbatch --dependency=afterany:<previous>`, skipping what the checkpoint
 * shows done, recording every job id in `job_history.csv`.
 *
 * The batch scripts are `slurm/tools_{filter,scheduler,worker,verifier}.slurm`; the site's
 * settings (extra sbatch arguments, Deno, the MPI launch command, modules) are in one bash
 * file, `slurm/site.sh` by default. This module reads that file's sbatch settings by sourcing
 * it in bash; the jobs source it themselves.
 *
 * Every job is given `--export=ALL,DT_HOME=<repo>,CONFIG_PATH=<config>,DT_SITE=<site file>`:
 * sbatch runs a copy of the script from its spool folder, so the script cannot find the
 * repository next to itself.
 * @module
 */

import { writeAll } from "../io/write_all.ts";
import { join, resolve } from "node:path";
import type { Config } from "../config.ts";
import { CONFIG_ENV } from "../config.ts";
import { readCheckpoint, updateCheckpoint } from "../records/checkpoint.ts";
import type { Checkpoint } from "../records/checkpoint.ts";
import { formatCsvLine, parseCsv, parseCsvLine } from "../records/csv.ts";
import { UserError } from "../errors.ts";
import { toolPaths } from "../layout.ts";
import { cancelJobs, jobStates, parseSlurmDuration, submitBatch } from "./client.ts";

/** The four jobs of a chain. */
export type SlurmPhase = "filter" | "scheduler" | "worker" | "verifier";

/** All phases, in chain order. */
export const SLURM_PHASES: readonly SlurmPhase[] = ["filter", "scheduler", "worker", "verifier"];

/** Batch script of each phase, in `<repo>/slurm/`. */
export const SLURM_SCRIPTS: Readonly<Record<SlurmPhase, string>> = {
  filter: "tools_filter.slurm",
  scheduler: "tools_scheduler.slurm",
  worker: "tools_worker.slurm",
  verifier: "tools_verifier.slurm",
};

/** Time limit of a worker job when neither `--worker-time` nor `DT_WORKER_TIME` says. */
export const DEFAULT_WORKER_TIME = "03:00:00";

/** Environment variable naming the site settings file (default `<repo>/slurm/site.sh`). */
export const SITE_ENV = "DT_SITE";

/** Environment variable naming the repository inside the jobs. */
export const REPOSITORY_ENV = "DT_HOME";

/** Columns of `job_history.csv`. */
export const JOB_HISTORY_COLUMNS: readonly string[] = [
  "submitted_at",
  "phase",
  "job_id",
  "dependency",
  "script",
];

/** Thrown when the chain cannot be submitted (site file, sbatch, arguments). */
export class SubmitError extends UserError {}

/** The sbatch-related settings of the site file. */
export interface SiteSettings {
  /** Absolute path of the site file. */
  path: string;
  /** `DT_SBATCH_ARGS`: extra sbatch arguments of every job (account, partition, qos...). */
  sbatchArgs: string[];
  /** `DT_SBATCH_ARGS_FILTER`, `_SCHEDULER`, `_WORKER`, `_VERIFIER`: per phase, after those. */
  phaseArgs: Record<SlurmPhase, string[]>;
  /** `DT_WORKER_TIME`: time limit of the worker jobs, if set. */
  workerTime?: string;
}

const SITE_ARRAYS: Record<string, SlurmPhase | "all"> = {
  DT_SBATCH_ARGS: "all",
  DT_SBATCH_ARGS_FILTER: "filter",
  DT_SBATCH_ARGS_SCHEDULER: "scheduler",
  DT_SBATCH_ARGS_WORKER: "worker",
  DT_SBATCH_ARGS_VERIFIER: "verifier",
};

/**
 * Reads the sbatch settings of a site file by sourcing it in `bash` (its `dt_site_setup`
 * function, where module loads belong, is not called). Throws {@linkcode SubmitError} when the
 * file is missing or bash fails on it.
 */
export async function readSiteSettings(path: string): Promise<SiteSettings> {
  const abs = resolve(path);
  try {
    if (!(await Deno.stat(abs)).isFile) throw new Error("not a file");
  } catch {
    throw new SubmitError(
      `${abs}: no site settings file there; copy slurm/site.sh and set ${SITE_ENV} or ` +
        `--site to it`,
    );
  }
  const names = Object.keys(SITE_ARRAYS);
  const script = `source "$1" >&2 || exit 97
for _dt_name in ${names.join(" ")}; do
  declare -n _dt_ref="$_dt_name"
  printf '%s\\0%s\\0' "$_dt_name" "\${#_dt_ref[@]}"
  if [[ \${#_dt_ref[@]} -gt 0 ]]; then printf '%s\\0' "\${_dt_ref[@]}"; fi
  unset -n _dt_ref
done
printf 'DT_WORKER_TIME\\0%s\\0' "\${DT_WORKER_TIME:-}"
`;
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("bash", {
      args: ["-c", script, "dt-site", abs],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    throw new SubmitError(`cannot run bash to read ${abs}: ${(err as Error).message}`);
  }
  const dec = new TextDecoder();
  if (!out.success) {
    throw new SubmitError(
      `${abs}: bash could not source it (exit ${out.code}): ${dec.decode(out.stderr).trim()}`,
    );
  }
  const fields = dec.decode(out.stdout).split("\0");
  const site: SiteSettings = {
    path: abs,
    sbatchArgs: [],
    phaseArgs: { filter: [], scheduler: [], worker: [], verifier: [] },
  };
  let i = 0;
  for (const name of names) {
    if (fields[i] !== name) throw new SubmitError(`${abs}: unexpected output reading ${name}`);
    const n = Number(fields[i + 1]);
    const values = fields.slice(i + 2, i + 2 + n);
    i += 2 + n;
    const target = SITE_ARRAYS[name];
    if (target === "all") site.sbatchArgs = values;
    else site.phaseArgs[target] = values;
  }
  const workerTime = fields[i] === "DT_WORKER_TIME" ? fields[i + 1] : "";
  if (workerTime) site.workerTime = workerTime;
  return site;
}

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
export function slurmOutputFolder(config: Config): string {
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
      `--nodes=${config.maxNodes}`,
      `--ntasks-per-node=${config.workersPerNode}`,
      `--cpus-per-task=${config.cpuPerWorker}`,
      `--time=${workerTime}`,
    ];
    for (let i = 1; i <= config.numWorkers; i++) {
      add("worker", `worker_${i}`, `worker ${i}/${config.numWorkers}`, workerArgs);
    }
    add("verifier", "verifier", "verifier");
  }
  return { jobs, resets, skipped, warnings, outputFolder, after: options.after };
}

/** Quotes a word for a POSIX shell when it needs it. */
export function shellQuote(word: string): string {
  if (word !== "" && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'"'"'`)}'`;
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

/** The default {@linkcode SbatchRunner}: the real `sbatch` on PATH. */
export const runSbatch: SbatchRunner = submitBatch;

/** Job ids recorded in `job_history.csv` (empty when there is none). */
export async function readJobHistory(path: string): Promise<Record<string, string>[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return parseCsv(text).records;
}

/**
 * Appends records to `job_history.csv`, writing the header when the file is new. An existing
 * file keeps its own columns (ours are matched by name); a torn last line is ended first.
 */
export async function appendJobHistory(
  path: string,
  records: readonly Record<string, string>[],
): Promise<void> {
  let columns = JOB_HISTORY_COLUMNS;
  let prefix = "";
  let existing = "";
  try {
    existing = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  if (existing.trim() === "") {
    prefix = JOB_HISTORY_COLUMNS.join(",") + "\n";
  } else {
    columns = parseCsvLine(existing.split("\n")[0].replace(/\r$/, "")) ?? JOB_HISTORY_COLUMNS;
    if (!existing.endsWith("\n")) prefix = "\n";
  }
  const body = records.map((r) => formatCsvLine(columns, r)).join("");
  const file = await Deno.open(path, { create: true, append: true });
  try {
    const bytes = new TextEncoder().encode(prefix + body);
    await writeAll(file, bytes);
    await file.syncData();
  } finally {
    file.close();
  }
}

/**
 * Jobs of `job_history.csv` that Slurm still lists as pending or running (`squeue`), as
 * `id (phase, STATE)`. Jobs Slurm forgot are done.
 */
export async function activeChainJobs(historyPath: string): Promise<string[]> {
  const records = await readJobHistory(historyPath);
  const phaseOf = new Map(records.map((r) => [r.job_id, r.phase]));
  const ids = [...phaseOf.keys()].filter((id) => /^\d+(_\d+)?$/.test(id ?? ""));
  if (ids.length === 0) return [];
  const states = await jobStates(ids);
  if (states === null) {
    throw new SubmitError(
      "'squeue' cannot be run: run this on a Slurm login node (or load the Slurm module)",
    );
  }
  // In the order of the history, so that the last one is the end of the latest chain.
  return ids.filter((id) => states.has(id)).map((id) =>
    `${id} (${phaseOf.get(id)}, ${states.get(id)})`
  );
}

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
  const sbatch = hooks.sbatch ?? runSbatch;
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
      throw new SubmitError(`${job.label}: ${(err as Error).message}${cancelled}`);
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

/** Root of this repository: the folder holding `core/`. */
export function repositoryRoot(): string {
  return new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
}
