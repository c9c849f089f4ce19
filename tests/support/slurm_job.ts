/**
 * Helpers for tests that submit Slurm jobs: sbatch --parsable, wait for the end with a
 * timeout, read the final state and exit code (from `scontrol show job` while the job is
 * within MinJobAge, else from the jobcomp/filetxt log), parse Slurm durations such as
 * `squeue -o %L` prints them, and read what `deno task submit` printed and its jobs wrote.
 *
 * Every function that runs a Slurm command takes the client environment (`{ SLURM_CONF }`
 * from `startLocalSlurm().env`).
 * @module
 */
import { parseSlurmDuration } from "../../core/slurm/client.ts";
import { type CommandResult, runCommand, runCommandOrFail } from "./command.ts";
import { cleanEnv } from "./mpi_launch.ts";
import { sleep } from "./sleep.ts";

/** States after which a job never runs again. */
export const TERMINAL_STATES: ReadonlySet<string> = new Set([
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "TIMEOUT",
  "NODE_FAIL",
  "PREEMPTED",
  "OUT_OF_MEMORY",
  "BOOT_FAIL",
  "DEADLINE",
  "SPECIAL_EXIT",
  "REVOKED",
]);

/** Final (or current) state of a job. */
export interface JobState {
  jobId: string;
  /** First word of JobState, e.g. COMPLETED, FAILED, TIMEOUT, CANCELLED, PENDING, RUNNING. */
  state: string;
  /** Exit code of the batch script (first number of ExitCode=X:Y). */
  exitCode: number;
  /** Signal that ended it (second number of ExitCode=X:Y); 15 for TIMEOUT. */
  signal: number;
  /** Reason=, e.g. TimeLimit, Dependency, DependencyNeverSatisfied, None. */
  reason: string;
  /** All key=value fields of the record. */
  fields: Record<string, string>;
  /** Where the record came from. */
  source: "scontrol" | "jobcomp";
}

/** Options of {@link sbatch}. */
export interface SbatchOptions {
  /** Working directory of sbatch (and the job's default WorkDir). */
  cwd?: string;
  /** Extra environment for sbatch; the job inherits it (sbatch --export=ALL is the default). */
  env?: Record<string, string>;
}

/** Result of a client command. */
export type { CommandResult };

/** Runs a Slurm client command with the cluster env; never throws on a non-zero exit. */
export function slurmCommand(
  slurmEnv: Record<string, string>,
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; stdin?: string } = {},
): Promise<CommandResult> {
  return runCommand(cmd, args, {
    cwd: options.cwd,
    env: { ...slurmEnv, ...options.env },
    stdin: options.stdin,
  });
}

/**
 * Runs a command as a user of the cluster would from a login shell: a clean environment (no
 * launcher or job variables) plus `env` (the cluster's); a time-out (default 120 s) fails.
 */
export function cleanCommand(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return runCommandOrFail(cmd, args, {
    env: cleanEnv(env),
    clearEnv: true,
    cwd: options.cwd,
    timeoutMs: options.timeoutMs ?? 120_000,
  });
}

/**
 * `sbatch --parsable ARGS...`; returns the job id. Throws with sbatch's message if it refuses
 * (with EnforcePartLimits=ALL an impossible request is refused here instead of pending).
 * Pass the script path as the last arg, or `--wrap=...`.
 */
export async function sbatch(
  slurmEnv: Record<string, string>,
  args: string[],
  options: SbatchOptions = {},
): Promise<string> {
  const r = await slurmCommand(slurmEnv, "sbatch", ["--parsable", ...args], options);
  if (r.code !== 0) {
    throw new Error(`sbatch ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  // --parsable prints "jobid" or "jobid;cluster".
  const id = r.stdout.trim().split(";")[0];
  if (!/^\d+$/.test(id)) throw new Error(`sbatch printed no job id: ${r.stdout}`);
  return id;
}

/** Writes `script` (a `#!/bin/bash` text) to `dir/name` and submits it; returns the job id. */
export async function sbatchScript(
  slurmEnv: Record<string, string>,
  dir: string,
  name: string,
  script: string,
  args: string[] = [],
  options: SbatchOptions = {},
): Promise<string> {
  const path = `${dir}/${name}`;
  await Deno.writeTextFile(path, script, { mode: 0o755 });
  return await sbatch(slurmEnv, [...args, path], { cwd: dir, ...options });
}

/** Parses `Key=Value Key2=Value with spaces ...` (one-line scontrol / jobcomp record). */
export function parseRecord(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  // A field starts at a word that is followed by '=', after whitespace; values may hold spaces
  // and '=' (Tres=cpu=1,mem=4G) but a '=' inside a value is not preceded by whitespace+key.
  const parts = line.trim().split(/\s+(?=[A-Za-z][\w:/.]*=)/);
  for (const p of parts) {
    const eq = p.indexOf("=");
    if (eq > 0) out[p.slice(0, eq)] = p.slice(eq + 1).trim();
  }
  return out;
}

function toState(jobId: string, f: Record<string, string>, source: JobState["source"]): JobState {
  const [x, y] = (f.ExitCode ?? "0:0").split(":");
  return {
    jobId,
    state: (f.JobState ?? "UNKNOWN").split(/\s+/)[0],
    exitCode: Number.parseInt(x, 10) || 0,
    signal: Number.parseInt(y ?? "0", 10) || 0,
    reason: f.Reason ?? "",
    fields: f,
    source,
  };
}

/** Current record of a job from `scontrol show job -o`, or null once it was purged (MinJobAge). */
export async function scontrolJob(
  slurmEnv: Record<string, string>,
  jobId: string,
): Promise<JobState | null> {
  const r = await slurmCommand(slurmEnv, "scontrol", ["show", "job", "-o", jobId]);
  if (r.code !== 0) {
    if (/Invalid job id/i.test(r.stderr)) return null;
    throw new Error(`scontrol show job ${jobId}: ${r.stderr.trim()}`);
  }
  const line = r.stdout.split("\n").find((l) => l.startsWith(`JobId=${jobId} `));
  return line ? toState(jobId, parseRecord(line), "scontrol") : null;
}

/**
 * Record of a finished job from the jobcomp/filetxt log (`LocalSlurm.jobCompLog`), or null.
 * Note: this log writes ExitCode=0:0 for a TIMEOUT job; scontrol says 0:15.
 */
export async function jobCompRecord(jobCompLog: string, jobId: string): Promise<JobState | null> {
  const text = await Deno.readTextFile(jobCompLog).catch(() => "");
  const lines = text.split("\n").filter((l) => l.startsWith(`JobId=${jobId} `));
  if (lines.length === 0) return null;
  return toState(jobId, parseRecord(lines[lines.length - 1]), "jobcomp");
}

/** Options of {@link waitForJob}. */
export interface WaitOptions {
  /** Give up after this many ms (default 120000). */
  timeoutMs?: number;
  /** Poll interval in ms (default 250). */
  pollMs?: number;
  /** jobcomp/filetxt log to fall back on when scontrol no longer knows the job. */
  jobCompLog?: string;
  /** scancel the job on timeout (default true). */
  cancelOnTimeout?: boolean;
}

/**
 * Waits until the job is in a terminal state and returns that state. Throws on timeout with
 * the last state and reason (e.g. PENDING/Resources), after cancelling the job.
 */
export async function waitForJob(
  slurmEnv: Record<string, string>,
  jobId: string,
  options: WaitOptions = {},
): Promise<JobState> {
  const until = Date.now() + (options.timeoutMs ?? 120_000);
  let last: JobState | null = null;
  for (;;) {
    const s = await scontrolJob(slurmEnv, jobId);
    if (s) {
      last = s;
      if (TERMINAL_STATES.has(s.state)) return s;
    } else if (options.jobCompLog) {
      const c = await jobCompRecord(options.jobCompLog, jobId);
      if (c) return c;
    }
    if (Date.now() > until) break;
    await sleep(options.pollMs ?? 250);
  }
  if (options.cancelOnTimeout ?? true) {
    await slurmCommand(slurmEnv, "scancel", [jobId]).catch(() => {});
  }
  throw new Error(
    `job ${jobId} did not finish in ${options.timeoutMs ?? 120_000} ms` +
      (last ? ` (last state ${last.state}, reason ${last.reason})` : " (unknown to scontrol)"),
  );
}

/**
 * Seconds left for a job, as a program inside the job would compute it: first
 * `squeue -h -j ID -o %L`; if that is not a duration (UNLIMITED, or squeue failed), EndTime
 * from `scontrol show job -o ID` minus now (EndTime is the controller's local time without a
 * zone; same machine here). Returns null when the job has no time limit.
 */
export async function remainingSeconds(
  slurmEnv: Record<string, string>,
  jobId: string,
): Promise<number | null> {
  const q = await slurmCommand(slurmEnv, "squeue", ["-h", "-j", jobId, "-o", "%L"]);
  if (q.code === 0) {
    const left = parseSlurmDuration(q.stdout.trim());
    if (left !== null) return left;
    if (/UNLIMITED/.test(q.stdout)) return null;
  }
  const s = await scontrolJob(slurmEnv, jobId);
  const end = s?.fields.EndTime;
  if (!end || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/.test(end)) return null;
  return Math.round((new Date(end).getTime() - Date.now()) / 1000); // local time
}

/**
 * Job ids printed by `deno task submit`, by label (`filter`, `scheduler`, `worker 1/2`,
 * `verifier`): the last word of each `<label>: submitted ... job <id>` line.
 */
export function submittedJobIds(stdout: string): Map<string, string> {
  const ids = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const m = /^(filter|scheduler|worker \d+\/\d+|verifier): submitted\b.* job (\d+)$/.exec(line);
    if (m) ids.set(m[1], m[2]);
  }
  return ids;
}

/**
 * The output of job `jobId` in `logDir` (the tool's `logs/slurm/`, where submit sends
 * `<job name>-<job id>.out`), or a line saying there is none.
 */
export async function submittedJobOutput(logDir: string, jobId: string): Promise<string> {
  for await (const e of Deno.readDir(logDir)) {
    if (e.name.endsWith(`-${jobId}.out`)) return await Deno.readTextFile(`${logDir}/${e.name}`);
  }
  return `(no output file for job ${jobId} in ${logDir})`;
}
