/**
 * The verify phase on real runs under both MPI implementations: a complete run verifies,
 * sets `completed`, writes a manifest DuckDB reads and `_MD5SUMS` lists `md5sum -c` accepts;
 * the dataset reads as a hive-partitioned dataset; `--deep` under mpirun finds deleted,
 * truncated, altered and stray files; work left and failures give their exit codes.
 * @module
 */

import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { join } from "node:path";
import {
  formatMd5Sums,
  MANIFEST_COLUMNS,
  md5sumLine,
  readCheckpoint,
  readSchedule,
  readVerificationLogs,
  writeManifest,
} from "../mod.ts";
import type { ScheduleRow } from "../mod.ts";
import { addPartition, makeWorkspace, runScript } from "./support/fixture.ts";
import type { Workspace, WorkspaceOptions } from "./support/fixture.ts";
import { describeWithDuckdb, queryDuckdb, sqlString } from "./support/parquet_readers.ts";
import { mpirun } from "./support/mpi_launch.ts";
import { runWithFault } from "./support/run_faults.ts";
import type { MpiImpl } from "./support/mpi_launch.ts";

const SERVERS = ["img.org%3A8080", "cdn.net:443", "plain"];

async function addPartitions(ws: Workspace, from: number, to: number): Promise<void> {
  for (let p = from; p < to; p++) {
    await addPartition(ws, SERVERS[p % 3], p, { successes: 20_000 + p * 997, errors: 300 + p });
  }
}

async function filterAndSchedule(ws: Workspace): Promise<ScheduleRow[]> {
  const f = await runScript("phases/filter.ts", ["--config", ws.configPath]);
  assertEquals(f.code, 0, f.stderr);
  const s = await runScript("phases/schedule.ts", ["--config", ws.configPath]);
  assertEquals(s.code, 0, s.stderr);
  return await readSchedule(join(ws.tool, "schedule.csv"));
}

async function completeRun(impl: MpiImpl, options: WorkspaceOptions, partitions: number) {
  const ws = await makeWorkspace(options);
  await addPartitions(ws, 0, partitions);
  const rows = await filterAndSchedule(ws);
  const r = await mpirun(impl, 2, "phases/run.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
  return { ws, rows };
}

function verify(ws: Workspace, extra: string[] = []) {
  return runScript("phases/verify.ts", ["--config", ws.configPath, ...extra]);
}

async function md5sumCheck(folder: string): Promise<{ code: number; out: string }> {
  const out = await new Deno.Command("md5sum", {
    args: ["-c", "_MD5SUMS"],
    cwd: folder,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/** Every entry under `dir` (relative paths), folders excluded. */
function filesUnder(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const rel = prefix + e.name;
    if (e.isDirectory) out.push(...filesUnder(join(dir, e.name), rel + "/"));
    else out.push(rel);
  }
  return out.sort();
}

Deno.test("verify: after a complete run (mpich, 2 ranks) passes, sets completed, writes manifest and _MD5SUMS", async () => {
  const { ws, rows } = await completeRun("mpich", {}, 6);
  const r = await verify(ws);
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assertMatch(
    r.stdout,
    /verify: 12 \(.*\) scheduled, 12 \(.*\) verified, 0 \(0 B\) failed, 0 \(0 B\) left/,
  );
  assertMatch(r.stdout, /verify: complete; checkpoint says completed: true/);
  assertEquals((await readCheckpoint(join(ws.tool, "tool_checkpoint.yaml"))).completed, true);

  // _MD5SUMS: sorted, relative, accepted by coreutils md5sum -c; nothing else was written.
  for (const [root, kind] of [[ws.dstImages, "successes"], [ws.dstErrors, "errors"]] as const) {
    const mine = rows.filter((x) => x.kind === kind).map((x) => x.dstPath.slice(root.length + 1));
    assertEquals(filesUnder(root), ["_MD5SUMS", ...mine].sort());
    const text = await Deno.readTextFile(join(root, "_MD5SUMS"));
    const names = text.trimEnd().split("\n").map((l) => l.split("  ")[1]);
    assertEquals(names, mine.slice().sort());
    for (const n of names) {
      assertMatch(n, /^server=[A-Za-z0-9._-]+\/(data|errors)_[0-9a-f-]+\.parquet$/);
    }
    const check = await md5sumCheck(root);
    assertEquals(check.code, 0, check.out);
    assertEquals(check.out.match(/: OK$/gm)?.length, mine.length, check.out);
  }

  // The manifest: one row per published file, md5 equal to the logs, read by DuckDB.
  const manifest = join(ws.tool, "manifest.parquet");
  const columns = await describeWithDuckdb(manifest);
  assertEquals(columns.map(([n]) => n), [...MANIFEST_COLUMNS]);
  assertEquals(Object.fromEntries(columns)["size_bytes"], "BIGINT");
  const logs = await readVerificationLogs(join(ws.tool, "verification"));
  const got = await queryDuckdb(
    `SELECT server, kind, src_path, dst_path, size_bytes, md5, num_rows ` +
      `FROM read_parquet(${sqlString(manifest)}) ORDER BY dst_path`,
  );
  assertEquals(got.length, rows.length);
  for (const row of got) {
    const rec = logs.byDst.get(String(row.dst_path));
    assert(rec, `a log record for ${row.dst_path}`);
    assertEquals(row.md5, rec.hashsumDst);
    assertEquals(Number(row.size_bytes), rec.sizeBytes);
    assertEquals(Number(row.num_rows), rec.numRows);
    assertEquals(row.src_path, rec.srcPath);
    const planned = rows.find((x) => x.dstPath === row.dst_path)!;
    assertEquals(row.kind, planned.kind);
    assertEquals(`server=${row.server}`, planned.dstPath.split("/").at(-2));
  }

  // The dataset reads as hive-partitioned parquet with every source row.
  for (const [root, file] of [[ws.dstImages, "successes"], [ws.dstErrors, "errors"]] as const) {
    const src = await queryDuckdb(
      `SELECT count(*) AS n FROM read_parquet(${sqlString(`${ws.images}/*/*/${file}.parquet`)})`,
    );
    const dst = await queryDuckdb(
      `SELECT count(*) AS n, count(DISTINCT server) AS servers FROM ` +
        `read_parquet(${sqlString(`${root}/*/*.parquet`)}, hive_partitioning = true)`,
    );
    assertEquals(Number(dst[0].n), Number(src[0].n));
    assert(Number(dst[0].n) > 0);
    assertEquals(Number(dst[0].servers), 3);
    const described = await describeWithDuckdb(`${root}/*/*.parquet`, { hive: true });
    assert(described.some(([n]) => n === "server"), JSON.stringify(described));
  }

  // A second verify rewrites the same files, byte for byte.
  const before = await Deno.readFile(join(ws.dstImages, "_MD5SUMS"));
  const again = await verify(ws);
  assertEquals(again.code, 0, again.stderr);
  assertEquals(await Deno.readFile(join(ws.dstImages, "_MD5SUMS")), before);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("verify --deep (open mpi, 2 ranks) passes on a clean dataset, then names every difference", async () => {
  const { ws, rows } = await completeRun("openmpi", {}, 6);
  const clean = await mpirun("openmpi", 2, "phases/verify.ts", [
    "--config",
    ws.configPath,
    "--deep",
  ]);
  assertEquals(clean.code, 0, clean.stdout + clean.stderr);
  assertMatch(
    clean.stdout,
    /verify --deep: 2 rank\(s\) re-read 12 files .*: 0 problem\(s\), 0 temporaries/,
  );
  assertMatch(clean.stdout, /complete; checkpoint says completed: true/);

  const successes = rows.filter((r) => r.kind === "successes");
  const [deleted, truncated, altered] = successes;
  await Deno.remove(deleted.dstPath);
  const t = await Deno.readFile(truncated.dstPath);
  await Deno.writeFile(truncated.dstPath, t.subarray(0, t.length - 100));
  const a = await Deno.readFile(altered.dstPath);
  a[Math.floor(a.length / 2)] ^= 0xff;
  await Deno.writeFile(altered.dstPath, a);
  const folder = join(altered.dstPath, "..");
  const stray = join(folder, "data_00000000-stray.parquet");
  await Deno.writeTextFile(stray, "not ours");
  const temporary = join(folder, ".data_x.parquet.none@host@1.dt-tmp");
  await Deno.writeTextFile(temporary, "half");

  const r = await mpirun("openmpi", 2, "phases/verify.ts", ["--config", ws.configPath, "--deep"]);
  const out = r.stdout + r.stderr;
  assertEquals(r.code, 3, out);
  assertMatch(out, new RegExp(`missing: ${deleted.dstPath}: logged as verified`));
  assertMatch(out, new RegExp(`size: ${truncated.dstPath}: truncated: \\d+ bytes, \\d+ logged`));
  assertMatch(
    out,
    new RegExp(`altered: ${altered.dstPath}: md5 [0-9a-f]{32}, [0-9a-f]{32} logged`),
  );
  assertMatch(out, new RegExp(`stray: ${stray}: a file that no verification log explains`));
  assertMatch(out, new RegExp(`note: temporary ${temporary.replaceAll(".", "\\.")}`));
  assertMatch(out, /4 problem\(s\), 1 temporary/);
  assertEquals(out.match(/^(missing|size|altered|stray|not-a-file|unreadable): /gm)?.length, 4);
  assertEquals((await readCheckpoint(join(ws.tool, "tool_checkpoint.yaml"))).completed, false);

  // The same under mpich, and the _MD5SUMS list catches them too.
  const m = await mpirun("mpich", 2, "phases/verify.ts", ["--config", ws.configPath, "--deep"]);
  assertEquals(m.code, 3, m.stdout + m.stderr);
  assertMatch(m.stdout + m.stderr, /4 problem\(s\)/);
  assertEquals((await md5sumCheck(ws.dstImages)).code, 1);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("verify: work left exits 5 without completed; failures with nothing left exit 3", async () => {
  const { ws } = await completeRun("mpich", { transfer: { retries: 0 } }, 3);
  const ok = await verify(ws);
  assertEquals(ok.code, 0, ok.stderr);
  const checkpoint = join(ws.tool, "tool_checkpoint.yaml");
  assertEquals((await readCheckpoint(checkpoint)).completed, true);

  // New partitions found by the filter but not scheduled yet: left, not completed.
  await addPartitions(ws, 3, 5);
  const f = await runScript("phases/filter.ts", ["--config", ws.configPath]);
  assertEquals(f.code, 0, f.stderr);
  const unscheduled = await verify(ws);
  assertEquals(unscheduled.code, 5, unscheduled.stdout + unscheduled.stderr);
  assertMatch(unscheduled.stdout, /0 \(0 B\) left, 4 \(.*\) not scheduled/);
  assertMatch(unscheduled.stdout, /verify: 4 file\(s\) left: run 'deno task schedule'/);
  assertEquals((await readCheckpoint(checkpoint)).completed, false);

  // Scheduled, not run: left, each listed.
  const rows = await filterAndSchedule(ws);
  const left = await verify(ws);
  assertEquals(left.code, 5, left.stdout + left.stderr);
  assertMatch(left.stdout, /6 \(.*\) verified, 0 \(0 B\) failed, 4 \(.*\) left/);
  assertEquals(left.stdout.match(/^left: /gm)?.length, 4);
  assertEquals((await readCheckpoint(checkpoint)).completed, false);
  const manifestRows = await queryDuckdb(
    `SELECT count(*) AS n FROM read_parquet(${sqlString(join(ws.tool, "manifest.parquet"))})`,
  );
  assertEquals(Number(manifestRows[0].n), 6, "the manifest lists only verified files");
  assertEquals(
    (await Deno.readTextFile(join(ws.dstImages, "_MD5SUMS"))).trimEnd().split("\n").length,
    3,
  );

  // Run with one file corrupted on every attempt: it fails, nothing is left: exit 3.
  const bad = rows.find((r) => r.srcPath.includes("partition_id=4/successes"))!;
  const run = await runWithFault("mpich", ws, "--corrupt", "partition_id=4/successes");
  assertEquals(run.code, 3, run.stdout + run.stderr);
  const failed = await verify(ws);
  assertEquals(failed.code, 3, failed.stdout + failed.stderr);
  assertMatch(
    failed.stderr,
    new RegExp(`failed: ${bad.srcPath} -> ${bad.dstPath}: verification failed after 1 attempt`),
  );
  assertMatch(failed.stdout, /verify: 1 file\(s\) failed/);
  assertEquals((await readCheckpoint(checkpoint)).completed, false);

  // A clean re-run finishes it.
  const rerun = await mpirun("mpich", 2, "phases/run.ts", ["--config", ws.configPath]);
  assertEquals(rerun.code, 0, rerun.stdout + rerun.stderr);
  const done = await verify(ws);
  assertEquals(done.code, 0, done.stdout + done.stderr);
  assertEquals((await readCheckpoint(checkpoint)).completed, true);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("verify: without a schedule names the first step to run", async () => {
  const ws = await makeWorkspace();
  const r = await verify(ws);
  assertEquals(r.code, 2, r.stdout + r.stderr);
  assertMatch(r.stderr, /filtering is not completed; run 'deno task filter' first/);
  const f = await runScript("phases/filter.ts", ["--config", ws.configPath]);
  assertEquals(f.code, 0, f.stderr);
  const s = await verify(ws);
  assertEquals(s.code, 2, s.stdout + s.stderr);
  assertMatch(s.stderr, /no schedule yet; run 'deno task schedule' first/);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("manifest: non-ASCII paths, unknown row counts and sorting survive a DuckDB read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dt-manifest-" });
  const files = [
    ["/d/images/server=b/data_2.parquet", "/src/b/é/successes.parquet", 7],
    ["/d/images/server=a/data_1.parquet", "/src/a/successes.parquet", -1],
    ["/d/errors/server=a/errors_3.parquet", "/src/a/errors.parquet", 0],
  ].map(([dst, src, rows], i) => ({
    server: String(dst).split("/")[3].slice(7),
    kind: String(dst).includes("/errors/") ? "errors" as const : "successes" as const,
    srcPath: String(src),
    dstPath: String(dst),
    sizeBytes: 2 ** 40 + i,
    md5: String(i).repeat(32),
    numRows: Number(rows),
    verifiedAt: `2026-01-0${i + 1}T00:00:00.000Z`,
  }));
  const path = join(dir, "manifest.parquet");
  await writeManifest(path, files);
  const got = await queryDuckdb(
    `SELECT dst_path, src_path, size_bytes, num_rows, epoch_ms(verified_at) AS ms ` +
      `FROM read_parquet(${sqlString(path)})`,
  );
  assertEquals(got.map((r) => r.dst_path), files.map((f) => f.dstPath).sort());
  const byDst = new Map(got.map((r) => [r.dst_path, r]));
  for (const f of files) {
    const r = byDst.get(f.dstPath)!;
    assertEquals(r.src_path, f.srcPath);
    assertEquals(BigInt(r.size_bytes as bigint), BigInt(f.sizeBytes));
    assertEquals(r.num_rows === null ? -1 : Number(r.num_rows), f.numRows);
    assertEquals(Number(r.ms), Date.parse(f.verifiedAt));
  }
  assertEquals(
    formatMd5Sums("/d/images", files),
    `${"1".repeat(32)}  server=a/data_1.parquet\n${"0".repeat(32)}  server=b/data_2.parquet\n`,
  );
  assertEquals(md5sumLine("ab", "x\\y\nz"), "\\ab  x\\\\y\\nz\n");
  await Deno.remove(dir, { recursive: true });
});
