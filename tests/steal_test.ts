/**
 * Balancing at run time in the run phase (issue 16), under the real `mpirun.mpich` and
 * `mpirun.openmpi`: a rank whose share is done takes the files another rank has not started.
 * A slow rank is slow by construction (the run driver's `--slow-rank R`: after its first file,
 * R waits until every other rank has found nothing left to take), never by timing, so the
 * others must take over the rest of its share; the tests assert the files on disk, the logs,
 * `run_summary.json` and exit codes, never how long anything took. In one process: what a rank
 * holds (`in_hand.ts`), the speed check that lets a fast rank hold more (`speed_check.ts`, on a
 * clock the test moves), and the turn of its workers (`worker_loop.ts`).
 * @module
 */

import { join } from "node:path";
import { describeFailure } from "../core/cli.ts";
import { parseCsv } from "../core/records/csv.ts";
import { readSchedule, type ScheduleRow } from "../core/plan/plan_table.ts";
import type { RunSummary } from "../core/transfer/run_summary.ts";
import { WorkListMismatchError } from "../core/transfer/work_queue.ts";
import { InHand } from "../core/transfer/in_hand.ts";
import {
  holdingLimit,
  type PendingMax,
  SpeedCheck,
  type SpeedVerdict,
} from "../core/transfer/speed_check.ts";
import { runWorkers } from "../core/transfer/worker_loop.ts";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import {
  addPartition,
  datasetFiles,
  listFiles,
  makeWorkspace,
  runScript,
} from "./support/fixture.ts";
import type { Workspace, WorkspaceOptions } from "./support/fixture.ts";
import { countRowsWithDuckdb, readRowsWithHyparquet } from "./support/parquet_readers.ts";
import { MPI_IMPLS, type MpiImpl, mpirun } from "./support/mpi_launch.ts";
import { makeGate, RUN_DRIVER, spawnDriver, waitPaused } from "./support/run_gate.ts";

/** A scheduled workspace of `partitions` partitions (two files each) for `ranks` ranks. */
async function scheduled(
  ranks: number,
  partitions: number,
  transfer: Record<string, unknown> = {},
  size = 120_000,
): Promise<{ ws: Workspace; rows: ScheduleRow[] }> {
  const options: WorkspaceOptions = { workersPerNode: ranks, transfer };
  const ws = await makeWorkspace(options);
  for (let p = 0; p < partitions; p++) {
    await addPartition(ws, ["img.org", "cdn.net:443", "plain"][p % 3], p, {
      successes: size + p * 4099,
      errors: 300 + p,
    });
  }
  for (const phase of ["phases/filter.ts", "phases/schedule.ts"]) {
    const r = await runScript(phase, ["--config", ws.configPath]);
    assertEquals(r.code, 0, r.stderr);
  }
  return { ws, rows: await readSchedule(join(ws.tool, "schedule.csv")) };
}

/** Every record of every verification log, in no particular order. */
async function allRecords(ws: Workspace): Promise<Array<Record<string, string>>> {
  const out: Array<Record<string, string>> = [];
  for (const p of listFiles(join(ws.tool, "verification"))) {
    out.push(...parseCsv(await Deno.readTextFile(p)).records);
  }
  return out;
}

/**
 * The dataset is exactly the schedule, byte for byte, read back by independent readers, and
 * the logs hold one verified record per destination (no file was copied twice).
 */
async function assertDatasetOnce(ws: Workspace, rows: ScheduleRow[]): Promise<void> {
  assertEquals(datasetFiles(ws), rows.map((r) => r.dstPath).sort(), "the scheduled files only");
  let successRows = 0;
  for (const row of rows) {
    assertEquals(await Deno.readFile(row.dstPath), await Deno.readFile(row.srcPath), row.dstPath);
    const read = await readRowsWithHyparquet(row.dstPath);
    assert(read.length > 0, `${row.dstPath} reads back as parquet`);
    if (row.kind === "successes") successRows += read.length;
  }
  assertEquals(
    await countRowsWithDuckdb(join(ws.dstImages, "*", "*.parquet")),
    successRows,
    "DuckDB reads the whole dataset",
  );
  const verified = new Map<string, number>();
  for (const rec of await allRecords(ws)) {
    if (rec.status === "verified") {
      verified.set(rec.dst_path, (verified.get(rec.dst_path) ?? 0) + 1);
    }
  }
  for (const row of rows) {
    assertEquals(verified.get(row.dstPath), 1, `verified once: ${row.dstPath}`);
  }
  assertEquals(verified.size, rows.length);
}

async function summaryOf(ws: Workspace): Promise<RunSummary> {
  return JSON.parse(await Deno.readTextFile(join(ws.tool, "run_summary.json")));
}

/** The text of each rank's log of the runs in `ws`, by rank. */
async function rankLogs(ws: Workspace): Promise<string[]> {
  const logs: string[] = [];
  for (const path of listFiles(join(ws.tool, "logs"))) {
    const m = /\/run_rank(\d+)_[^/]*\.log$/.exec(path);
    if (m) logs[Number(m[1])] = (logs[Number(m[1])] ?? "") + await Deno.readTextFile(path);
  }
  return logs;
}

/** Rows of `rank`'s own share in a world of the schedule's size, largest first. */
function shareOf(rows: ScheduleRow[], rank: number): ScheduleRow[] {
  return rows.filter((r) => r.rank === rank)
    .sort((a, b) => b.sizeBytes - a.sizeBytes || (a.srcPath < b.srcPath ? -1 : 1));
}

/** The run driver's arguments for `ws` with rank 1 slow (gated by `gate`), then `more`. */
function slowRankArgs(ws: Workspace, gate: string, ...more: string[]): string[] {
  return ["--config", ws.configPath, "--gate", gate, "--slow-rank", "1", ...more];
}

/**
 * Runs the driver with rank 1 slow on `n` ranks under `impl`; checks that every file is
 * verified once and the slow rank's share was taken over by the others.
 */
async function slowRankRun(impl: MpiImpl, n: number, partitions: number): Promise<void> {
  const { ws, rows } = await scheduled(n, partitions, { files_in_flight: 2 });
  const gate = await makeGate();
  try {
    const r = await mpirun(impl, n, RUN_DRIVER, slowRankArgs(ws, gate), { timeoutMs: 240_000 });
    assertEquals(r.code, 0, r.stdout + r.stderr);
    await assertDatasetOnce(ws, rows);
    const s = await summaryOf(ws);
    assertEquals([s.size, s.done, s.failed, s.left, s.stealing], [n, rows.length, 0, 0, true]);
    const slowShare = shareOf(rows, 1).length;
    assert(slowShare > 1, "the slow rank has more than one file to take from");
    // By construction the slow rank did one file at most (its first take); the others took
    // over the rest of its share.
    assert(s.ranks[1].done <= 1, `the slow rank copied ${s.ranks[1].done} files`);
    const byOthers = s.ranks.filter((rank) => rank.rank !== 1)
      .reduce((t, rank) => t + rank.takenFromOthers, 0);
    assert(byOthers >= slowShare - 1, `the others took ${byOthers} files of ${slowShare}`);
    if (n === 2) {
      assert(s.ranks[0].takenFromOthers >= slowShare - 1, "rank 0 took the work");
      // The speed check: rank 0 copied nearly every file in the time rank 1 copied one, by
      // construction, so rank 0 may hold a file per worker and rank 1 keeps holding little.
      const logs = await rankLogs(ws);
      assertMatch(logs[0], /speed check: .*: holding as many files as there are workers/);
      assertMatch(logs[1], /speed check: .*: slower than half the fastest, holding at most/);
    }
    assertEquals(s.takenFromOthers, s.ranks.reduce((t, rank) => t + rank.takenFromOthers, 0));
    assertEquals(s.ranks.reduce((b, rank) => b + rank.bytes, 0), s.bytes);
    assertMatch(
      r.stdout,
      new RegExp(`run: ${s.takenFromOthers} files taken over from other ranks' shares`),
    );
    assertMatch(r.stdout, new RegExp(`run: ${rows.length} files copied and verified`));
    // A re-run finds everything verified and copies nothing.
    const again = await mpirun(impl, n, "phases/run.ts", ["--config", ws.configPath]);
    assertEquals(again.code, 0, again.stderr);
    assertMatch(again.stdout, new RegExp(`0 files copied .* ${rows.length} verified before`));
  } finally {
    await Deno.remove(ws.dir, { recursive: true });
    await Deno.remove(gate, { recursive: true });
  }
}

for (const impl of MPI_IMPLS) {
  Deno.test(`steal: ${impl} -n 2 with rank 1 slow: the fast rank takes over its share, every file verified once`, async () => {
    await slowRankRun(impl, 2, 8);
  });

  Deno.test(`steal: ${impl} -n 8 oversubscribed with rank 1 slow: every file verified once, its share taken over`, async () => {
    await slowRankRun(impl, 8, 16);
  });

  Deno.test(`steal: ${impl}: a rank killed while copying a file it took from another rank, then a re-run: every file once, the temporary swept`, async () => {
    const { ws, rows } = await scheduled(2, 8, { files_in_flight: 1, buffer_size: 65536 });
    const gate = await makeGate();
    // Rank 1 is slow: rank 0 takes over its files and pauses inside the copy of the first one
    // it took, its first range on storage, until it is killed.
    const job = spawnDriver(
      impl,
      2,
      slowRankArgs(ws, gate, "--pause-in-steal", "--pause-rank", "0"),
    );
    try {
      const pids = await waitPaused(gate, [0], job.running);
      const temporaries = datasetFiles(ws).filter((p) => p.endsWith(".dt-tmp"));
      assert(temporaries.length >= 1, "the copy taken over is a temporary on storage");
      const before = await allRecords(ws);
      const verifiedBefore = new Set(
        before.filter((r) => r.status === "verified").map((r) => r.dst_path),
      );
      const mine = new Set(shareOf(rows, 0).map((r) => r.dstPath));
      assertEquals(
        [...verifiedBefore].filter((d) => mine.has(d)).length,
        mine.size,
        "rank 0 finished its own share before it took from rank 1",
      );
      Deno.kill(pids.get(0)!, "SIGKILL");
      assert(!(await job.status).success, "the job fails when a rank is killed");
      const again = await mpirun(impl, 2, "phases/run.ts", ["--config", ws.configPath]);
      assertEquals(again.code, 0, again.stdout + again.stderr);
      await assertDatasetOnce(ws, rows);
      const s = await summaryOf(ws);
      assertEquals(s.done, rows.length - verifiedBefore.size, "only what was not verified");
      const swept = s.ranks.reduce((n, r) => n + r.temporariesRemoved, 0);
      assert(swept >= 1, "the killed rank's temporary was swept");
    } finally {
      await Deno.remove(ws.dir, { recursive: true });
      await Deno.remove(gate, { recursive: true });
    }
  });

  Deno.test(`steal: ${impl}: the time budget stops a run that is taking over files with exit 4; the next run finishes`, async () => {
    const { ws, rows } = await scheduled(2, 8, { files_in_flight: 1, time_margin_seconds: 60 });
    const gate = await makeGate();
    try {
      // Rank 1 is slow (it waits until rank 0 is dry or the budget is out); rank 0 does its
      // own share, takes two files of rank 1's, and before its next file waits until the
      // budget (20 s) is out.
      const own = shareOf(rows, 0).length;
      assert(shareOf(rows, 1).length > 3, "rank 1 has files left for the next job");
      const r = await mpirun(
        impl,
        2,
        RUN_DRIVER,
        slowRankArgs(ws, gate, "--stall-after", String(own + 2), "--time-limit", "80s"),
        { timeoutMs: 240_000 },
      );
      assertEquals(r.code, 4, r.stdout + r.stderr);
      const s = await summaryOf(ws);
      assertEquals(s.stoppedForTime, true);
      assertEquals([s.ranks[0].done, s.ranks[0].takenFromOthers], [own + 2, 2]);
      assertEquals(s.ranks[1].done, 1);
      assertEquals(s.left, rows.length - own - 3, "rank 1's files nobody started are left");
      assertMatch(r.stdout, new RegExp(`run: stopped for the time budget; ${s.left} files left`));
      assertEquals(datasetFiles(ws).filter((p) => p.endsWith(".dt-tmp")), [], "no temporary");
      const again = await mpirun(impl, 2, "phases/run.ts", ["--config", ws.configPath]);
      assertEquals(again.code, 0, again.stdout + again.stderr);
      assertMatch(again.stdout, new RegExp(`run: ${s.left} files copied and verified`));
      await assertDatasetOnce(ws, rows);
    } finally {
      await Deno.remove(ws.dir, { recursive: true });
      await Deno.remove(gate, { recursive: true });
    }
  });
}

Deno.test("steal: data_transfer.steal: false keeps each rank to its own share, even with a slow rank", async () => {
  const { ws, rows } = await scheduled(2, 6, { steal: false });
  const gate = await makeGate();
  try {
    const r = await mpirun("mpich", 2, RUN_DRIVER, slowRankArgs(ws, gate));
    assertEquals(r.code, 0, r.stdout + r.stderr);
    assert(!r.stderr.includes("balancing at run time is off"), "the config's choice is no warning");
    await assertDatasetOnce(ws, rows);
    const s = await summaryOf(ws);
    assertEquals([s.stealing, s.stealingOff, s.takenFromOthers], [
      false,
      "data_transfer.steal is false",
      0,
    ]);
    assertEquals(s.ranks.map((rank) => rank.done), [
      shareOf(rows, 0).length,
      shareOf(rows, 1).length,
    ]);
  } finally {
    await Deno.remove(ws.dir, { recursive: true });
    await Deno.remove(gate, { recursive: true });
  }
});

Deno.test("steal: when MPI refuses the one-sided window, the run goes on without stealing and says what to set", async () => {
  const { ws, rows } = await scheduled(2, 6);
  // Open MPI's default window component over TCP alone fails as it does between nodes.
  const r = await mpirun("openmpi", 2, "phases/run.ts", ["--config", ws.configPath], {
    env: { OMPI_MCA_osc: "rdma", OMPI_MCA_btl: "tcp,self" },
  });
  try {
    assertEquals(r.code, 0, r.stdout + r.stderr);
    const warnings = r.stderr.split("\n").filter((l) => l.includes("balancing at run time is off"));
    assertEquals(warnings.length, 1, r.stderr);
    assertMatch(warnings[0], /^warning: run: .*MPI_Win_allocate.*export OMPI_MCA_osc=pt2pt/);
    await assertDatasetOnce(ws, rows);
    const s = await summaryOf(ws);
    assertEquals([s.stealing, s.takenFromOthers, s.done], [false, 0, rows.length]);
    assertMatch(s.stealingOff ?? "", /one-sided window/);
  } finally {
    await Deno.remove(ws.dir, { recursive: true });
  }
});

Deno.test("steal: ranks that built different work lists end with exit 2 and what to do", () => {
  const failure = describeFailure(new WorkListMismatchError("rank 1: the ranks built different"));
  assertEquals(failure.code, 2);
  assertMatch(failure.message, /^error: rank 1: the ranks built different/);
});

Deno.test("steal: a rank takes another file only while it holds less than its limit", async () => {
  const hand = new InHand(100);
  await hand.room(); // nothing in hand: at once
  hand.take("a", 300);
  let roomy = false;
  const waited = hand.room().then(() => roomy = true);
  hand.copied("a", 150);
  await Promise.resolve();
  assertEquals([hand.left, roomy], [150, false]);
  hand.copied("a", 500); // a retry counts again: never past the file's size
  await waited;
  assertEquals([hand.left, roomy], [0, true]);
  hand.take("b", 40);
  hand.take("c", 70);
  assertEquals(hand.left, 110);
  hand.done("c"); // finished (or failed) with bytes not copied: no longer in hand
  assertEquals(hand.left, 40);
  await hand.room();
});

/** A max-reduction over this rank and others whose rates are `others`, completed by `settle`. */
function fakeMax(others: number[]): { postRate: (rate: number) => PendingMax; settle: () => void } {
  let posted: number | null = null;
  let settle = () => {};
  const done = new Promise<void>((resolve) => settle = resolve);
  return {
    postRate: (rate) => {
      if (posted !== null) throw new Error("posted twice");
      posted = rate;
      return { wait: () => done, value: () => Math.max(rate, ...others) };
    },
    settle: () => settle(),
  };
}

Deno.test("steal: the speed check lets a rank about as fast as the fastest hold a file per worker; a slower rank holds in proportion to its speed", async () => {
  const MIB = 2 ** 20;
  const cases: [string, number[], boolean][] = [
    ["the fastest", [50 * MIB], true],
    ["just over half the fastest", [190 * MIB], true],
    ["under half the fastest", [250 * MIB], false],
  ];
  for (const [what, others, fast] of cases) {
    let clock = 1_000;
    const hand = new InHand(64 * MIB);
    const verdicts: SpeedVerdict[] = [];
    const max = fakeMax(others);
    const check = new SpeedCheck({
      sampleBytes: 64 * MIB,
      postRate: max.postRate,
      now: () => clock,
      onVerdict: (v) => {
        verdicts.push(v);
        hand.setLimit(holdingLimit(v, 64 * MIB));
      },
    });
    hand.take("a", 80 * MIB);
    let roomy = false;
    const room = hand.room().then(() => roomy = true);
    clock += 500;
    check.copied(32 * MIB); // half the sample: nothing posted yet
    clock += 500;
    check.copied(68 * MIB); // 100 MiB in 1 s: posted, the others have not all posted yet
    await Promise.resolve();
    assertEquals([verdicts.length, roomy], [0, false], what);
    max.settle();
    await check.finish();
    assertEquals(verdicts.length, 1, what);
    assertEquals(verdicts[0].bytesPerSecond, 100 * MIB, what);
    assertEquals(verdicts[0].fastestBytesPerSecond, Math.max(100 * MIB, ...others), what);
    assertEquals(verdicts[0].fast, fast, what);
    // A fast rank's workers waiting for room take at once; a slow rank's still wait, and it
    // holds in proportion to its speed (100 of 250 MiB/s: 40% of the bound).
    await Promise.race([room, new Promise((resolve) => setTimeout(resolve, 0))]);
    assertEquals([roomy, hand.limit], [fast, fast ? Infinity : Math.floor(64 * MIB * 0.4)], what);
  }
  // The sample's time ends it too: 10 MiB in 2 s, posted before the 64 MiB.
  {
    let clock = 0;
    const verdicts: SpeedVerdict[] = [];
    const max = fakeMax([20 * MIB]);
    const check = new SpeedCheck({
      sampleBytes: 64 * MIB,
      sampleMs: 2_000,
      postRate: max.postRate,
      now: () => clock,
      onVerdict: (v) => verdicts.push(v),
    });
    clock += 1_999;
    check.copied(6 * MIB);
    clock += 1;
    check.copied(4 * MIB);
    check.copied(4 * MIB); // after the post: counted, changes nothing
    max.settle();
    await check.finish();
    assertEquals(verdicts.map((v) => [v.bytesPerSecond, v.fast]), [[5 * MIB, false]]);
  }
  // A rank that stops before its sample posts what it copied when it finishes.
  let clock = 0;
  const verdicts: SpeedVerdict[] = [];
  const max = fakeMax([10]);
  const check = new SpeedCheck({
    sampleBytes: 1_000,
    postRate: max.postRate,
    now: () => clock,
    onVerdict: (v) => verdicts.push(v),
  });
  check.copied(40);
  clock += 2_000;
  max.settle();
  await check.finish();
  assertEquals(verdicts.map((v) => [v.bytesPerSecond, v.fast]), [[20, true]]);
});

Deno.test("steal: workers take in turn, each after room and the budget check; a file taken is always worked", async () => {
  const items = [5, 4, 3, 2, 1];
  const hand = new InHand(2);
  const worked: number[] = [];
  let checks = 0;
  const result = await runWorkers({
    workers: 3,
    room: () => hand.room(),
    take: () => {
      const item = items.shift() ?? null;
      if (item !== null) hand.take(String(item), 2);
      return Promise.resolve(item);
    },
    // Out of time once three files are taken: the workers stop taking, finish what they hold.
    mustStop: () => ++checks > 3,
    work: async (item) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      worked.push(item);
      hand.done(String(item));
    },
  });
  assertEquals(result, { stopped: true });
  assertEquals(worked, [5, 4, 3], "one file in hand at a time, in order, none after the stop");
  assertEquals(items, [2, 1], "files never taken stay for the next run");
});
