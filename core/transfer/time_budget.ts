/**
 * When the current Slurm job ends, so the runner stops taking files in time. Sources, the
 * earliest wins: `SLURM_JOB_END_TIME` (not set by Slurm before 23.02), the time left that
 * `squeue` reports for `SLURM_JOB_ID`, the `EndTime` of `scontrol show job`, and an explicit
 * `--time-limit`.
 * @module
 */

/** A deadline and where it came from. */
export interface Deadline {
  /** Epoch milliseconds when the job ends, or null when no limit is known. */
  endsAtMs: number | null;
  /** Where the limit came from, for the log. */
  source: string;
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
  let seconds: number;
  if (m[1] !== undefined) {
    // D-H, D-H:M, D-H:M:S
    const [h, mi = 0, s = 0] = parts;
    seconds = ((days * 24 + h) * 60 + mi) * 60 + s;
  } else if (parts.length === 3) seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2];
  else if (parts.length === 2) seconds = parts[0] * 60 + parts[1];
  else seconds = parts[0] * 60;
  return seconds;
}

async function commandOutput(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null;
  }
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
    const left = await commandOutput("squeue", ["-h", "-j", id, "-o", "%L"]);
    const seconds = left === null ? null : parseSlurmDuration(left.trim().split("\n")[0] ?? "");
    if (seconds !== null) {
      candidates.push({ endsAtMs: now + seconds * 1000, source: `squeue (job ${id})` });
    } else {
      const show = await commandOutput("scontrol", ["show", "job", id]);
      const m = show ? /EndTime=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)/.exec(show) : null;
      if (m) {
        candidates.push({ endsAtMs: new Date(m[1]).getTime(), source: `scontrol (job ${id})` });
      }
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
