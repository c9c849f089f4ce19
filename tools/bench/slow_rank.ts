/**
 * The benchmark's "slow rank" scenario (issue 16): the tool's run phase with 2 ranks, rank 1
 * held to a fifth of a core by a CPU quota (a slow node), with balancing at run time on and off
 * (`data_transfer.steal`), and, as the floor, with both ranks free; alternated in rounds. For
 * each: the wall time of the run phase and the share of the bytes rank 0 (the fast rank)
 * moved, from `run_summary.json`.
 *
 * Rank 1 is placed in the quota by a wrapper script given to `mpirun`: it moves its own
 * process into the cgroup when its rank variable (`PMI_RANK` under MPICH, `OMPI_COMM_WORLD_RANK`
 * under Open MPI) is 1, then execs Deno, whose threads all stay in the cgroup. The quota is a
 * cgroup v2 `cpu.max` where the v2 hierarchy has the cpu controller, else a cgroup v1
 * `cpu.cfs_quota_us`/`cpu.cfs_period_us`.
 * @module
 */

import { join } from "node:path";
import { median, timed } from "./proc.ts";
import { targetTable } from "./report.ts";
import type { Target } from "./targets.ts";
import { MPIRUN, RANKS } from "./tool.ts";
import { makeWorkspace, REPO, type Tree } from "./tree.ts";

/** CPU of the slow rank: `QUOTA_US` per `PERIOD_US`, a fifth of a core. */
export const QUOTA_US = 20_000;
/** The period of the quota. */
export const PERIOD_US = 100_000;

const LABELS: Record<SlowRankVariant, string> = {
  "steal": "rank 1 slow, stealing on ",
  "no-steal": "rank 1 slow, stealing off",
  "free": "both ranks free         ",
};

/** The cgroup that holds the slow rank. */
export interface CpuQuota {
  /** How the quota is set, for the report. */
  how: string;
  /** The cgroup's `cgroup.procs`, where a process moves itself in. */
  procs: string;
  /** Removes the cgroup (once no process is left in it). */
  remove(): Promise<void>;
}

/** No CPU quota can be set on this machine. */
export class NoCpuQuotaError extends Error {
  /** Creates the error naming what was tried. */
  constructor(tried: string) {
    super(`bench: slow rank: cannot set a CPU quota (${tried}); run as root with cgroups`);
    this.name = new.target.name;
  }
}

async function readOrEmpty(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "");
}

/**
 * Creates the cgroup `name` with a quota of {@linkcode QUOTA_US} per {@linkcode PERIOD_US}:
 * cgroup v2 `cpu.max` where the v2 root offers the cpu controller, else cgroup v1's cpu
 * hierarchy. Throws {@linkcode NoCpuQuotaError} when neither is writable.
 */
export async function makeCpuQuota(name: string): Promise<CpuQuota> {
  const tried: string[] = [];
  for (const root of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) {
    const controllers = await readOrEmpty(join(root, "cgroup.controllers"));
    if (!controllers.split(/\s+/).includes("cpu")) {
      tried.push(`${root}: no cgroup v2 cpu controller`);
      continue;
    }
    const dir = join(root, name);
    try {
      await Deno.writeTextFile(join(root, "cgroup.subtree_control"), "+cpu").catch(() => {});
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(join(dir, "cpu.max"), `${QUOTA_US} ${PERIOD_US}\n`);
      return {
        how: `cgroup v2 ${dir}/cpu.max = ${QUOTA_US} ${PERIOD_US}`,
        procs: join(dir, "cgroup.procs"),
        remove: () => Deno.remove(dir).catch(() => {}),
      };
    } catch (err) {
      tried.push(`${dir}: ${(err as Error).message}`);
    }
  }
  const dir = join("/sys/fs/cgroup/cpu", name);
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, "cpu.cfs_period_us"), `${PERIOD_US}\n`);
    await Deno.writeTextFile(join(dir, "cpu.cfs_quota_us"), `${QUOTA_US}\n`);
    return {
      how: `cgroup v1 ${dir}: cpu.cfs_quota_us ${QUOTA_US} per cpu.cfs_period_us ${PERIOD_US}`,
      procs: join(dir, "cgroup.procs"),
      remove: () => Deno.remove(dir).catch(() => {}),
    };
  } catch (err) {
    tried.push(`${dir}: ${(err as Error).message}`);
  }
  throw new NoCpuQuotaError(tried.join("; "));
}

/** Writes the wrapper that puts rank 1 in the quota, then execs its command; returns its path. */
async function writeWrapper(dir: string, procs: string): Promise<string> {
  const path = join(dir, "slow_rank1.sh");
  await Deno.writeTextFile(
    path,
    "#!/bin/sh\n" +
      "# Rank 1 of the run moves itself into the CPU quota, then becomes the rank.\n" +
      "rank=${PMI_RANK:-${OMPI_COMM_WORLD_RANK:-}}\n" +
      `if [ "$rank" = 1 ]; then echo $$ > '${procs}' || exit 90; fi\n` +
      'exec "$@"\n',
  );
  await Deno.chmod(path, 0o755);
  return path;
}

/** The variants of a round: rank 1 slow with stealing on or off; both ranks free (reference). */
export type SlowRankVariant = "steal" | "no-steal" | "free";

/** One run of the scenario. */
export interface SlowRankRun {
  /** Which variant. */
  variant: SlowRankVariant;
  /** Round (1-based). */
  round: number;
  /** Wall time of the run phase, seconds. */
  seconds: number;
  /** Bytes moved by each rank. */
  rankBytes: number[];
  /** Share of the bytes moved by rank 0 (the fast rank). */
  fastShare: number;
  /** Files the ranks took from each other. */
  takenFromOthers: number;
}

/** The scenario's figures. */
export interface SlowRankFigures {
  /** How the slow rank was slowed. */
  quota: string;
  /** The launcher. */
  launcher: string;
  /** Every run, in the order they ran. */
  runs: SlowRankRun[];
  /** Median wall time with stealing, seconds. */
  stealSeconds: number;
  /** Median wall time without stealing, seconds. */
  noStealSeconds: number;
  /** Median wall time with both ranks free (no quota, stealing on), seconds: the floor. */
  freeSeconds: number;
  /** `noStealSeconds / stealSeconds`. */
  speedup: number;
  /** Median share of the bytes rank 0 moved, with stealing. */
  fastShare: number;
  /** The same without stealing. */
  noStealFastShare: number;
}

/** The parts of `run_summary.json` the scenario reads. */
interface Summary {
  done: number;
  failed: number;
  bytes: number;
  takenFromOthers?: number;
  ranks: Array<{ rank: number; bytes: number }>;
}

/**
 * Runs the scenario on `tree` in `work` for `rounds` rounds (stealing on then off, the order
 * swapped every round); `log` receives a line per run.
 */
export async function benchSlowRank(
  tree: Tree,
  work: string,
  rounds: number,
  log: (line: string) => void,
  beforeRun: () => Promise<unknown> = () => Promise.resolve(),
): Promise<SlowRankFigures> {
  const quota = await makeCpuQuota(`dt-bench-slow-${Deno.pid}`);
  const runs: SlowRankRun[] = [];
  try {
    await Deno.mkdir(work, { recursive: true });
    const wrapper = await writeWrapper(work, quota.procs);
    const order: SlowRankVariant[] = ["steal", "no-steal", "free"];
    for (let round = 1; round <= rounds; round++) {
      const shift = (round - 1) % order.length;
      for (const variant of [...order.slice(shift), ...order.slice(0, shift)]) {
        const steal = variant !== "no-steal";
        const dir = join(work, `slow-${variant}-r${round}`);
        const ws = await makeWorkspace(dir, tree.images, { steal });
        for (const phase of ["filter", "schedule"]) {
          await timed(Deno.execPath(), [
            "run",
            "-A",
            join(REPO, `phases/${phase}.ts`),
            "--config",
            ws.configPath,
          ]);
        }
        await beforeRun();
        const run = await timed(MPIRUN, [
          "-n",
          String(RANKS),
          ...(variant === "free" ? [] : [wrapper]),
          Deno.execPath(),
          "run",
          "-A",
          join(REPO, "phases/run.ts"),
          "--config",
          ws.configPath,
        ]);
        const s: Summary = JSON.parse(
          await Deno.readTextFile(join(ws.tool, "run_summary.json")),
        );
        if (s.failed !== 0 || s.done !== tree.files.length) {
          throw new Error(
            `bench: slow rank: the run in ${dir} copied ${s.done} of ${tree.files.length} ` +
              `files with ${s.failed} failed; see its logs there`,
          );
        }
        const rankBytes = s.ranks.map((r) => r.bytes);
        const r: SlowRankRun = {
          variant,
          round,
          seconds: run.seconds,
          rankBytes,
          fastShare: s.bytes > 0 ? rankBytes[0] / s.bytes : 0,
          takenFromOthers: s.takenFromOthers ?? 0,
        };
        runs.push(r);
        log(
          `slow rank round ${round}/${rounds}: ${LABELS[variant]} ` +
            `${r.seconds.toFixed(2)} s, fast rank moved ${(100 * r.fastShare).toFixed(1)}% ` +
            `of the bytes, ${r.takenFromOthers} files taken over`,
        );
        await Deno.remove(dir, { recursive: true });
      }
    }
  } finally {
    await quota.remove();
  }
  const of = (variant: SlowRankVariant, f: (r: SlowRankRun) => number) =>
    median(runs.filter((r) => r.variant === variant).map(f));
  const stealSeconds = of("steal", (r) => r.seconds);
  const noStealSeconds = of("no-steal", (r) => r.seconds);
  return {
    quota: quota.how,
    launcher: `${MPIRUN} -n ${RANKS}, rank 1 in the quota`,
    runs,
    stealSeconds,
    noStealSeconds,
    freeSeconds: of("free", (r) => r.seconds),
    speedup: noStealSeconds / stealSeconds,
    fastShare: of("steal", (r) => r.fastShare),
    noStealFastShare: of("no-steal", (r) => r.fastShare),
  };
}

/** The scenario's figures and `targets` as Markdown, for `rounds` rounds. */
export function formatSlowRank(
  f: SlowRankFigures & { tree: string },
  targets: readonly Target[],
  rounds: number,
): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  return [
    `## slow rank: ${f.tree} tree, ${f.launcher}; ${f.quota}`,
    `${rounds} round(s) of each, alternated; medians; wall time of the run phase`,
    "",
    "| run | wall time | bytes moved by rank 0 |",
    "| --- | --- | --- |",
    `| rank 1 slow, stealing on | ${f.stealSeconds.toFixed(2)} s | ${pct(f.fastShare)} |`,
    `| rank 1 slow, stealing off | ${f.noStealSeconds.toFixed(2)} s | ` +
    `${pct(f.noStealFastShare)} |`,
    `| both ranks free (the floor) | ${f.freeSeconds.toFixed(2)} s | |`,
    "",
    `with stealing / both ranks free: ${(f.stealSeconds / f.freeSeconds).toFixed(2)}x; ` +
    `without stealing / both ranks free: ${(f.noStealSeconds / f.freeSeconds).toFixed(2)}x ` +
    "(without stealing the run can be no more than this much slower than with it)",
    "",
    ...targetTable(targets),
  ].join("\n");
}
