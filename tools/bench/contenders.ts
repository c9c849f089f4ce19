/**
 * The contenders of the benchmark: this tool end to end under `mpirun.mpich`, the same
 * transfer with `md5sum`/`cp` over `xargs -P 2`, and the machine's floor (`openssl md5` and
 * `dd`).
 * @module
 */

import { join } from "node:path";
import { type ProcCounters, timed } from "./proc.ts";
import { REPO, type Tree, type Workspace } from "./tree.ts";

/** Ranks of every tool run (the machine has 2 cores). */
export const RANKS = 2;

/** What `/usr/bin/time` reported for one rank. */
export interface RankTime {
  /** Peak RSS (`%M`), bytes. */
  peakRssBytes: number;
  /** Bytes read from storage (`%I`, 512-byte blocks). */
  inputBytes: number;
  /** Rank wall time (`%e`), seconds. */
  seconds: number;
}

/** The parts of `run_summary.json` the benchmark uses. */
export interface RunSummaryFigures {
  /** Files copied and verified. */
  done: number;
  /** Files verified before. */
  skipped: number;
  /** Files failed. */
  failed: number;
  /** Bytes copied. */
  bytes: number;
  /** Longest rank time, seconds. */
  seconds: number;
  /** Storage reads per byte copied as the runner counts them. */
  readsPerByte: number;
}

/** One run of the tool. */
export interface ToolRun {
  /** Filter phase wall time, seconds (0 when not run). */
  filterSeconds: number;
  /** Schedule phase wall time, seconds (0 when not run). */
  scheduleSeconds: number;
  /** `mpirun -n 2 ... run.ts` wall time, seconds. */
  runSeconds: number;
  /** Sum of the phases. */
  totalSeconds: number;
  /** From `run_summary.json`. */
  summary: RunSummaryFigures;
  /** Per rank, from `/usr/bin/time`. */
  ranks: RankTime[];
  /** Per rank, last `/proc/<pid>/{io,status}` sample. */
  sampled: ProcCounters[];
}

/** Options of {@linkcode runTool}. */
export interface RunToolOptions {
  /** Run filter and schedule first (default true). */
  plan?: boolean;
  /** Extra `deno run` flags for the ranks (e.g. `--cpu-prof`). */
  denoFlags?: string[];
}

async function parseRankTimes(path: string): Promise<RankTime[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  const out: RankTime[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+) (\d+) (\d+) ([\d.]+)$/.exec(line.trim());
    if (m) {
      out.push({
        peakRssBytes: Number(m[1]) * 1024,
        inputBytes: Number(m[2]) * 512,
        seconds: Number(m[4]),
      });
    }
  }
  return out;
}

/**
 * Runs the tool on a workspace: filter, schedule (unless `plan: false`), then the run phase
 * with {@linkcode RANKS} ranks under `mpirun.mpich`, each rank wrapped in `/usr/bin/time`
 * and sampled through `/proc`. Throws when a phase fails or a file failed.
 */
export async function runTool(ws: Workspace, options: RunToolOptions = {}): Promise<ToolRun> {
  const deno = Deno.execPath();
  let filterSeconds = 0;
  let scheduleSeconds = 0;
  if (options.plan ?? true) {
    const config = ["--config", ws.configPath];
    filterSeconds = (await timed(deno, ["run", "-A", join(REPO, "phases/filter.ts"), ...config]))
      .seconds;
    scheduleSeconds =
      (await timed(deno, ["run", "-A", join(REPO, "phases/schedule.ts"), ...config])).seconds;
  }
  const timeFile = join(ws.dir, `rank_times_${Date.now()}.txt`);
  const run = await timed("mpirun.mpich", [
    "-n",
    String(RANKS),
    "/usr/bin/time",
    "-a",
    "-o",
    timeFile,
    "-f",
    "%M %I %O %e",
    deno,
    "run",
    "-A",
    ...(options.denoFlags ?? []),
    join(REPO, "phases/run.ts"),
    "--config",
    ws.configPath,
  ], { sample: ["deno"] });
  const s = JSON.parse(await Deno.readTextFile(join(ws.tool, "run_summary.json")));
  const summary: RunSummaryFigures = {
    done: s.done,
    skipped: s.skipped,
    failed: s.failed,
    bytes: s.bytes,
    seconds: s.seconds,
    readsPerByte: s.readsPerByte,
  };
  if (summary.failed > 0) throw new Error(`tool run in ${ws.dir}: ${summary.failed} files failed`);
  return {
    filterSeconds,
    scheduleSeconds,
    runSeconds: run.seconds,
    totalSeconds: filterSeconds + scheduleSeconds + run.seconds,
    summary,
    ranks: await parseRankTimes(timeFile),
    sampled: run.sampled,
  };
}

/** One run of the standard tools. */
export interface StandardRun {
  /** Until `xargs` ended (copies possibly not yet on storage). */
  seconds: number;
  /** Including a final `sync`, so that the copies are as durable as the tool's. */
  syncedSeconds: number;
}

/** The per-file script: hash the source, copy, hash the copy, compare. */
const PER_FILE_SCRIPT = 'a=$(md5sum < "$1") && cp -- "$1" "$2" && b=$(md5sum < "$2") && ' +
  '[ "$a" = "$b" ] || { echo "mismatch or error: $1" >&2; exit 1; }';

/**
 * Copies every file of `tree` to `dst` as `md5sum src; cp src dst; md5sum dst` per file, two
 * files at a time (`xargs -P 2`), then `sync`s. Destination folders are made beforehand.
 */
export async function runStandard(tree: Tree, dst: string): Promise<StandardRun> {
  const list: string[] = [];
  const folders = new Set<string>();
  for (const f of tree.files) {
    const folder = join(dst, f.server);
    folders.add(folder);
    list.push(f.path, join(folder, `${f.partition}_${f.kind}.parquet`));
  }
  for (const folder of folders) await Deno.mkdir(folder, { recursive: true });
  const listPath = `${dst}.list`;
  await Deno.writeTextFile(listPath, list.join("\0") + "\0");
  const script = `xargs -0 -n 2 -P 2 sh -c '${PER_FILE_SCRIPT}' sh < "$1" && ` +
    `echo "xargs_end $(date +%s.%N)" && sync`;
  const started = Date.now() / 1000;
  const r = await timed("sh", ["-c", script, "sh", listPath]);
  const end = Number(/xargs_end ([\d.]+)/.exec(r.stdout)?.[1]);
  await Deno.remove(listPath);
  return { seconds: end - started, syncedSeconds: r.seconds };
}

/** One measurement of the machine's floor. */
export interface FloorRun {
  /** `openssl md5` of every file on one thread (page cache warm), seconds. */
  md5Seconds: number;
  /** `dd` of the same total bytes to the destination file system with `fdatasync`, seconds. */
  ddSeconds: number;
  /** `max(2 × md5Seconds / 2 cores, ddSeconds)`. */
  floorSeconds: number;
}

/**
 * Measures the floor: MD5 of all bytes on one thread with `openssl md5` (after an untimed read
 * that warms the page cache), counted twice (source and copy) and divided by the 2 cores,
 * against one `dd` write of the same bytes to `dst`'s file system; the longer of the two.
 */
export async function runFloor(tree: Tree, dst: string): Promise<FloorRun> {
  await Deno.mkdir(dst, { recursive: true });
  const listPath = `${dst}.list`;
  await Deno.writeTextFile(listPath, tree.files.map((f) => f.path).join("\0") + "\0");
  await timed("sh", ["-c", 'xargs -0 cat < "$1" > /dev/null', "sh", listPath]);
  const md5 = await timed("sh", ["-c", 'xargs -0 openssl md5 < "$1" > /dev/null', "sh", listPath]);
  const mib = Math.max(1, Math.round(tree.bytes / (8 * 1024 * 1024)));
  const out = join(dst, "dd.bin");
  const dd = await timed("dd", [
    "if=/dev/zero",
    `of=${out}`,
    "bs=8M",
    `count=${mib}`,
    "conv=fdatasync",
    "status=none",
  ]);
  await Deno.remove(out);
  await Deno.remove(listPath);
  const cores = 2;
  return {
    md5Seconds: md5.seconds,
    ddSeconds: dd.seconds,
    floorSeconds: Math.max((2 * md5.seconds) / cores, dd.seconds),
  };
}
