/**
 * The run phase under the real launchers of both MPI implementations: files arrive
 * byte-identical, logged hashes match an independent md5sum, re-runs copy nothing, corruption
 * is caught and never published, per-file faults leave the other files going through.
 * @module
 */

import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { join } from "node:path";
import { readSchedule, readVerificationLogs, temporaryPath } from "../mod.ts";
import type { ScheduleRow } from "../mod.ts";
import { addPartition, datasetFiles, makeWorkspace, runScript } from "./support/fixture.ts";
import type { Workspace, WorkspaceOptions } from "./support/fixture.ts";
import { readRowsWithHyparquet } from "./support/parquet_readers.ts";
import { cleanEnv, MPI_IMPLS, mpirun } from "./support/mpi_launch.ts";
import { makeGate, spawnDriver, waitPaused } from "./support/run_gate.ts";
import { rankLogText, runWithFault } from "./support/run_faults.ts";
import { lstatOrNull } from "../core/io/lstat_or_null.ts";

async function md5sum(path: string): Promise<string> {
  const out = await new Deno.Command("md5sum", { args: [path], stdout: "piped" }).output();
  assert(out.success, `md5sum ${path}`);
  return new TextDecoder().decode(out.stdout).split(" ")[0];
}

async function planned(options: WorkspaceOptions, partitions: number, size = 20_000) {
  const ws = await makeWorkspace(options);
  for (let p = 0; p < partitions; p++) {
    await addPartition(ws, ["img.org%3A8080", "cdn.net:443", "plain"][p % 3], p, {
      successes: size + p * 997,
      errors: 300 + p,
    });
  }
  const f = await runScript("phases/filter.ts", ["--config", ws.configPath]);
  assertEquals(f.code, 0, f.stderr);
  const s = await runScript("phases/schedule.ts", ["--config", ws.configPath]);
  assertEquals(s.code, 0, s.stderr);
  return { ws, rows: await readSchedule(join(ws.tool, "schedule.csv")) };
}

async function assertAllPublished(ws: Workspace, rows: ScheduleRow[]) {
  const files = datasetFiles(ws);
  assertEquals(
    files,
    rows.map((r) => r.dstPath).sort(),
    "exactly the scheduled files, no temporaries",
  );
  const state = await readVerificationLogs(join(ws.tool, "verification"));
  for (const row of rows) {
    const src = await Deno.readFile(row.srcPath);
    const dst = await Deno.readFile(row.dstPath);
    assertEquals(dst, src, `${row.dstPath} is byte-identical`);
    const rec = state.byDst.get(row.dstPath);
    assert(rec, `a record for ${row.dstPath}`);
    assertEquals(rec.status, "verified");
    const md5 = await md5sum(row.srcPath);
    assertEquals(rec.hashsumSrc, md5);
    assertEquals(rec.hashsumDst, await md5sum(row.dstPath));
    assertEquals(rec.sizeBytes, src.length);
  }
}

for (const impl of MPI_IMPLS) {
  for (const n of [2, 3]) {
    Deno.test(`run: ${impl} with ${n} ranks copies every file verified; a re-run copies nothing`, async () => {
      const { ws, rows } = await planned({ workersPerNode: n }, 9);
      const r = await mpirun(impl, n, "phases/run.ts", ["--config", ws.configPath]);
      assertEquals(r.code, 0, r.stdout + r.stderr);
      assertMatch(
        r.stdout,
        new RegExp(`run: ${n} rank\\(s\\), MPI ${impl === "mpich" ? "MPICH" : "Open MPI"}`),
      );
      assertMatch(
        r.stdout,
        /run: 18 files copied and verified, 0 found already published, 0 verified before, 0 failed, 0 left/,
      );
      assertMatch(r.stdout, /2\.00 reads per byte/);
      await assertAllPublished(ws, rows);
      const summary = JSON.parse(await Deno.readTextFile(join(ws.tool, "run_summary.json")));
      assertEquals(summary.size, n);
      assertEquals(summary.done, 18);
      const logs = [...Deno.readDirSync(join(ws.tool, "logs"))].map((e) => e.name);
      for (let rank = 0; rank < n; rank++) {
        assert(logs.some((l) => l.startsWith(`run_rank${rank}_`)), `rank ${rank} wrote a log`);
      }
      const again = await mpirun(impl, n, "phases/run.ts", ["--config", ws.configPath]);
      assertEquals(again.code, 0, again.stderr);
      assertMatch(
        again.stdout,
        /run: 0 files copied and verified, 0 found already published, 18 verified before, 0 failed, 0 left/,
      );
      await assertAllPublished(ws, rows);
      await Deno.remove(ws.dir, { recursive: true });
    });
  }
}

Deno.test("run: verify_mode bytes runs as md5, says so once, and records md5", async () => {
  const { ws, rows } = await planned({ transfer: { verify_mode: "bytes" } }, 4);
  const r = await mpirun("mpich", 2, "phases/run.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stdout, /verify md5/);
  assertEquals(
    r.stderr.match(/warning: .*data_transfer\.verify_mode: bytes now does the same as md5/g)
      ?.length,
    1,
    r.stderr,
  );
  assertMatch(r.stdout, /2\.00 reads per byte/);
  await assertAllPublished(ws, rows);
  const state = await readVerificationLogs(join(ws.tool, "verification"));
  for (const rec of state.byDst.values()) assertEquals(rec.verifyMode, "md5");
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("run: a corrupted copy is caught and retried; one corrupted every time is never published", async () => {
  const { ws, rows } = await planned({ transfer: { retries: 2 } }, 6);
  const r = await runWithFault("openmpi", ws, "--corrupt", "partition_id=1/successes:1");
  assertEquals(r.code, 0, r.stderr);
  await assertAllPublished(ws, rows);
  assertMatch(
    rankLogText(ws),
    /attempt 1 of .*: bytes differ at offset \d+ \(source 0x[0-9a-f]{2}, copy on storage 0x/,
  );

  const bad = rows.find((x) => x.srcPath.includes("partition_id=2/successes"))!;
  const { ws: ws2, rows: rows2 } = await planned({ transfer: { retries: 2 } }, 6);
  const bad2 = rows2.find((x) => x.srcPath.includes("partition_id=2/successes"))!;
  const r2 = await runWithFault("mpich", ws2, "--corrupt", "partition_id=2/successes");
  assertEquals(r2.code, 3, r2.stdout + r2.stderr);
  assertMatch(
    r2.stderr,
    /failed: .*partition_id=2\/successes\.parquet -> .*: verification failed after 3 attempt\(s\)/,
  );
  assertMatch(r2.stdout, /11 files copied and verified, .* 1 failed/);
  const files = datasetFiles(ws2);
  assertEquals(files.length, 11, "the corrupted file is not published and no temporary is left");
  assert(!files.includes(bad2.dstPath));
  // A clean re-run copies only the failed file.
  const r3 = await mpirun("mpich", 2, "phases/run.ts", ["--config", ws2.configPath]);
  assertEquals(r3.code, 0, r3.stderr);
  assertMatch(
    r3.stdout,
    /1 files copied and verified, 0 found already published, 11 verified before/,
  );
  await assertAllPublished(ws2, rows2);
  assert(bad.dstPath !== bad2.dstPath);
  await Deno.remove(ws.dir, { recursive: true });
  await Deno.remove(ws2.dir, { recursive: true });
});

Deno.test("run: a copy cut short on storage is caught and retried; cut every time, it is never published", async () => {
  const { ws, rows } = await planned({ transfer: { retries: 1 } }, 4);
  const r = await runWithFault("mpich", ws, "--truncate", "partition_id=1/successes:1");
  assertEquals(r.code, 0, r.stderr);
  await assertAllPublished(ws, rows);
  assertMatch(rankLogText(ws), /attempt 1 of .*: the copy on storage ends at offset \d+/);

  const again = await planned({ transfer: { retries: 1 } }, 4);
  const cut = again.rows.find((x) => x.srcPath.includes("partition_id=2/successes"))!;
  const r2 = await runWithFault("openmpi", again.ws, "--truncate", "partition_id=2/successes");
  assertEquals(r2.code, 3, r2.stdout + r2.stderr);
  assertMatch(
    r2.stderr,
    /failed: .*partition_id=2\/successes\.parquet -> .*: verification failed after 2 attempt\(s\): the copy on storage ends at offset/,
  );
  const files = datasetFiles(again.ws);
  assertEquals(files.length, again.rows.length - 1, "not published, no temporary left");
  assert(!files.includes(cut.dstPath));
  await Deno.remove(ws.dir, { recursive: true });
  await Deno.remove(again.ws.dir, { recursive: true });
});

Deno.test("run: a vanished source and an existing different file fail clearly; the rest goes through", async () => {
  const { ws, rows } = await planned({}, 6);
  const gone = rows.find((x) => x.srcPath.includes("partition_id=3/errors"))!;
  await Deno.remove(gone.srcPath);
  const conflict = rows.find((x) => x.srcPath.includes("partition_id=4/successes"))!;
  await Deno.mkdir(join(conflict.dstPath, ".."), { recursive: true });
  await Deno.writeTextFile(conflict.dstPath, "someone else's file");
  const same = rows.find((x) => x.srcPath.includes("partition_id=5/successes"))!;
  await Deno.mkdir(join(same.dstPath, ".."), { recursive: true });
  await Deno.copyFile(same.srcPath, same.dstPath);
  const r = await mpirun("mpich", 2, "phases/run.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 3, r.stdout + r.stderr);
  assertMatch(
    r.stderr,
    /partition_id=3\/errors\.parquet -> .*: source .* is gone \(ENOENT: no such file\)/,
  );
  assertMatch(r.stderr, /conflict: .* already exists with md5 .*; not overwritten/);
  assertMatch(
    r.stdout,
    /9 files copied and verified, 1 found already published, 0 verified before, 2 failed/,
  );
  assertEquals(
    await Deno.readTextFile(conflict.dstPath),
    "someone else's file",
    "never overwritten",
  );
  await Deno.remove(ws.dir, { recursive: true });
});

async function mountTmpfs(dir: string, size: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const out = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir],
    stderr: "piped",
  }).output();
  assert(
    out.success,
    `mount tmpfs on ${dir} (tests run as root): ${new TextDecoder().decode(out.stderr)}`,
  );
}

async function umount(dir: string): Promise<void> {
  await new Deno.Command("umount", { args: [dir] }).output();
}

Deno.test("run: a full and a read-only destination fail with the system's reason; the rest goes through", async () => {
  const { ws, rows } = await planned({}, 6, 200_000);
  // Errors go to a read-only file system, successes to one too small for all of them.
  await mountTmpfs(ws.dstErrors, "1m");
  await new Deno.Command("mount", { args: ["-o", "remount,ro", ws.dstErrors] }).output();
  await mountTmpfs(ws.dstImages, "600k");
  try {
    const r = await mpirun("openmpi", 2, "phases/run.ts", ["--config", ws.configPath]);
    assertEquals(r.code, 3, r.stdout + r.stderr);
    assertMatch(r.stderr, /EROFS|Read-only file system/);
    assertMatch(r.stderr, /ENOSPC|No space left/);
    const published = datasetFiles(ws);
    assert(published.length >= 1, "some successes went through");
    for (const p of published) {
      assert(!p.split("/").pop()!.startsWith("."), `no temporary left: ${p}`);
      const row = rows.find((x) => x.dstPath === p)!;
      assertEquals(await Deno.readFile(p), await Deno.readFile(row.srcPath));
    }
    // Once there is room and the file system is writable again, a re-run completes.
    await new Deno.Command("mount", { args: ["-o", "remount,rw", ws.dstErrors] }).output();
    await new Deno.Command("mount", { args: ["-o", "remount,size=16m", ws.dstImages] }).output();
    const again = await mpirun("mpich", 2, "phases/run.ts", ["--config", ws.configPath]);
    assertEquals(again.code, 0, again.stderr);
    await assertAllPublished(ws, rows);
  } finally {
    await umount(ws.dstImages);
    await umount(ws.dstErrors);
  }
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("run: a rank killed with SIGKILL in the middle of a copy, then a re-run, ends with every file once, verified", async () => {
  for (const impl of MPI_IMPLS) {
    const { ws, rows } = await planned(
      { transfer: { buffer_size: 65536, files_in_flight: 1, steal: false } },
      12,
      1_500_000,
    );
    // Rank 1 pauses inside the copy of its second file (the run re-balances the schedule with
    // its own algorithm, so the schedule's rank column says which files are rank 1's): the
    // copy is on storage, not verified, not published, when the rank is killed. No stealing,
    // so that no other rank can take that file first (tests/steal_test.ts kills a rank while
    // it copies a file it took over).
    const victimRow = rows.filter((r) => r.rank === 1)
      .sort((a, b) => b.sizeBytes - a.sizeBytes || (a.srcPath < b.srcPath ? -1 : 1))[1];
    const gate = await makeGate();
    const job = spawnDriver(impl, 2, [
      "--config",
      ws.configPath,
      "--gate",
      gate,
      "--pause-in-copy",
      victimRow.srcPath,
    ]);
    const pids = await waitPaused(gate, [1], job.running);
    const temporaries = datasetFiles(ws).filter((p) => p.endsWith(".dt-tmp"));
    assert(temporaries.length >= 1, "the paused copy is a temporary on storage");
    Deno.kill(pids.get(1)!, "SIGKILL");
    assert(!(await job.status).success, "the job fails when a rank is killed");
    const state = await readVerificationLogs(join(ws.tool, "verification"));
    assert(!state.byDst.has(victimRow.dstPath), "the file in flight was not recorded");
    assert(!datasetFiles(ws).includes(victimRow.dstPath), "nor published");
    const again = await mpirun(impl, 2, "phases/run.ts", ["--config", ws.configPath]);
    assertEquals(again.code, 0, again.stdout + again.stderr);
    await assertAllPublished(ws, rows);
    await Deno.remove(ws.dir, { recursive: true });
    await Deno.remove(gate, { recursive: true });
  }
});

Deno.test("run: the time budget stops the run with exit 4; the next job finishes the work", async () => {
  const { ws, rows } = await planned({ transfer: { time_margin_seconds: 60 } }, 6);
  // Less time left than the margin: stops before taking any file.
  const r = await mpirun("mpich", 2, "phases/run.ts", [
    "--config",
    ws.configPath,
    "--time-limit",
    "30s",
  ]);
  assertEquals(r.code, 4, r.stdout + r.stderr);
  assertMatch(
    r.stderr,
    /time budget: less than 60s left \(--time-limit 30s\); stopping: the files not started are left/,
  );
  assertMatch(r.stdout, /0 files copied and verified, .* 12 left/);
  assertEquals(datasetFiles(ws), []);
  // SLURM_JOB_END_TIME (set by Slurm 23.02 and later) is honoured the same way.
  const end = String(Math.floor(Date.now() / 1000) + 30);
  const r2 = await mpirun("openmpi", 2, "phases/run.ts", ["--config", ws.configPath], {
    env: { SLURM_JOB_END_TIME: end },
  });
  assertEquals(r2.code, 4, r2.stdout + r2.stderr);
  assertMatch(r2.stderr, /\(SLURM_JOB_END_TIME\)/);
  const r3 = await mpirun("mpich", 2, "phases/run.ts", [
    "--config",
    ws.configPath,
    "--time-limit",
    "1:00:00",
  ]);
  assertEquals(r3.code, 0, r3.stderr);
  await assertAllPublished(ws, rows);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("run: --dry-run lists this rank's files and copies nothing", async () => {
  const { ws, rows } = await planned({}, 3);
  const r = await runScript("phases/run.ts", ["--config", ws.configPath, "--dry-run"], {
    env: cleanEnv(),
  });
  assertEquals(r.code, 0, r.stderr);
  for (const row of rows) assert(r.stderr.includes(`would copy ${row.srcPath} -> ${row.dstPath}`));
  assertEquals(datasetFiles(ws), []);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("run: a world larger than the schedule's re-balances and still copies everything once", async () => {
  const { ws, rows } = await planned({ workersPerNode: 2 }, 7);
  const r = await mpirun("openmpi", 3, "phases/run.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 0, r.stderr);
  const summary = JSON.parse(await Deno.readTextFile(join(ws.tool, "run_summary.json")));
  assertEquals(summary.ranks.map((x: { assigned: number }) => x.assigned > 0), [true, true, true]);
  await assertAllPublished(ws, rows);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("run: a schedule edited to write outside the dataset folders is refused, nothing written", async () => {
  const { ws } = await planned({}, 2);
  const path = join(ws.tool, "schedule.csv");
  const text = await Deno.readTextFile(path);
  await Deno.writeTextFile(
    path,
    text.replace(/\/dataset\/images\/server=[^/]+\//, "/dataset/images/../../evil/"),
  );
  const r = await runScript("phases/run.ts", ["--config", ws.configPath], { env: cleanEnv() });
  assertEquals(r.code, 2, r.stderr);
  assertMatch(
    r.stderr,
    /schedule\.csv row \d+: dst_path .* is not of the form .*\/server=<name>\/data_<id>\.parquet: refused/,
  );
  assertEquals(datasetFiles(ws), []);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("run: leftover temporaries of dead writers are removed, those of live writers kept", async () => {
  const { ws, rows } = await planned({}, 2);
  const row = rows[0];
  await Deno.mkdir(join(row.dstPath, ".."), { recursive: true });
  const dead = temporaryPath(row.dstPath, `none@${Deno.hostname()}@999999999`);
  const live = temporaryPath(rows[1].dstPath, `none@${Deno.hostname()}@${Deno.pid}`);
  const foreign = join(row.dstPath, "..", ".someone-elses-file");
  for (const p of [dead, foreign]) await Deno.writeTextFile(p, "partial");
  await Deno.mkdir(join(live, ".."), { recursive: true });
  await Deno.writeTextFile(live, "partial");
  const r = await runScript("phases/run.ts", ["--config", ws.configPath], { env: cleanEnv() });
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stderr, /kept temporary .*: its writer may still be running/);
  assertEquals(await lstatOrNull(dead), null, "dead writer's temporary removed");
  assert(await lstatOrNull(live), "live writer's temporary kept");
  assert(await lstatOrNull(foreign), "files of others never touched");
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("run: invalid parquet is refused unless allowed; row counts are recorded", async () => {
  for (const allow of [false, true]) {
    const ws = await makeWorkspace({ transfer: { allow_invalid_parquet: allow } });
    const good = await addPartition(ws, "srv", 0, { successes: 30_000 });
    const bad = await addPartition(ws, "srv", 1);
    const full = await Deno.readFile(join(bad, "successes.parquet"));
    await Deno.writeFile(join(bad, "successes.parquet"), full.subarray(0, full.length - 100));
    await Deno.writeFile(join(bad, "errors.parquet"), new Uint8Array());
    await runScript("phases/filter.ts", ["--config", ws.configPath]);
    await runScript("phases/schedule.ts", ["--config", ws.configPath]);
    const r = await mpirun("mpich", 2, "phases/run.ts", ["--config", ws.configPath]);
    const state = await readVerificationLogs(join(ws.tool, "verification"));
    const recs = [...state.byDst.values()];
    const goodRec = recs.find((x) => x.srcPath === join(good, "successes.parquet"))!;
    const rows = await readRowsWithHyparquet(join(good, "successes.parquet"), ["uuid"]);
    assertEquals(goodRec.numRows, rows.length, "row count of an independent reader");
    assertMatch(goodRec.schemaFingerprint, /^[0-9a-f]{64}$/);
    const other = recs.find((x) => x.srcPath === join(good, "errors.parquet"))!;
    assert(other.schemaFingerprint !== goodRec.schemaFingerprint, "errors have another schema");
    if (!allow) {
      assertEquals(r.code, 3, r.stdout + r.stderr);
      assertMatch(
        r.stderr,
        /partition_id=1\/successes\.parquet: not a valid parquet file: missing PAR1 magic at end/,
      );
      assertMatch(
        r.stderr,
        /partition_id=1\/errors\.parquet: not a valid parquet file: too small \(0 bytes/,
      );
      assertMatch(r.stderr, /not transferred \(data_transfer\.allow_invalid_parquet: true copies/);
      assertEquals(datasetFiles(ws).length, 2);
    } else {
      assertEquals(r.code, 0, r.stdout + r.stderr);
      assertEquals(datasetFiles(ws).length, 4);
      const truncated = recs.find((x) => x.srcPath === join(bad, "successes.parquet"))!;
      assertEquals(truncated.numRows, -1);
      assertEquals(truncated.status, "verified");
    }
    await Deno.remove(ws.dir, { recursive: true });
  }
});

Deno.test("run: the WebAssembly SIMD engine with many files in flight gives md5sum's hashes", async () => {
  const { ws, rows } = await planned(
    { transfer: { md5_engine: "wasm-simd", files_in_flight: 8, buffer_size: "256KiB" } },
    12,
    300_000,
  );
  const r = await mpirun("openmpi", 2, "phases/run.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assertMatch(r.stdout, /md5 engine wasm-simd/);
  await assertAllPublished(ws, rows);
  await Deno.remove(ws.dir, { recursive: true });
});
