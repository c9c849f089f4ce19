/**
 * `deno task bench`: end-to-end benchmark of the tool against standard tools and the
 * machine's floor, with reads per byte, peak RSS per rank on a 3 GiB file, the no-op run and
 * an incremental run. Contenders alternate within one invocation (speeds on a shared machine
 * are only comparable as ratios of one invocation); medians and ratios are printed and
 * written to `<out>/bench.json`.
 *
 * ```sh
 * deno task bench              # full: ~1 GiB tree, 3 rounds (trees reused in bench_out/)
 * deno task bench --quick      # tiny trees, one round, every contender (smoke test)
 * deno task bench --sweep      # also buffer_size / files_in_flight / drop_cache variants
 * ```
 * @module
 */

import { join } from "node:path";
import { formatBytes, parseCommand, runMain, UsageError } from "../core/cli.ts";
import { RANKS, runFloor, runStandard, runTool, type ToolRun } from "./bench/contenders.ts";
import { dropCaches, median, timed } from "./bench/proc.ts";
import {
  ensureTree,
  listPartitions,
  makeWorkspace,
  REPO,
  type Tree,
  type TreeSpec,
} from "./bench/tree.ts";

const NAME = "bench";
const MIB = 1024 * 1024;

/** Tree sizes of a full and a quick run. */
const SPECS: Record<"full" | "quick", { main: TreeSpec; big: TreeSpec }> = {
  full: {
    // ~1.05 GiB over 320 files; successes from ~230 KiB to ~27 MiB.
    main: { servers: 4, partitions: 40, rows: 64, imageBytes: 100_000, sizeSpread: true, seed: 1 },
    // One successes file of ~3.07 GiB.
    big: {
      servers: 1,
      partitions: 1,
      rows: 3300,
      imageBytes: 1_000_000,
      sizeSpread: false,
      seed: 7,
    },
  },
  quick: {
    main: { servers: 2, partitions: 5, rows: 8, imageBytes: 50_000, sizeSpread: true, seed: 1 },
    big: { servers: 1, partitions: 1, rows: 16, imageBytes: 500_000, sizeSpread: false, seed: 7 },
  },
};

/** One target of the issue and whether this run met it. */
interface Target {
  name: string;
  target: string;
  value: number;
  met: boolean;
}

/** Per-mode figures of the tool. */
interface ToolFigures {
  totalSeconds: number[];
  medianSeconds: number;
  medianPhases: { filter: number; schedule: number; run: number };
  readsPerByte: {
    /** The runner's own count (run_summary.json). */
    summary: number;
    /** Sum of the ranks' `rchar` (/proc/<pid>/io, last sample) per byte copied. */
    procRchar: number;
    /** Sum of the ranks' `read_bytes` (/proc/<pid>/io, last sample) per byte copied. */
    procReadBytes: number;
    /** Sum of the ranks' `%I` (/usr/bin/time) per byte copied. */
    timeInput: number;
  };
  peakRssMiBPerRank: number[];
}

function log(line: string): void {
  console.error(`[bench] ${line}`);
}

function ratio(a: number, b: number): number {
  return b > 0 ? a / b : NaN;
}

function readsOf(runs: ToolRun[]): ToolFigures["readsPerByte"] {
  const per = (f: (r: ToolRun) => number) => median(runs.map((r) => ratio(f(r), r.summary.bytes)));
  return {
    summary: median(runs.map((r) => r.summary.readsPerByte)),
    procRchar: per((r) => r.sampled.reduce((s, c) => s + c.rchar, 0)),
    procReadBytes: per((r) => r.sampled.reduce((s, c) => s + c.readBytes, 0)),
    timeInput: per((r) => r.ranks.reduce((s, c) => s + c.inputBytes, 0)),
  };
}

function figures(runs: ToolRun[]): ToolFigures {
  return {
    totalSeconds: runs.map((r) => r.totalSeconds),
    medianSeconds: median(runs.map((r) => r.totalSeconds)),
    medianPhases: {
      filter: median(runs.map((r) => r.filterSeconds)),
      schedule: median(runs.map((r) => r.scheduleSeconds)),
      run: median(runs.map((r) => r.runSeconds)),
    },
    readsPerByte: readsOf(runs),
    peakRssMiBPerRank: peakRss(runs),
  };
}

function peakRss(runs: ToolRun[]): number[] {
  const out: number[] = [];
  for (const r of runs) {
    r.ranks.forEach((k, i) => out[i] = Math.max(out[i] ?? 0, k.peakRssBytes / MIB));
  }
  return out.map((v) => Math.round(v * 10) / 10);
}

function expectDone(run: ToolRun, files: number, skipped: number, what: string): void {
  if (run.summary.done !== files || run.summary.skipped !== skipped) {
    throw new Error(
      `${what}: expected ${files} files copied and ${skipped} skipped, the run summary says ` +
        `${run.summary.done} and ${run.summary.skipped}`,
    );
  }
}

async function rm(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch(() => {});
}

function spreadOf(tree: Tree): { smallest: number; largest: number; successesSpread: number } {
  const succ = tree.files.filter((f) => f.kind === "successes").map((f) => f.bytes);
  const all = tree.files.map((f) => f.bytes);
  return {
    smallest: Math.min(...all),
    largest: Math.max(...all),
    successesSpread: Math.max(...succ) / Math.min(...succ),
  };
}

async function main(): Promise<number> {
  const cmd = parseCommand(
    NAME,
    "Benchmarks the tool (md5 and bytes modes, 2 ranks under mpirun.mpich) against\n" +
      "md5sum/cp over xargs -P 2 and the machine's floor; writes <out>/bench.json.",
    {
      quick: { type: "boolean", help: "tiny trees, one round (smoke test, < 60 s)" },
      rounds: { type: "string", value: "N", help: "rounds of alternating contenders (default 3)" },
      out: { type: "string", value: "DIR", help: "output folder (default <repo>/bench_out)" },
      sweep: {
        type: "boolean",
        help: "also time buffer_size, files_in_flight and drop_cache variants",
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
  const out = typeof v.out === "string" ? v.out : join(REPO, "bench_out");
  const spec = SPECS[quick ? "quick" : "full"];
  const work = join(out, "work");
  await rm(work);
  await Deno.mkdir(work, { recursive: true });
  const startedAt = new Date().toISOString();

  let dropNote: string | null = v["no-drop-cache"] ? "disabled by --no-drop-cache" : null;
  if (dropNote === null) dropNote = await dropCaches();
  const canDrop = dropNote === null;
  log(
    canDrop
      ? "page cache: dropped before every timed run (echo 3 > /proc/sys/vm/drop_caches)"
      : `page cache: cannot drop (${dropNote}); all contenders read from the page cache alike`,
  );
  const deno = Deno.execPath();
  // Source data cold, programs warm: after dropping the cache, load every program once so
  // that no contender pays for reading its own executable (deno is ~100 MB) from storage.
  const warm = [
    ...["filter", "schedule", "run"].map((
      p,
    ) => [deno, "run", "-A", join(REPO, `phases/${p}.ts`), "--help"]),
    ["mpirun.mpich", "-n", "2", deno, "eval", "0"],
    ["md5sum", "--version"],
    ["cp", "--version"],
    ["openssl", "version"],
    ["dd", "--version"],
    ["xargs", "--version"],
  ];
  const cold = async () => {
    if (!canDrop) return;
    await dropCaches();
    for (const [c, ...args] of warm) await timed(c, args);
  };

  log(`tree: ${join(out, "trees", "main")}`);
  const tree = await ensureTree(join(out, "trees", "main"), spec.main, v.regen === true);
  const spread = spreadOf(tree);
  log(
    `tree: ${tree.files.length} files, ${formatBytes(tree.bytes)}, ` +
      `${formatBytes(spread.smallest)} to ${formatBytes(spread.largest)}` +
      (tree.generatedSeconds > 0 ? ` (generated in ${tree.generatedSeconds.toFixed(1)} s)` : ""),
  );

  // ---- Alternating rounds ---------------------------------------------------------------
  const md5Runs: ToolRun[] = [];
  const bytesRuns: ToolRun[] = [];
  const noopSeconds: number[] = [];
  const std: { seconds: number; syncedSeconds: number }[] = [];
  const floors: { md5Seconds: number; ddSeconds: number; floorSeconds: number }[] = [];
  const order = ["tool-md5", "tool-bytes", "standard", "floor"] as const;
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < order.length; k++) {
      const which = order[(k + round) % order.length];
      const dir = join(work, `${which}-r${round}`);
      await cold();
      if (which === "tool-md5" || which === "tool-bytes") {
        const mode = which === "tool-md5" ? "md5" : "bytes";
        const ws = await makeWorkspace(dir, tree.images, { verify_mode: mode });
        const run = await runTool(ws);
        expectDone(run, tree.files.length, 0, which);
        (mode === "md5" ? md5Runs : bytesRuns).push(run);
        log(
          `round ${round + 1}: ${which} ${run.totalSeconds.toFixed(2)} s (run phase ` +
            `${run.runSeconds.toFixed(2)} s, ${run.summary.readsPerByte.toFixed(2)} reads/byte)`,
        );
        if (mode === "md5") {
          const noop = await runTool(ws, { plan: false });
          expectDone(noop, 0, tree.files.length, "no-op run");
          noopSeconds.push(noop.runSeconds);
          log(`round ${round + 1}: no-op run ${noop.runSeconds.toFixed(2)} s`);
        }
      } else if (which === "standard") {
        const r = await runStandard(tree, dir);
        std.push(r);
        log(
          `round ${round + 1}: md5sum/cp/md5sum over xargs -P 2 ${r.seconds.toFixed(2)} s ` +
            `(${r.syncedSeconds.toFixed(2)} s with the final sync)`,
        );
      } else {
        const r = await runFloor(tree, dir);
        floors.push(r);
        log(
          `round ${round + 1}: floor ${r.floorSeconds.toFixed(2)} s (openssl md5 ` +
            `${r.md5Seconds.toFixed(2)} s, dd ${r.ddSeconds.toFixed(2)} s)`,
        );
      }
      await rm(dir);
    }
  }

  // ---- Startup of Deno under mpirun --------------------------------------------------------
  const startup = {
    mpirunTrue: [] as number[],
    mpirunDenoEval: [] as number[],
    deno: [] as number[],
  };
  for (let i = 0; i < 3; i++) {
    startup.mpirunTrue.push((await timed("mpirun.mpich", ["-n", "2", "true"])).seconds);
    startup.mpirunDenoEval.push(
      (await timed("mpirun.mpich", ["-n", "2", deno, "eval", "0"])).seconds,
    );
    startup.deno.push((await timed(deno, ["eval", "0"])).seconds);
  }

  // ---- Peak RSS with a 3 GiB file ----------------------------------------------------------
  log(`big tree: ${join(out, "trees", "big")}`);
  const big = await ensureTree(join(out, "trees", "big"), spec.big, v.regen === true);
  log(
    `big tree: largest file ${formatBytes(Math.max(...big.files.map((f) => f.bytes)))}`,
  );
  const bigWs = await makeWorkspace(join(work, "big"), big.images, { verify_mode: "md5" });
  await cold();
  const bigRun = await runTool(bigWs);
  expectDone(bigRun, big.files.length, 0, "3 GiB run");
  await rm(bigWs.dir);
  log(
    `big tree: ${bigRun.totalSeconds.toFixed(2)} s, peak RSS per rank ` +
      `${peakRss([bigRun]).join(" / ")} MiB`,
  );

  // ---- Incremental ---------------------------------------------------------------------
  const partitions = await listPartitions(tree.images);
  const nNew = Math.max(1, Math.round(partitions.length / 10));
  const fresh = Array.from(
    { length: nNew },
    (_, i) => partitions[Math.floor(((i + 0.5) * partitions.length) / nNew)],
  );
  const incWs = await makeWorkspace(join(work, "incremental"), tree.images, { verify_mode: "md5" });
  let first: ToolRun;
  const newFiles = tree.files.filter((f) => fresh.some((p) => f.path.startsWith(p + "/"))).length;
  try {
    for (const p of fresh) await Deno.remove(join(p, "completed"));
    await cold();
    first = await runTool(incWs);
    expectDone(first, tree.files.length - newFiles, 0, "incremental, first run");
  } finally {
    for (const p of fresh) await Deno.writeFile(join(p, "completed"), new Uint8Array());
  }
  await cold();
  const second = await runTool(incWs);
  expectDone(second, newFiles, tree.files.length - newFiles, "incremental, second run");
  await rm(incWs.dir);
  log(
    `incremental: first ${first.totalSeconds.toFixed(2)} s (${first.summary.done} files), ` +
      `second ${second.totalSeconds.toFixed(2)} s (${second.summary.done} new files)`,
  );

  // ---- Optional sweep of settings --------------------------------------------------------
  const sweep: Array<{ name: string; settings: Record<string, unknown>; runSeconds: number[] }> =
    [];
  if (v.sweep) {
    const variants: Array<[string, Record<string, unknown>]> = [
      ["default (8MiB x4, 2 in flight, drop on)", {}],
      ["buffer_size 1MiB", { buffer_size: "1MiB" }],
      ["buffer_size 4MiB", { buffer_size: "4MiB" }],
      ["buffer_size 16MiB", { buffer_size: "16MiB" }],
      ["files_in_flight 1", { files_in_flight: 1 }],
      ["files_in_flight 4", { files_in_flight: 4 }],
      ["drop_cache off", { drop_cache: false }],
      ["libcrypto, 4 in flight, 2MiB x3", {
        md5_engine: "libcrypto",
        files_in_flight: 4,
        buffer_size: "2MiB",
        buffers: 3,
      }],
      ["wasm-simd, 4 in flight, 2MiB x3", {
        md5_engine: "wasm-simd",
        files_in_flight: 4,
        buffer_size: "2MiB",
        buffers: 3,
      }],
      ["wasm-simd, 8 in flight, 2MiB x3", {
        md5_engine: "wasm-simd",
        files_in_flight: 8,
        buffer_size: "2MiB",
        buffers: 3,
      }],
    ];
    for (const [name, settings] of variants) sweep.push({ name, settings, runSeconds: [] });
    const sweepRounds = quick ? 1 : 2;
    for (let round = 0; round < sweepRounds; round++) {
      for (let k = 0; k < variants.length; k++) {
        const entry = sweep[(k + round) % variants.length];
        const ws = await makeWorkspace(join(work, `sweep-${k}`), tree.images, {
          verify_mode: "md5",
          ...entry.settings,
        });
        await cold();
        const run = await runTool(ws);
        expectDone(run, tree.files.length, 0, `sweep ${entry.name}`);
        entry.runSeconds.push(run.runSeconds);
        log(`sweep round ${round + 1}: ${entry.name}: run phase ${run.runSeconds.toFixed(2)} s`);
        await rm(ws.dir);
      }
    }
  }
  await rm(work);

  // ---- Results -----------------------------------------------------------------------------
  const md5 = figures(md5Runs);
  const bytes = figures(bytesRuns);
  const stdMedian = median(std.map((s) => s.syncedSeconds));
  const stdNoSync = median(std.map((s) => s.seconds));
  const floor = median(floors.map((f) => f.floorSeconds));
  const noop = median(noopSeconds);
  const bigRss = peakRss([bigRun]);
  const ratios = {
    md5SpeedupVsStandard: ratio(stdMedian, md5.medianSeconds),
    bytesSpeedupVsStandard: ratio(stdMedian, bytes.medianSeconds),
    md5SpeedupVsStandardNoSync: ratio(stdNoSync, md5.medianSeconds),
    bytesSpeedupVsStandardNoSync: ratio(stdNoSync, bytes.medianSeconds),
    md5OverFloor: ratio(md5.medianSeconds, floor),
    bytesOverFloor: ratio(bytes.medianSeconds, floor),
    md5RunPhaseOverFloor: ratio(md5.medianPhases.run, floor),
    standardOverFloor: ratio(stdMedian, floor),
  };
  const targets: Target[] = [
    {
      name: "md5 mode vs (b)",
      target: ">= 1.25x faster",
      value: ratios.md5SpeedupVsStandard,
      met: ratios.md5SpeedupVsStandard >= 1.25,
    },
    {
      name: "bytes mode vs (b)",
      target: ">= 1.5x faster",
      value: ratios.bytesSpeedupVsStandard,
      met: ratios.bytesSpeedupVsStandard >= 1.5,
    },
    {
      name: "md5 mode vs floor (c)",
      target: "<= 1.3x the floor",
      value: ratios.md5OverFloor,
      met: ratios.md5OverFloor <= 1.3,
    },
    {
      name: "peak RSS per rank, 3 GiB file",
      target: "< 150 MiB",
      value: Math.max(...bigRss),
      met: Math.max(...bigRss) < 150,
    },
    { name: "no-op run, 2 ranks", target: "< 1 s", value: noop, met: noop < 1 },
    {
      name: "reads per byte, md5 mode (runner)",
      target: "2.0",
      value: md5.readsPerByte.summary,
      met: Math.abs(md5.readsPerByte.summary - 2) < 0.05,
    },
  ];
  const result = {
    version: 1,
    quick,
    rounds,
    startedAt,
    finishedAt: new Date().toISOString(),
    command: ["deno", "task", "bench", ...Deno.args].join(" "),
    machine: {
      cores: navigator.hardwareConcurrency,
      ranks: RANKS,
      pageCacheDropped: canDrop,
      pageCacheNote: dropNote,
      deno: Deno.version.deno,
    },
    tree: {
      path: tree.images,
      spec: spec.main,
      files: tree.files.length,
      bytes: tree.bytes,
      smallestBytes: spread.smallest,
      largestBytes: spread.largest,
      successesSpread: spread.successesSpread,
    },
    contenders: {
      toolMd5: md5,
      toolBytes: bytes,
      standard: {
        syncedSeconds: std.map((s) => s.syncedSeconds),
        seconds: std.map((s) => s.seconds),
        medianSeconds: stdMedian,
        medianSecondsNoSync: stdNoSync,
      },
      floor: {
        md5Seconds: floors.map((f) => f.md5Seconds),
        ddSeconds: floors.map((f) => f.ddSeconds),
        floorSeconds: floors.map((f) => f.floorSeconds),
        medianSeconds: floor,
      },
    },
    ratios,
    noop: {
      runSeconds: noopSeconds,
      medianSeconds: noop,
      mpirunTrueMedianSeconds: median(startup.mpirunTrue),
      mpirunDenoEvalMedianSeconds: median(startup.mpirunDenoEval),
      denoEvalMedianSeconds: median(startup.deno),
    },
    memory: {
      largestFileBytes: Math.max(...big.files.map((f) => f.bytes)),
      peakRssMiBPerRank: bigRss,
      runSeconds: bigRun.runSeconds,
      readsPerByte: readsOf([bigRun]),
    },
    incremental: {
      newPartitions: fresh.length,
      firstSeconds: first.totalSeconds,
      firstFiles: first.summary.done,
      secondSeconds: second.totalSeconds,
      secondFiles: second.summary.done,
      secondSkipped: second.summary.skipped,
      movedOnlyNew: second.summary.done === newFiles,
    },
    sweep: sweep.map((s) => ({ ...s, medianRunSeconds: median(s.runSeconds) })),
    targets,
  };
  await Deno.mkdir(out, { recursive: true });
  const jsonPath = join(out, "bench.json");
  await Deno.writeTextFile(jsonPath, JSON.stringify(result, null, 2) + "\n");
  console.log(report(result));
  console.log(`\nbench: figures in ${jsonPath}`);
  return 0;
}

type Result = {
  tree: { files: number; bytes: number; smallestBytes: number; largestBytes: number };
  rounds: number;
  machine: { pageCacheDropped: boolean; pageCacheNote: string | null };
  contenders: {
    toolMd5: ToolFigures;
    toolBytes: ToolFigures;
    standard: { medianSeconds: number; medianSecondsNoSync: number };
    floor: { medianSeconds: number; md5Seconds: number[]; ddSeconds: number[] };
  };
  ratios: Record<string, number>;
  noop: Record<string, number | number[]>;
  memory: { largestFileBytes: number; peakRssMiBPerRank: number[]; runSeconds: number };
  incremental: {
    firstSeconds: number;
    firstFiles: number;
    secondSeconds: number;
    secondFiles: number;
    movedOnlyNew: boolean;
  };
  sweep: Array<{ name: string; medianRunSeconds: number }>;
  targets: Target[];
};

function report(r: Result): string {
  const f = (n: number, d = 2) => Number.isFinite(n) ? n.toFixed(d) : "n/a";
  const c = r.contenders;
  const row = (name: string, t: ToolFigures) =>
    `| ${name} | ${f(t.medianSeconds)} | ${f(t.medianPhases.filter)} / ${
      f(t.medianPhases.schedule)
    } / ${f(t.medianPhases.run)} | ${f(c.standard.medianSeconds / t.medianSeconds)}x | ${
      f(t.medianSeconds / c.floor.medianSeconds)
    }x | ${f(t.readsPerByte.summary)} / ${f(t.readsPerByte.procRchar)} / ${
      f(t.readsPerByte.procReadBytes)
    } | ${t.peakRssMiBPerRank.join(" / ")} |`;
  const lines = [
    `tree: ${r.tree.files} files, ${formatBytes(r.tree.bytes)} (${
      formatBytes(r.tree.smallestBytes)
    }` +
    ` to ${formatBytes(r.tree.largestBytes)}); ${r.rounds} round(s), medians; page cache ` +
    (r.machine.pageCacheDropped
      ? "dropped before each run"
      : `not dropped: ${r.machine.pageCacheNote}`),
    "",
    "| contender | median s | filter / schedule / run s | (b) / this | this / (c) | reads/byte runner / rchar / read_bytes | peak RSS MiB per rank |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    row("(a) tool, md5", c.toolMd5),
    row("(a) tool, bytes", c.toolBytes),
    `| (b) md5sum+cp+md5sum, xargs -P 2, + sync | ${f(c.standard.medianSeconds)} (${
      f(c.standard.medianSecondsNoSync)
    } without sync) | | 1.00x | ${f(c.standard.medianSeconds / c.floor.medianSeconds)}x | | |`,
    `| (c) floor = max(openssl md5 x2 / 2 cores, dd) | ${f(c.floor.medianSeconds)} (md5 ${
      f(median(c.floor.md5Seconds))
    }, dd ${f(median(c.floor.ddSeconds))}) | | | 1.00x | | |`,
    "",
    `no-op run (run phase, 2 ranks): ${f(r.noop.medianSeconds as number)} s; mpirun -n 2 true ` +
    `${f(r.noop.mpirunTrueMedianSeconds as number)} s; mpirun -n 2 deno eval ` +
    `${f(r.noop.mpirunDenoEvalMedianSeconds as number)} s; deno eval ` +
    `${f(r.noop.denoEvalMedianSeconds as number)} s`,
    `3 GiB file: ${formatBytes(r.memory.largestFileBytes)}, peak RSS per rank ` +
    `${r.memory.peakRssMiBPerRank.join(" / ")} MiB, run phase ${f(r.memory.runSeconds)} s`,
    `incremental: first ${f(r.incremental.firstSeconds)} s (${r.incremental.firstFiles} files), ` +
    `second ${f(r.incremental.secondSeconds)} s (${r.incremental.secondFiles} files, only new: ` +
    `${r.incremental.movedOnlyNew})`,
  ];
  if (r.sweep.length > 0) {
    lines.push("", "| sweep variant (md5) | median run phase s |", "| --- | --- |");
    for (const s of r.sweep) lines.push(`| ${s.name} | ${f(s.medianRunSeconds)} |`);
  }
  lines.push("", "| target | wanted | measured | met |", "| --- | --- | --- | --- |");
  for (const t of r.targets) {
    lines.push(`| ${t.name} | ${t.target} | ${f(t.value)} | ${t.met ? "yes" : "NO"} |`);
  }
  return lines.join("\n");
}

if (import.meta.main) await runMain(main);
