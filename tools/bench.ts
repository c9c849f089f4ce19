/**
 * `deno task bench`: end-to-end benchmark of the tool against the tools a site would use
 * instead and the floor of a plain `cp -r && sync`, on three trees kept in `bench_out/trees/`:
 * many small files, real-size files (100-450 MiB and one over 1 GiB), and one file of several
 * GiB. Contenders alternate in rounds within one invocation (speeds on a shared machine are
 * only comparable as ratios of one invocation), with the page cache dropped before each run
 * and a final `sync` inside every timing. For each tree: medians, ratios, device reads per
 * byte, CPU seconds per GiB, the tool's path-based metadata calls per file, and the targets of
 * issue 13; printed and written to `<out>/bench.json`. Then, on the real-size tree, the
 * "slow rank" scenario (`bench/slow_rank.ts`): the run with rank 1 of 2 on a fifth of a core,
 * balancing at run time on and off, and the targets of issue 16.
 *
 * ```sh
 * deno task bench                  # all three trees, 3 rounds, and the slow-rank scenario
 * deno task bench --tree large     # one tree again (a comma list picks several)
 * deno task bench --tree large --scenario slow-rank   # the slow-rank scenario alone
 * deno task bench --quick          # tiny trees, one round, every contender (smoke test)
 * ```
 * @module
 */

import { join } from "node:path";
import { parseCommand, runMain, UsageError } from "../core/cli.ts";
import { formatBytes } from "../core/format.ts";
import { type BlockDevice, blockDeviceOf, NoBlockDeviceError } from "./bench/block_device.ts";
import {
  type Contender,
  type ContenderId,
  type ContenderNames,
  cpContender,
  dcpDcmpContender,
  dcpDcmpNames,
  md5sumContender,
  md5sumCpContender,
  toolContender,
} from "./bench/contenders.ts";
import {
  type ContenderFigures,
  contenderFigures,
  ratiosOf,
  type RunRecord,
  runRecord,
  skippedFigures,
} from "./bench/figures.ts";
import { coldStart, measure } from "./bench/measure.ts";
import { findMpiFileUtils, type MpiFileUtils } from "./bench/mpifileutils.ts";
import { dropCaches, median } from "./bench/proc.ts";
import { formatTree, type TreeResult } from "./bench/report.ts";
import { slowRankTargets, type Target, targetsFor } from "./bench/targets.ts";
import { benchSlowRank, formatSlowRank, type SlowRankFigures } from "./bench/slow_rank.ts";
import {
  measurePathCalls,
  MPIRUN,
  RANKS,
  TOOL_WARM,
  toolRefusal,
  ToolRefusedError,
} from "./bench/tool.ts";
import {
  ensureTree,
  type GenPart,
  REPO,
  type Tree,
  TREE_NAMES,
  type TreeName,
  type TreeSpec,
} from "./bench/tree.ts";

const NAME = "bench";

/** One generator run of 3 servers x 1 partition whose successes files hold `rows` 100 kB images. */
function threeFiles(rows: number, seed: number): GenPart {
  return { servers: 3, partitions: 1, rows, imageBytes: 100_000, sizeSpread: false, seed };
}

/** One generator run of one partition whose successes file holds `rows` 100 kB images. */
function oneFile(rows: number, seed: number): GenPart {
  return { servers: 1, partitions: 1, rows, imageBytes: 100_000, sizeSpread: false, seed };
}

/** The trees of a full and of a quick run, and what each is for. */
const TREES: Record<"full" | "quick", Record<TreeName, { spec: TreeSpec; about: string }>> = {
  full: {
    small: {
      // ~1.04 GiB over 320 files; successes from ~230 KiB to ~27 MiB.
      spec: {
        parts: [{
          servers: 4,
          partitions: 40,
          rows: 64,
          imageBytes: 100_000,
          sizeSpread: true,
          seed: 1,
        }],
      },
      about: "many small files",
    },
    large: {
      // 21 successes files of ~105 to ~420 MiB (~3.4 GiB), plus one of ~1.05 GiB.
      spec: {
        parts: [
          ...[1100, 1150, 1200, 1300, 1450, 1700, 4400].map((rows, i) => threeFiles(rows, 11 + i)),
          oneFile(11_300, 21),
        ],
      },
      about: "real-size files, the file over 1 GiB included",
    },
    single: { spec: { parts: [oneFile(43_000, 7)] }, about: "one large file (~4 GiB)" },
  },
  quick: {
    small: {
      spec: {
        parts: [{
          servers: 2,
          partitions: 5,
          rows: 8,
          imageBytes: 50_000,
          sizeSpread: true,
          seed: 1,
        }],
      },
      about: "many small files (quick)",
    },
    large: {
      spec: { parts: [threeFiles(20, 11), threeFiles(40, 12), oneFile(80, 21)] },
      about: "real-size files (quick: a few MiB)",
    },
    single: { spec: { parts: [oneFile(100, 7)] }, about: "one large file (quick: ~10 MiB)" },
  },
};

function log(line: string): void {
  console.error(`[bench] ${line}`);
}

async function rm(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

function fmt(n: number | null, digits = 2): string {
  return n === null || !Number.isFinite(n) ? "n/a" : n.toFixed(digits);
}

/** What every tree's benchmark shares. */
interface Context {
  quick: boolean;
  rounds: number;
  regen: boolean;
  out: string;
  work: string;
  device: BlockDevice | null;
  /** Why the page cache cannot be dropped, or null when it can. */
  dropNote: string | null;
  mfu: MpiFileUtils | { missing: string };
}

/** A contender that does not run on a tree, and why. */
interface Skipped extends ContenderNames {
  why: string;
}

/** The contenders of a tree, and those that cannot run and why. */
async function contendersOf(
  name: TreeName,
  tree: Tree,
  ctx: Context,
): Promise<{ run: Contender[]; skipped: Skipped[] }> {
  const run: Contender[] = [];
  const skipped: Skipped[] = [];
  const refusal = await toolRefusal(join(ctx.work, "probe"), tree, { verify_mode: "md5" });
  if (refusal !== null) throw new ToolRefusedError("md5", refusal);
  run.push(toolContender(tree));
  run.push(name === "single" ? md5sumContender(tree) : md5sumCpContender(tree), cpContender(tree));
  const mfu = ctx.mfu;
  for (const drop of [false, true]) {
    if ("missing" in mfu) skipped.push({ ...dcpDcmpNames(drop), why: mfu.missing });
    else if (drop && ctx.dropNote !== null) {
      skipped.push({ ...dcpDcmpNames(drop), why: `cannot drop the page cache: ${ctx.dropNote}` });
    } else run.push(dcpDcmpContender(tree, mfu, drop));
  }
  return { run, skipped };
}

function describe(tree: Tree, about: string): string {
  const succ = tree.files.filter((f) => f.kind === "successes").map((f) => f.bytes)
    .sort((a, b) => a - b);
  const sizes = succ.length === 1
    ? `1 successes file of ${formatBytes(succ[0])}`
    : `${succ.length} successes files of ${formatBytes(succ[0])} to ` +
      `${formatBytes(succ[succ.length - 1])} (median ${formatBytes(median(succ))})`;
  const errors = tree.files.length - succ.length;
  return `${about}: ${sizes} and ${errors} errors file${errors === 1 ? "" : "s"}`;
}

async function benchTree(name: TreeName, ctx: Context): Promise<TreeResult> {
  const { spec, about } = TREES[ctx.quick ? "quick" : "full"][name];
  const tree = await ensureTree(join(ctx.out, "trees", name), spec, ctx.regen);
  const description = describe(tree, about);
  log(
    `${name} tree: ${tree.files.length} files, ${formatBytes(tree.bytes)}; ${description}` +
      (tree.generatedSeconds > 0 ? ` (generated in ${tree.generatedSeconds.toFixed(0)} s)` : ""),
  );
  const { run, skipped } = await contendersOf(name, tree, ctx);
  for (const c of skipped) log(`${name} tree: ${c.short} skipped: ${c.why}`);

  const runs = new Map<ContenderId, RunRecord[]>(run.map((c) => [c.id, []]));
  for (let round = 0; round < ctx.rounds; round++) {
    for (let k = 0; k < run.length; k++) {
      const c = run[(k + round) % run.length];
      const dir = join(ctx.work, `${name}-${c.id}-r${round + 1}`);
      await rm(dir);
      await Deno.mkdir(dir, { recursive: true });
      const prepared = await c.prepare(dir);
      if (ctx.dropNote === null) await coldStart(c.warm);
      const m = await measure(prepared.steps, ctx.device);
      const invalid = await prepared.check(m.steps);
      const record = runRecord(round + 1, m, invalid);
      runs.get(c.id)!.push(record);
      const reads = m.deviceReadBytes === null ? null : m.deviceReadBytes / tree.bytes;
      log(
        `${name} round ${round + 1}/${ctx.rounds}: ${c.short} ${m.seconds.toFixed(2)} s, ` +
          `${fmt(reads)} device reads/byte, ${fmt(m.cpuSeconds / (tree.bytes / 1024 ** 3))} ` +
          `CPU s/GiB` + (invalid === null ? "" : `; INVALID, left out: ${invalid}`),
      );
      await rm(dir);
    }
  }

  log(`${name} tree: counting the tool's path-based metadata calls under strace (untimed)`);
  const pathCalls = await measurePathCalls(join(ctx.work, `${name}-strace`), tree);
  log(`${name} tree: ${pathCalls.perFile.toFixed(1)} path-based metadata calls per file`);

  const contenders: Record<string, ContenderFigures> = {};
  for (const c of run) contenders[c.id] = contenderFigures(c, runs.get(c.id)!, tree.bytes);
  for (const c of skipped) contenders[c.id] = skippedFigures(c, c.why);
  const ordered = Object.fromEntries(
    Object.entries(contenders).sort(([a], [b]) => order(a) - order(b)),
  );
  const ratios = ratiosOf(ordered);
  const figures = { contenders: ordered, ratios, pathCalls };
  const sizes = tree.files.map((f) => f.bytes);
  return {
    name,
    path: tree.images,
    files: tree.files.length,
    bytes: tree.bytes,
    smallestBytes: Math.min(...sizes),
    largestBytes: Math.max(...sizes),
    description,
    floor: "cp",
    ...figures,
    targets: targetsFor(name, figures),
  };
}

const REPORT_ORDER: ContenderId[] = [
  "tool-md5",
  "md5sum-cp",
  "md5sum",
  "cp",
  "dcp-dcmp",
  "dcp-drop-dcmp",
];

function order(id: string): number {
  return REPORT_ORDER.indexOf(id as ContenderId);
}

/** The parts of a benchmark run: the contenders on each tree, the slow-rank scenario. */
type Scenario = "contenders" | "slow-rank";
const SCENARIOS: readonly Scenario[] = ["contenders", "slow-rank"];

/** The tree the slow-rank scenario runs on. */
const SLOW_RANK_TREE: TreeName = "large";

function parseScenarios(value: string | boolean | undefined): Scenario[] {
  if (value === undefined) return [...SCENARIOS];
  const names = String(value).split(",").map((s) => s.trim()).filter(Boolean);
  const bad = names.find((n) => !SCENARIOS.includes(n as Scenario));
  if (bad !== undefined || names.length === 0) {
    throw new UsageError(
      `${NAME}: --scenario takes ${SCENARIOS.join(", ")} or both, got ${
        JSON.stringify(bad ?? value)
      }`,
    );
  }
  return SCENARIOS.filter((n) => names.includes(n));
}

/** The slow-rank scenario on its tree, with its targets. */
async function benchSlowRankTree(
  ctx: Context,
): Promise<SlowRankFigures & { tree: TreeName; targets: Target[] }> {
  const { spec } = TREES[ctx.quick ? "quick" : "full"][SLOW_RANK_TREE];
  const tree = await ensureTree(join(ctx.out, "trees", SLOW_RANK_TREE), spec, false);
  log(
    `slow rank: ${SLOW_RANK_TREE} tree (${tree.files.length} files, ${formatBytes(tree.bytes)}), ` +
      `rank 1 of ${RANKS} on a fifth of a core, stealing on and off`,
  );
  const figures = await benchSlowRank(
    tree,
    join(ctx.work, "slow-rank"),
    ctx.rounds,
    log,
    () => ctx.dropNote === null ? coldStart(TOOL_WARM) : Promise.resolve(),
  );
  return { tree: SLOW_RANK_TREE, ...figures, targets: slowRankTargets(SLOW_RANK_TREE, figures) };
}

function parseTrees(value: string | boolean | undefined): TreeName[] {
  if (value === undefined) return [...TREE_NAMES];
  const names = String(value).split(",").map((s) => s.trim()).filter(Boolean);
  const bad = names.find((n) => !TREE_NAMES.includes(n as TreeName));
  if (bad !== undefined || names.length === 0) {
    throw new UsageError(
      `${NAME}: --tree takes ${TREE_NAMES.join(", ")} or a comma list of them, got ` +
        JSON.stringify(bad ?? value),
    );
  }
  return TREE_NAMES.filter((n) => names.includes(n));
}

async function main(): Promise<number> {
  const cmd = parseCommand(
    NAME,
    "Benchmarks the tool (2 ranks under mpirun.mpich) against md5sum/cp,\n" +
      "cp -r && sync and mpiFileUtils dcp+dcmp on three trees; writes <out>/bench.json.",
    {
      quick: { type: "boolean", help: "tiny trees, one round (smoke test)" },
      tree: {
        type: "string",
        value: "T[,T]",
        help: `trees to run: ${TREE_NAMES.join(", ")} (default all)`,
      },
      rounds: { type: "string", value: "N", help: "rounds of alternating contenders (default 3)" },
      out: { type: "string", value: "DIR", help: "output folder (default <repo>/bench_out)" },
      mfu: {
        type: "string",
        value: "PREFIX",
        help: "look for dcp and dcmp only in PREFIX/bin (default PATH, then /opt/mfu/bin)",
      },
      scenario: {
        type: "string",
        value: "S[,S]",
        help: `parts to run: ${SCENARIOS.join(", ")} (default both; slow-rank runs on the ` +
          `${SLOW_RANK_TREE} tree)`,
      },
      regen: { type: "boolean", help: "regenerate the trees even when they can be reused" },
      "no-drop-cache": { type: "boolean", help: "do not drop the page cache between runs" },
    },
  );
  const v = cmd.values;
  const quick = v.quick === true;
  const rounds = v.rounds === undefined ? (quick ? 1 : 3) : Number(v.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    throw new UsageError(`${NAME}: --rounds must be a whole number from 1 to 20`);
  }
  const scenarios = parseScenarios(v.scenario);
  const trees = scenarios.includes("contenders") ? parseTrees(v.tree) : [];
  const out = typeof v.out === "string" ? v.out : join(REPO, "bench_out");
  const work = join(out, "work");
  await rm(work);
  await Deno.mkdir(work, { recursive: true });
  const startedAt = new Date().toISOString();

  let device: BlockDevice | null = null;
  let deviceNote: string | null = null;
  try {
    device = await blockDeviceOf(work);
    log(
      `device reads: /proc/diskstats of ${device.name} (${device.source} on ${device.mountPoint})`,
    );
  } catch (err) {
    if (!(err instanceof NoBlockDeviceError)) throw err;
    deviceNote = err.message;
    log(deviceNote);
  }
  const dropNote = v["no-drop-cache"] ? "disabled by --no-drop-cache" : await dropCaches();
  log(
    dropNote === null
      ? "page cache: dropped before every timed run (echo 3 > /proc/sys/vm/drop_caches)"
      : `page cache: not dropped (${dropNote}); every contender may read from the page cache`,
  );
  const mfu = await findMpiFileUtils(typeof v.mfu === "string" ? { prefix: v.mfu } : {});
  log(
    "missing" in mfu
      ? `${mfu.missing}; its contenders are skipped`
      : `mpiFileUtils: ${mfu.dcp}, ${mfu.dcmp}`,
  );

  const ctx: Context = { quick, rounds, regen: v.regen === true, out, work, device, dropNote, mfu };
  const results: Partial<Record<TreeName, TreeResult>> = {};
  for (const name of trees) results[name] = await benchTree(name, ctx);
  const slowRank = scenarios.includes("slow-rank") && parseTrees(v.tree).includes(SLOW_RANK_TREE)
    ? await benchSlowRankTree(ctx)
    : null;
  await rm(work);

  const result = {
    version: 2,
    quick,
    rounds,
    trees,
    startedAt,
    finishedAt: new Date().toISOString(),
    command: ["deno", "task", "bench", ...Deno.args].join(" "),
    machine: {
      cores: navigator.hardwareConcurrency,
      ranks: RANKS,
      launcher: MPIRUN,
      deno: Deno.version.deno,
      pageCacheDropped: dropNote === null,
      pageCacheNote: dropNote,
      device,
      deviceNote,
      mpiFileUtils: "missing" in mfu ? null : mfu,
      mpiFileUtilsNote: "missing" in mfu ? mfu.missing : null,
    },
    results,
    slowRank,
    targets: [...Object.values(results).flatMap((r) => r.targets), ...(slowRank?.targets ?? [])],
  };
  const jsonPath = join(out, "bench.json");
  await Deno.writeTextFile(jsonPath, JSON.stringify(result, null, 2) + "\n");
  const text = Object.values(results).map((r) => formatTree(r, rounds));
  if (slowRank !== null) text.push(formatSlowRank(slowRank, slowRank.targets, rounds));
  console.log(text.join("\n\n"));
  console.log(
    `\nbench: reads/byte: from /proc/diskstats of the device, any process (least over the ` +
      `rounds) / from the contender's own processes (ru_inblock); CPU: user+sys of every ` +
      `process of the run; peak RSS: its largest process; figures in ${jsonPath}`,
  );
  return 0;
}

if (import.meta.main) await runMain(main);
