/**
 * Path-based metadata system calls of a command, counted by `strace -f -c` over the command and
 * every process it starts (under `mpirun`: the launcher and all ranks). On Lustre each of these
 * is a round trip to the metadata server; calls on a file descriptor are not counted.
 * @module
 */

/**
 * Whether a system call resolves a path: open/openat/openat2, the stat family (stat, lstat,
 * fstatat/newfstatat, statx, access/faccessat*), readlink*, link*, unlink*, rename*, mkdir*.
 * `statx` is counted whole, although Rust's `fstat` issues it with an empty path on a
 * descriptor (`AT_EMPTY_PATH`); strace's summary cannot tell the two apart.
 */
export function isPathCall(name: string): boolean {
  return /^(open|openat|openat2|stat|stat64|lstat|lstat64|fstatat|fstatat64|newfstatat|statx|access|faccessat|faccessat2)$/
    .test(name) || /^(readlink|link|unlink|rename|mkdir)/.test(name);
}

/** The `strace` arguments that count the system calls of `command` into `outPath`. */
export function straceArgs(outPath: string, command: string[]): string[] {
  return ["-f", "-c", "-U", "name,calls", "-o", outPath, ...command];
}

/** Parses the summary `strace -c -U name,calls` writes: calls per system call name. */
export function parseStraceCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_0-9]+)\s+(\d+)\s*$/.exec(line.trim());
    if (m !== null && m[1] !== "total") counts.set(m[1], Number(m[2]));
  }
  if (counts.size === 0) {
    throw new Error(`bench: no system call counts in strace's summary:\n${text.slice(0, 500)}`);
  }
  return counts;
}

/** Path-based calls of a run, of a run with nothing to do, and their difference per file. */
export interface PathCalls {
  /** Files the run transferred. */
  files: number;
  /** All path-based calls of the run minus those of the run with nothing to do. */
  total: number;
  /** {@linkcode total} per transferred file. */
  perFile: number;
  /** Per system call: calls in the run, in the run with nothing to do, difference per file. */
  bySyscall: Record<string, { run: number; idle: number; perFile: number }>;
}

/**
 * The path-based calls a run made per transferred file: its counts minus those of a run with
 * nothing to do (start-up, MPI, reading the schedule), divided by `files`.
 */
export function pathCallsPerFile(
  run: Map<string, number>,
  idle: Map<string, number>,
  files: number,
): PathCalls {
  const names = [...new Set([...run.keys(), ...idle.keys()])].filter(isPathCall).sort();
  const bySyscall: PathCalls["bySyscall"] = {};
  let total = 0;
  for (const name of names) {
    const r = run.get(name) ?? 0;
    const i = idle.get(name) ?? 0;
    bySyscall[name] = { run: r, idle: i, perFile: (r - i) / files };
    total += r - i;
  }
  return { files, total, perFile: total / files, bySyscall };
}
