/**
 * The one Slurm client of the tool: every call of `sbatch`, `squeue`, `scontrol` and
 * `scancel`, and the parsing of Slurm's time formats.
 * @module
 */

import { UserError } from "../errors.ts";

/** A Slurm command cannot be run, or refused what it was asked. */
export class SlurmError extends UserError {}

/** The commands of Slurm the tool calls. */
export type SlurmCommand = "sbatch" | "squeue" | "scontrol" | "scancel";

/** What a Slurm command printed and how it exited. */
export interface SlurmOutput {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/**
 * Runs a Slurm command; throws {@linkcode SlurmError} when it is not on PATH (the message
 * says to run on a login node or load the Slurm module).
 */
async function runSlurm(cmd: SlurmCommand, args: string[]): Promise<SlurmOutput> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new SlurmError(
        `'${cmd}' is not on PATH: run this on a Slurm login node (or load the Slurm module)`,
      );
    }
    throw err;
  }
}

/** Like {@linkcode runSlurm}, but `null` when the command is missing or exits non-zero. */
async function querySlurm(cmd: SlurmCommand, args: string[]): Promise<string | null> {
  try {
    const out = await runSlurm(cmd, args);
    return out.code === 0 ? out.stdout : null;
  } catch (err) {
    if (err instanceof SlurmError) return null;
    throw err;
  }
}

/** True for a job state from which a job never runs again. */
export function isFinalJobState(state: string): boolean {
  return /COMPLETED|CANCELLED|FAILED|TIMEOUT|PREEMPTED|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE/
    .test(state);
}

/**
 * States of the jobs `ids` as `squeue` lists them (`PENDING`, `RUNNING`, ...). A job Slurm no
 * longer lists is absent from the map (it ended long enough ago to be forgotten); `squeue`
 * exits non-zero when it knows none of them, which gives an empty map. `null` when `squeue`
 * cannot be run, so nothing is known.
 */
export async function jobStates(ids: readonly string[]): Promise<Map<string, string> | null> {
  const states = new Map<string, string>();
  if (ids.length === 0) return states;
  let out: SlurmOutput;
  try {
    out = await runSlurm("squeue", ["-h", "-j", ids.join(","), "-o", "%i %T"]);
  } catch (err) {
    if (err instanceof SlurmError) return null;
    throw err;
  }
  if (out.code !== 0) return out.stdout.trim() === "" ? states : null;
  for (const line of out.stdout.split("\n")) {
    const [id, state] = line.trim().split(/\s+/);
    if (id && state) states.set(id, state);
  }
  return states;
}

/** Submits a batch job with `sbatch --parsable` arguments `argv`; resolves to its job id. */
export async function submitBatch(argv: string[]): Promise<string> {
  const r = await runSlurm("sbatch", argv);
  if (r.code !== 0) {
    throw new SlurmError(`sbatch refused the job (exit ${r.code}): ${r.stderr.trim()}`);
  }
  const id = r.stdout.trim().split("\n").pop()?.split(";")[0] ?? "";
  if (!/^\d+(_\d+)?$/.test(id)) {
    throw new SlurmError(`sbatch printed no job id: ${JSON.stringify(r.stdout)}`);
  }
  return id;
}

/** Cancels jobs, ignoring every failure (used to undo a chain that could not be completed). */
export async function cancelJobs(ids: readonly string[]): Promise<void> {
  if (ids.length > 0) await querySlurm("scancel", [...ids]).catch(() => {});
}

/** Seconds left of job `id` (`squeue -o %L`), or null when Slurm does not say. */
export async function jobTimeLeftSeconds(id: string): Promise<number | null> {
  const left = await querySlurm("squeue", ["-h", "-j", id, "-o", "%L"]);
  return left === null ? null : parseSlurmDuration(left.trim().split("\n")[0] ?? "");
}

/** Epoch ms at which job `id` ends (`EndTime` of `scontrol show job`), or null. */
export async function jobEndTimeMs(id: string): Promise<number | null> {
  const show = await querySlurm("scontrol", ["show", "job", id]);
  const m = show ? /EndTime=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)/.exec(show) : null;
  return m ? new Date(m[1]).getTime() : null;
}

/** Parses Slurm durations: `[D-]HH:MM:SS`, `MM:SS`, `MM`, or plain seconds with `s`. */
export function parseSlurmDuration(text: string): number | null {
  const t = text.trim();
  let m = /^(\d+)s$/.exec(t);
  if (m) return Number(m[1]);
  m = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(t);
  if (!m) return null;
  const days = Number(m[1] ?? 0);
  const parts = [m[2], m[3], m[4]].filter((x) => x !== undefined).map(Number);
  if (m[1] !== undefined) {
    // D-H, D-H:M, D-H:M:S
    const [h, mi = 0, s = 0] = parts;
    return ((days * 24 + h) * 60 + mi) * 60 + s;
  }
  if (parts.length === 3) return (parts[0] * 60 + parts[1]) * 60 + parts[2];
  if (parts.length === 2) return parts[0] * 60 + parts[1];
  return parts[0] * 60;
}
