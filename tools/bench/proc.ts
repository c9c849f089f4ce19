/**
 * Process helpers of the benchmark: commands run under GNU `time` (wall time, and the CPU time,
 * storage reads and peak RSS of the command and every descendant it waited for), dropping the
 * page cache, medians.
 * @module
 */

/** A command failed while the benchmark needed it to succeed. */
export class BenchCommandError extends Error {
  /** Exit code of the command. */
  readonly code: number;
  /** Creates the error for `what`, with the tail of its output. */
  constructor(what: string, code: number, output: string) {
    super(`${what} exited with code ${code}:\n${output.trim().split("\n").slice(-15).join("\n")}`);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A program the benchmark needs is not installed. */
export class MissingProgramError extends Error {
  /** Creates the error for `program`, naming what installs it. */
  constructor(program: string, install: string) {
    super(`bench: ${program} is not installed; ${install}`);
    this.name = new.target.name;
  }
}

/**
 * Resource use of a command and of every descendant it waited for (`getrusage(RUSAGE_CHILDREN)`
 * as GNU `time` reports it): under `mpirun` this covers the launcher and all ranks, because
 * each process of the tree waits for its children.
 */
export interface Usage {
  /** User CPU seconds. */
  userSeconds: number;
  /** System CPU seconds. */
  systemSeconds: number;
  /** Bytes the processes caused to be read from storage (`ru_inblock` × 512). */
  inputBytes: number;
  /** Peak RSS of the largest process of the tree, bytes (`ru_maxrss`). */
  peakRssBytes: number;
}

/** Outcome of {@linkcode timed}. */
export interface TimedResult {
  /** Exit code. */
  code: number;
  /** Wall time in seconds. */
  seconds: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
  /** CPU, storage reads and memory of the command's process tree. */
  usage: Usage;
}

/** Options of {@linkcode timed}. */
export interface TimedOptions {
  /** Throw {@linkcode BenchCommandError} on a non-zero exit (default true). */
  check?: boolean;
}

/** GNU time, which wraps every command of the benchmark. */
const GNU_TIME = "/usr/bin/time";

const LAUNCHER_VARS = /^(OMPI_|PMI_|PMIX_|SLURM_|HYDI_|HYDRA_|MPIR_CVAR_|MV2_|I_MPI_|DT_MPI_)/;

/** The environment without MPI launcher or Slurm variables (a bench may run inside a job). */
export function cleanEnv(): Record<string, string> {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !LAUNCHER_VARS.test(name)),
  );
  return { ...env, NO_COLOR: "1" };
}

/** Parses the last line of GNU time's `%U %S %I %M` output. */
function parseUsage(text: string): Usage {
  const line = text.trim().split("\n").pop() ?? "";
  const m = /^([\d.]+) ([\d.]+) (\d+) (\d+)$/.exec(line.trim());
  if (m === null) throw new Error(`bench: cannot read GNU time's output ${JSON.stringify(text)}`);
  return {
    userSeconds: Number(m[1]),
    systemSeconds: Number(m[2]),
    inputBytes: Number(m[3]) * 512,
    peakRssBytes: Number(m[4]) * 1024,
  };
}

/**
 * Runs `cmd args` under GNU `time` and measures its wall time; returns its output and the
 * resource use of its whole process tree. Throws {@linkcode BenchCommandError} on a non-zero
 * exit unless `check: false`.
 */
export async function timed(
  cmd: string,
  args: string[],
  options: TimedOptions = {},
): Promise<TimedResult> {
  const usagePath = await Deno.makeTempFile({ prefix: "dt-bench-time-" });
  try {
    const started = performance.now();
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command(GNU_TIME, {
        args: ["-f", "%U %S %I %M", "-o", usagePath, cmd, ...args],
        env: cleanEnv(),
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new MissingProgramError(GNU_TIME, "install it with `apt-get install time`");
      }
      throw err;
    }
    const seconds = (performance.now() - started) / 1000;
    const dec = new TextDecoder();
    const stdout = dec.decode(out.stdout);
    const stderr = dec.decode(out.stderr);
    if (out.code === 127 && stderr.includes(`cannot run ${cmd}`)) {
      throw new MissingProgramError(cmd, "install it or put it on PATH");
    }
    if ((options.check ?? true) && out.code !== 0) {
      throw new BenchCommandError([cmd, ...args].join(" "), out.code, stdout + stderr);
    }
    const usage = parseUsage(await Deno.readTextFile(usagePath));
    return { code: out.code, seconds, stdout, stderr, usage };
  } finally {
    await Deno.remove(usagePath).catch(() => {});
  }
}

/** Where the page cache is dropped: root only. */
const DROP_CACHES = "/proc/sys/vm/drop_caches";

/**
 * Flushes dirty pages and drops the page cache, dentries and inodes. Returns null on success,
 * else why it was not possible.
 */
export async function dropCaches(): Promise<string | null> {
  await timed("sync", []);
  try {
    await Deno.writeTextFile(DROP_CACHES, "3\n");
    return null;
  } catch (err) {
    return `cannot write ${DROP_CACHES} (${(err as Error).message}); run as root`;
  }
}

/** The shell command a contender runs to drop the page cache between two of its steps. */
export const DROP_CACHES_COMMAND: string[] = ["sh", "-c", `sync && echo 3 > ${DROP_CACHES}`];

/** Median of the numbers (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}
