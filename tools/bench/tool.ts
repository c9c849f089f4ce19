/**
 * This tool as the benchmark runs it, through its command lines only: filter, schedule and the
 * run phase under `mpirun.mpich` with {@linkcode RANKS} ranks; its run summary; whether its
 * config accepts a setting; and its path-based metadata calls per file under `strace`.
 * @module
 */

import { join } from "node:path";
import { MissingProgramError, timed } from "./proc.ts";
import { parseStraceCounts, type PathCalls, pathCallsPerFile, straceArgs } from "./path_calls.ts";
import { makeWorkspace, REPO, type Tree, type Workspace } from "./tree.ts";

/** Ranks of every parallel contender (the machine has 2 cores). */
export const RANKS = 2;

/** The MPI launcher of every parallel contender (mpiFileUtils is built against MPICH). */
export const MPIRUN = "mpirun.mpich";

/** The tool's run failed or did not move what it should have. */
export class ToolRunError extends Error {
  /** Creates the error for the run in `dir`. */
  constructor(dir: string, what: string) {
    super(`bench: the tool's run in ${dir} ${what}; see its logs there`);
    this.name = new.target.name;
  }
}

/** The tool's config refuses a setting that every run of the benchmark needs. */
export class ToolRefusedError extends Error {
  /** Creates the error for `verify_mode: mode`, with the tool's own message. */
  constructor(mode: string, refusal: string) {
    super(`bench: the tool refuses verify_mode: ${mode}, which the benchmark needs: ${refusal}`);
    this.name = new.target.name;
  }
}

/** The parts of `run_summary.json` the benchmark uses. */
export interface RunSummary {
  /** Files copied and verified. */
  done: number;
  /** Files verified before. */
  skipped: number;
  /** Files failed. */
  failed: number;
  /** Bytes copied. */
  bytes: number;
}

function phase(name: string, ...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", join(REPO, `phases/${name}.ts`), ...args];
}

/**
 * Commands that load the tool's programs (every module of the phases, libmpi, the launcher)
 * without touching any data, so that a run after dropping the page cache reads only data.
 */
export const TOOL_WARM: string[][] = [
  phase("filter", "--help"),
  phase("schedule", "--help"),
  phase("run", "--help"),
  [MPIRUN, "-n", String(RANKS), ...phase("mpi_check")],
];

/** The run phase on `ws` with {@linkcode RANKS} ranks. */
function runPhaseCommand(ws: Workspace): string[] {
  return [MPIRUN, "-n", String(RANKS), ...phase("run", "--config", ws.configPath)];
}

/** The tool's three commands on `ws`: filter, schedule, run. */
export function toolSteps(ws: Workspace): { name: string; command: string[] }[] {
  return [
    { name: "filter", command: phase("filter", "--config", ws.configPath) },
    { name: "schedule", command: phase("schedule", "--config", ws.configPath) },
    { name: "run", command: runPhaseCommand(ws) },
  ];
}

/**
 * Reads the last run's summary of `ws` and checks that it moved `files` files and found
 * `skipped` verified before, with no failure; throws {@linkcode ToolRunError} otherwise.
 */
export async function checkRunSummary(
  ws: Workspace,
  files: number,
  skipped: number,
): Promise<RunSummary> {
  const s: RunSummary = JSON.parse(await Deno.readTextFile(join(ws.tool, "run_summary.json")));
  if (s.failed !== 0 || s.done !== files || s.skipped !== skipped) {
    throw new ToolRunError(
      ws.dir,
      `copied ${s.done}, skipped ${s.skipped} and failed ${s.failed} files where ${files}, ` +
        `${skipped} and 0 were expected`,
    );
  }
  return s;
}

/**
 * Asks the tool whether it accepts the `data_transfer:` settings `transfer` (through `status`,
 * which validates the config and changes nothing). Returns null when it does, else its one-line
 * refusal. `dir` is used as a scratch workspace and removed.
 */
export async function toolRefusal(
  dir: string,
  tree: Tree,
  transfer: Record<string, unknown>,
): Promise<string | null> {
  const ws = await makeWorkspace(dir, tree.images, transfer);
  try {
    const [cmd, ...args] = phase("status", "--config", ws.configPath);
    const r = await timed(cmd, args, { check: false });
    if (r.code === 0) return null;
    if (r.code === 2) return r.stderr.trim().split("\n").pop() ?? `exit code 2`;
    throw new ToolRunError(dir, `status exited with ${r.code}:\n${r.stderr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Path-based calls of the tool, and the wall time of its run with nothing to do. */
export interface ToolPathCalls extends PathCalls {
  /** Wall time of the run phase with nothing to do (no strace), seconds. */
  idleRunSeconds: number;
}

async function straceCounts(outPath: string, command: string[]): Promise<Map<string, number>> {
  try {
    await timed("strace", straceArgs(outPath, command));
  } catch (err) {
    if (err instanceof MissingProgramError) {
      throw new MissingProgramError("strace", "install it with `apt-get install strace`");
    }
    throw err;
  }
  return parseStraceCounts(await Deno.readTextFile(outPath));
}

/**
 * Counts the path-based metadata calls of the tool's run phase per transferred file (untimed:
 * strace slows it): filter and schedule `tree` in the fresh workspace `dir`, run under
 * `strace -f -c` (every rank and the launcher), then run again with nothing to do, once plain
 * (timed) and once under strace; the difference of the two strace counts per file.
 */
export async function measurePathCalls(dir: string, tree: Tree): Promise<ToolPathCalls> {
  const ws = await makeWorkspace(dir, tree.images, { verify_mode: "md5" });
  for (const step of toolSteps(ws).slice(0, 2)) await timed(step.command[0], step.command.slice(1));
  const run = await straceCounts(join(dir, "strace-run.txt"), runPhaseCommand(ws));
  const { done } = await checkRunSummary(ws, tree.files.length, 0);
  const [cmd, ...args] = runPhaseCommand(ws);
  const idleRunSeconds = (await timed(cmd, args)).seconds;
  await checkRunSummary(ws, 0, tree.files.length);
  const idle = await straceCounts(join(dir, "strace-idle.txt"), runPhaseCommand(ws));
  await checkRunSummary(ws, 0, tree.files.length);
  await Deno.remove(dir, { recursive: true });
  return { ...pathCallsPerFile(run, idle, done), idleRunSeconds };
}
