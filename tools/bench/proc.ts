/**
 * Process helpers of the benchmark: timed commands, sampling of `/proc` for the rank
 * processes under `mpirun`, dropping the page cache, medians.
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

/** I/O and memory counters of one process, as last seen in `/proc/<pid>/`. */
export interface ProcCounters {
  /** Process id. */
  pid: number;
  /** `comm` of the process. */
  comm: string;
  /** `rchar`: bytes returned by read-like system calls (page cache or storage). */
  rchar: number;
  /** `read_bytes`: bytes the process caused to be fetched from storage. */
  readBytes: number;
  /** `wchar`: bytes passed to write-like system calls. */
  wchar: number;
  /** `VmHWM`: peak resident set size, bytes. */
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
  /** Last counters seen of each descendant named in `sample` (empty when not sampling). */
  sampled: ProcCounters[];
}

/** Options of {@linkcode timed}. */
export interface TimedOptions {
  /** Extra environment (merged into a copy of the environment without MPI/Slurm variables). */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
  /** Sample descendants whose `comm` is one of these, every `sampleEveryMs`. */
  sample?: string[];
  /** Sampling period (default 20 ms). */
  sampleEveryMs?: number;
  /** Throw {@linkcode BenchCommandError} on a non-zero exit (default true). */
  check?: boolean;
}

const LAUNCHER_VARS = /^(OMPI_|PMI_|PMIX_|SLURM_|HYDI_|HYDRA_|MPIR_CVAR_|MV2_|I_MPI_|DT_MPI_)/;

/** The environment without MPI launcher or Slurm variables (a bench may run inside a job). */
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = Object.fromEntries(
    Object.entries(Deno.env.toObject()).filter(([name]) => !LAUNCHER_VARS.test(name)),
  );
  return { ...env, NO_COLOR: "1", ...extra };
}

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** Parent pid and comm of a process from `/proc/<pid>/stat`, or null when it is gone. */
function statOf(pid: number): { ppid: number; comm: string } | null {
  const text = readText(`/proc/${pid}/stat`);
  if (text === null) return null;
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  const rest = text.slice(close + 2).split(" ");
  return { ppid: Number(rest[1]), comm: text.slice(open + 1, close) };
}

/** Pids of every process whose ancestry reaches `root` (not `root` itself). */
export function descendants(root: number): Map<number, string> {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    const s = statOf(pid);
    if (s === null) continue;
    parent.set(pid, s.ppid);
    comm.set(pid, s.comm);
  }
  const out = new Map<number, string>();
  for (const pid of parent.keys()) {
    let p = parent.get(pid);
    for (let hops = 0; p !== undefined && p > 1 && hops < 16; hops++) {
      if (p === root) {
        out.set(pid, comm.get(pid)!);
        break;
      }
      p = parent.get(p);
    }
  }
  return out;
}

/** Reads the counters of `pid`, or null when it is gone or unreadable. */
export function readCounters(pid: number, comm: string): ProcCounters | null {
  const io = readText(`/proc/${pid}/io`);
  const status = readText(`/proc/${pid}/status`);
  if (io === null || status === null) return null;
  const field = (text: string, name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text);
    return m ? Number(m[1]) : 0;
  };
  return {
    pid,
    comm,
    rchar: field(io, "rchar"),
    readBytes: field(io, "read_bytes"),
    wchar: field(io, "wchar"),
    peakRssBytes: field(status, "VmHWM") * 1024,
  };
}

/**
 * Runs `cmd args` and measures its wall time. With `sample`, also polls `/proc` for its
 * descendants of those names until it exits, keeping each one's last counters (the last
 * poll is at most `sampleEveryMs` before the process exited).
 */
export async function timed(
  cmd: string,
  args: string[],
  options: TimedOptions = {},
): Promise<TimedResult> {
  const started = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    env: cleanEnv(options.env),
    clearEnv: true,
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  const last = new Map<number, ProcCounters>();
  if (options.sample !== undefined) {
    let done = false;
    output.finally(() => done = true).catch(() => {});
    const every = options.sampleEveryMs ?? 20;
    while (!done) {
      for (const [pid, comm] of descendants(child.pid)) {
        if (!options.sample.includes(comm)) continue;
        const c = readCounters(pid, comm);
        if (c !== null) last.set(pid, c);
      }
      await new Promise((r) => setTimeout(r, every));
    }
  }
  const out = await output;
  const seconds = (performance.now() - started) / 1000;
  const dec = new TextDecoder();
  const result: TimedResult = {
    code: out.code,
    seconds,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    sampled: [...last.values()],
  };
  if ((options.check ?? true) && out.code !== 0) {
    throw new BenchCommandError(
      [cmd, ...args].join(" "),
      out.code,
      result.stdout + result.stderr,
    );
  }
  return result;
}

/**
 * Flushes dirty pages and drops the page cache (`/proc/sys/vm/drop_caches`, root only).
 * Returns null on success, else why it was not possible.
 */
export async function dropCaches(): Promise<string | null> {
  await timed("sync", []);
  try {
    await Deno.writeTextFile("/proc/sys/vm/drop_caches", "3\n");
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Median of the numbers (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}
