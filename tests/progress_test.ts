/**
 * Progress: the line that adds up every rank's snapshot; the bytes of files in flight; and what
 * a user sees under each launcher: a line redrawn in place only when one process writes to a
 * terminal itself, plain periodic lines under `mpirun.mpich`, `mpirun.openmpi` (whose ranks
 * write to a pseudo-terminal even when its own output goes to a file) and in a redirected
 * output, never a terminal escape in a file. The runs pause a file in flight with the test
 * driver until the line that counts it has been seen, so no timing matters.
 * @module
 */

import { join } from "node:path";
import { shellQuote } from "../core/shell_quote.ts";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { addPartition, makeWorkspace, REPO, runScript } from "./support/fixture.ts";
import { cleanEnv, launcherArgs, type MpiImpl } from "./support/mpi_launch.ts";
import { makeGate, openGate, RUN_DRIVER } from "./support/run_gate.ts";
import { progressLine, readProgress, SnapshotFile } from "../core/transfer/progress.ts";
import type { RankProgress } from "../core/transfer/progress.ts";
import { formatDuration } from "../core/format.ts";
import { progressStyle } from "../core/transfer/progress_display.ts";
import { ProgressRecorder } from "../core/transfer/rank_progress.ts";

Deno.test("progress: the line adds up what every rank did out of the run's totals, with rate and time left", async () => {
  const dir = await Deno.makeTempDir();
  const start = 1_000_000;
  const ranks: RankProgress[] = [
    {
      rank: 0,
      filesTotal: 20,
      bytesTotal: 200 << 20,
      filesDone: 4,
      bytesDone: 40 << 20,
      failed: 0,
      startedMs: start,
    },
    {
      rank: 1,
      filesTotal: 20,
      bytesTotal: 200 << 20,
      filesDone: 6,
      bytesDone: 60 << 20,
      failed: 1,
      startedMs: start + 500,
    },
  ];
  for (const r of ranks) {
    const file = await SnapshotFile.open(dir, r.rank);
    // A longer snapshot, then the real one written over it in place.
    await file.write({ ...r, bytesTotal: 1e15, startedMs: 1e15 });
    await file.write(r);
    file.close();
  }
  const read = await readProgress(dir, 3);
  assertEquals(read, ranks, "the missing rank 2 is skipped; a shorter snapshot replaces a longer");
  // 100 MiB in 10 s: 10 MiB/s, 100 MiB left: 10 s.
  const line = progressLine(read, start + 10_000);
  assertEquals(
    line,
    "progress: 10/20 files, 100.0 MiB/200.0 MiB, 10.0 MiB/s, 1 failed, time left 10s (2 ranks reporting)",
  );
  // A rank that took over most of the work (balancing at run time) counts all it did.
  assertMatch(
    progressLine([ranks[0], { ...ranks[1], filesDone: 16, bytesDone: 160 << 20 }], start + 1),
    /^progress: 20\/20 files, 200\.0 MiB\/200\.0 MiB, .* time left 0s/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("progress: durations read as a person would", () => {
  assertEquals(formatDuration(0.44), "0.4s");
  assertEquals(formatDuration(59), "59s");
  assertEquals(formatDuration(61), "1m01s");
  assertEquals(formatDuration(3 * 3600 + 62), "3h01m02s");
  assertEquals(formatDuration(Infinity), "?");
});

Deno.test("progress: a rank counts the bytes of files in flight, each up to its size", async () => {
  const dir = await Deno.makeTempDir();
  const lines: string[] = [];
  const p = new ProgressRecorder(
    dir,
    { rank: 3, filesTotal: 2, bytesTotal: 1500, startedMs: 7 },
    (l) => lines.push(l),
  );
  await p.start(60_000);
  assertEquals((await readProgress(dir, 4))[0], {
    rank: 3,
    filesTotal: 2,
    bytesTotal: 1500,
    filesDone: 0,
    bytesDone: 0,
    failed: 0,
    startedMs: 7,
  });
  const big = p.begin(1000);
  const small = p.begin(500);
  big.add(300);
  assertEquals([p.snapshot().filesDone, p.snapshot().bytesDone], [0, 300]);
  big.add(900); // a retry copies again: still at most the file's size
  small.add(200);
  assertEquals(p.snapshot().bytesDone, 1200);
  small.end(true);
  assertEquals([p.snapshot().filesDone, p.snapshot().bytesDone, p.snapshot().failed], [1, 1500, 1]);
  big.end(false);
  await p.stop();
  const last = (await readProgress(dir, 4))[0];
  assertEquals([last.filesDone, last.bytesDone, last.failed], [2, 1500, 1]);
  assertEquals(lines, []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("progress: a line redrawn in place only for one process on a terminal", () => {
  assertEquals(progressStyle({}, true), "live");
  assertEquals(progressStyle({}, false), "lines");
  for (
    const env of [
      { OMPI_COMM_WORLD_SIZE: "2", OMPI_COMM_WORLD_RANK: "0" },
      { PMI_RANK: "0", PMI_SIZE: "2" },
      { SLURM_STEP_ID: "0", SLURM_STEP_NUM_TASKS: "4" },
      { PMIX_RANK: "0" },
    ]
  ) {
    assertEquals(progressStyle(env, true), "lines", JSON.stringify(env));
  }
});

/** A tree of one partition: a 3 MB successes file and a small errors file, scheduled. */
async function onePartition(): Promise<{ configPath: string; dir: string }> {
  const ws = await makeWorkspace({
    transfer: { progress_interval_seconds: 1, files_in_flight: 2 },
  });
  await addPartition(ws, "srv", 0, { successes: 3_000_000 });
  for (const phase of ["filter", "schedule"]) {
    const r = await runScript(`phases/${phase}.ts`, ["--config", ws.configPath]);
    assertEquals(r.code, 0, r.stderr);
  }
  return { configPath: ws.configPath, dir: ws.dir };
}

/**
 * Runs the driver (alone or under `impl`'s launcher, under a pseudo-terminal with `tty`) with
 * the successes file paused in flight; once the output shows a progress line that counts all
 * the bytes with one file of two done, lets it go. Returns the whole output.
 */
async function watchProgress(impl: MpiImpl | null, tty: boolean): Promise<string> {
  const { configPath, dir } = await onePartition();
  const gate = await makeGate();
  const deno = [Deno.execPath(), "run", "-A", join(REPO, RUN_DRIVER), "--config", configPath];
  const argv = [...deno, "--gate", gate, "--pause-in-copy", "successes.parquet"];
  const command = impl === null ? argv : launcherArgs(impl, 2, argv);
  const [cmd, ...args] = tty
    ? ["script", "-qfec", command.map(shellQuote).join(" "), "/dev/null"]
    : command;
  const child = new Deno.Command(cmd, {
    args,
    env: cleanEnv(),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const decoder = new TextDecoder();
  const reading = (async () => {
    for await (const chunk of child.stdout) out += decoder.decode(chunk, { stream: true });
  })();
  const stderr = new Response(child.stderr).text();
  // All the bytes counted while one of the two files is still in flight.
  const counted = /progress: 1\/2 files, (\d+\.\d+ \w+)\/\1,/;
  const until = Date.now() + 60_000;
  while (!counted.test(out) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  const seen = counted.test(out);
  await openGate(gate);
  const status = await child.status;
  await reading;
  const errors = await stderr;
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(gate, { recursive: true });
  assert(seen, `a progress line counted the file in flight:\n${out}\n${errors}`);
  assertEquals(status.code, 0, out + errors);
  assertMatch(out, /run: 2 files copied and verified/);
  return out;
}

Deno.test("progress: one process on a terminal redraws one line in place", async () => {
  const out = await watchProgress(null, true);
  assert(out.includes("\r\x1b[Kprogress: 1/2 files"), JSON.stringify(out));
});

Deno.test("progress: one process with its output in a file prints plain lines", async () => {
  const out = await watchProgress(null, false);
  assert(!out.includes("\x1b"), `no terminal escape in the file:\n${JSON.stringify(out)}`);
  assertMatch(out, /^progress: 1\/2 files, .*\(1 ranks reporting\)$/m);
});

for (const impl of ["mpich", "openmpi"] as const) {
  for (const tty of [false, true]) {
    const where = tty ? "a terminal" : "a file";
    Deno.test(`progress: mpirun.${impl} with its output in ${where} prints plain lines, no escapes`, async () => {
      const out = await watchProgress(impl, tty);
      assert(!out.includes("\x1b"), `no terminal escape:\n${JSON.stringify(out)}`);
      assertMatch(out, /^progress: 1\/2 files, .*\(2 ranks reporting\)\r?$/m);
    });
  }
}
