/**
 * When the current Slurm job ends, so the runner stops taking files in time. Sources, the
 * earliest wins: `SLURM_JOB_END_TIME` (not set by Slurm before 23.02), the time left that
 * `squeue` reports for `SLURM_JOB_ID`, the `EndTime` of `scontrol show job`, and an explicit
 * `--time-limit`.
 * @module
 */

import { UsageError } from "../cli.ts";
import { jobEndTimeMs, jobTimeLeftSeconds, parseSlurmDuration } from "../slurm/client.ts";

/** A deadline and where it came from. */
export interface Deadline {
  /** Epoch milliseconds when the job ends, or null when no limit is known. */
  endsAtMs: number | null;
  /** Where the limit came from, for the log. */
  source: string;
}

/** Options of {@linkcode findDeadline}. */
export interface DeadlineOptions {
  /** The environment to read (default: the process's). */
  env?: Record<string, string>;
  /** An explicit limit in seconds from `startMs`. */
  timeLimitSeconds?: number;
  /** Start of the run, epoch ms (default: now). */
  startMs?: number;
}

/** Finds the earliest known end of this job. */
export async function findDeadline(options: DeadlineOptions = {}): Promise<Deadline> {
  const env = options.env ?? Deno.env.toObject();
  const now = options.startMs ?? Date.now();
  const candidates: Deadline[] = [];
  const end = Number(env.SLURM_JOB_END_TIME);
  if (env.SLURM_JOB_END_TIME && Number.isFinite(end) && end > 0) {
    candidates.push({ endsAtMs: end * 1000, source: "SLURM_JOB_END_TIME" });
  } else if (env.SLURM_JOB_ID) {
    const id = env.SLURM_JOB_ID;
    const seconds = await jobTimeLeftSeconds(id);
    if (seconds !== null) {
      candidates.push({ endsAtMs: now + seconds * 1000, source: `squeue (job ${id})` });
    } else {
      const endsAtMs = await jobEndTimeMs(id);
      if (endsAtMs !== null) candidates.push({ endsAtMs, source: `scontrol (job ${id})` });
    }
  }
  if (options.timeLimitSeconds !== undefined) {
    candidates.push({
      endsAtMs: now + options.timeLimitSeconds * 1000,
      source: `--time-limit ${options.timeLimitSeconds}s`,
    });
  }
  if (candidates.length === 0) return { endsAtMs: null, source: "no time limit known" };
  return candidates.reduce((a, b) => (b.endsAtMs! < a.endsAtMs! ? b : a));
}

/**
 * Seconds of a `--time-limit` value (`[D-]HH:MM:SS`, `MM:SS` or `90s`), or `undefined` when
 * none is given. Throws {@linkcode UsageError} for any other text.
 */
export function parseTimeLimit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seconds = parseSlurmDuration(text);
  if (seconds === null) {
    throw new UsageError(
      `run: --time-limit: expected [D-]HH:MM:SS, MM:SS or 90s, got "${text}"`,
    );
  }
  return seconds;
}

/** True when less than `marginSeconds` are left before `deadline` at `nowMs`. */
export function outOfTime(deadline: Deadline, marginSeconds: number, nowMs: number): boolean {
  return deadline.endsAtMs !== null && nowMs + marginSeconds * 1000 >= deadline.endsAtMs;
}
