/**
 * Repair after damage, end to end under both MPI implementations: published files are
 * removed, truncated and altered; plain `verify` names what one stat each can see; `verify
 * --deep --repair` (2 ranks) records all three as no longer verified and moves the damaged
 * ones into the quarantine folder (across file systems when the dataset is on its own tmpfs);
 * the next run copies exactly those files again to their planned names, byte-identical and
 * readable by an independent parquet reader; `verify` then passes and `md5sum -c` agrees.
 * @module
 */

import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { join, relative } from "node:path";
import { readSchedule, readVerificationLogs } from "../mod.ts";
import type { ScheduleRow, StatusReport } from "../mod.ts";
import {
  addPartition,
  datasetFiles,
  listFiles,
  makeWorkspace,
  runScript,
} from "./support/fixture.ts";
import type { Workspace } from "./support/fixture.ts";
import { readRowsWithHyparquet } from "./support/parquet_readers.ts";
import { mpirun } from "./support/mpi_launch.ts";
import type { MpiImpl } from "./support/mpi_launch.ts";

const SERVERS = ["img.org%3A8080", "cdn.net:443", "plain"];

async function sh(cmd: string, args: string[], cwd?: string) {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

async function transferred(impl: MpiImpl, ownFileSystem: boolean) {
  const ws = await makeWorkspace();
  if (ownFileSystem) {
    await Deno.mkdir(ws.dstImages, { recursive: true });
    const m = await sh("mount", ["-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", ws.dstImages]);
    assertEquals(m.code, 0, `mount a tmpfs for the dataset (the tests run as root): ${m.out}`);
  }
  for (let p = 0; p < 6; p++) {
    await addPartition(ws, SERVERS[p % 3], p, { successes: 30_000 + p * 997, errors: 300 + p });
  }
  for (const phase of ["filter", "schedule"]) {
    const r = await runScript(`phases/${phase}.ts`, ["--config", ws.configPath]);
    assertEquals(r.code, 0, r.stderr);
  }
  const rows = await readSchedule(join(ws.tool, "schedule.csv"));
  const run = await mpirun(impl, 2, "phases/run.ts", ["--config", ws.configPath]);
  assertEquals(run.code, 0, run.stdout + run.stderr);
  const v = await verify(ws);
  assertEquals(v.code, 0, v.stdout + v.stderr);
  return { ws, rows };
}

function verify(ws: Workspace, ...extra: string[]) {
  return runScript("phases/verify.ts", ["--config", ws.configPath, ...extra]);
}

function deepRepair(impl: MpiImpl, ws: Workspace) {
  return mpirun(impl, 2, "phases/verify.ts", ["--config", ws.configPath, "--deep", "--repair"]);
}

async function status(ws: Workspace): Promise<StatusReport> {
  const r = await runScript("phases/status.ts", ["--config", ws.configPath, "--json"]);
  assertEquals(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** Every published file equals its source, and reads back with as many rows. */
async function assertCopiesOf(rows: readonly ScheduleRow[]): Promise<void> {
  for (const row of rows) {
    assertEquals(await Deno.readFile(row.dstPath), await Deno.readFile(row.srcPath), row.dstPath);
    const [src, dst] = [
      await readRowsWithHyparquet(row.srcPath, ["uuid"]),
      await readRowsWithHyparquet(row.dstPath, ["uuid"]),
    ];
    assert(dst.length > 0);
    assertEquals(dst, src, `${row.dstPath} reads back with the source's rows`);
  }
}

async function md5sumCheck(ws: Workspace): Promise<void> {
  for (const root of [ws.dstImages, ws.dstErrors]) {
    const r = await sh("md5sum", ["-c", "_MD5SUMS"], root);
    assertEquals(r.code, 0, r.out);
  }
}

for (const [impl, ownFileSystem] of [["mpich", false], ["openmpi", true]] as const) {
  const where = ownFileSystem ? "a dataset on its own file system" : "one file system";
  Deno.test(`repair (${impl}, 2 ranks, ${where}): removed, truncated and altered files are found, quarantined and copied again`, async () => {
    const { ws, rows } = await transferred(impl, ownFileSystem);
    try {
      const successes = rows.filter((r) => r.kind === "successes");
      const [removed, truncated, altered] = successes;
      await Deno.remove(removed.dstPath);
      const t = await Deno.readFile(truncated.dstPath);
      const truncatedBytes = t.subarray(0, t.length - 100);
      await Deno.writeFile(truncated.dstPath, truncatedBytes);
      const alteredBytes = await Deno.readFile(altered.dstPath);
      alteredBytes[Math.floor(alteredBytes.length / 2)] ^= 0xff;
      await Deno.writeFile(altered.dstPath, alteredBytes);

      // Plain verify: one stat per file sees the removed and the truncated one.
      const plain = await verify(ws);
      assertEquals(plain.code, 3, plain.stdout + plain.stderr);
      assertMatch(
        plain.stderr,
        new RegExp(`^missing: ${removed.dstPath}: logged as verified`, "m"),
      );
      assertMatch(plain.stderr, new RegExp(`^size: ${truncated.dstPath}: truncated: `, "m"));
      assertEquals(plain.stderr.trim().split("\n").length, 2, plain.stderr);
      assertMatch(
        plain.stdout,
        /2 published file\(s\) are not as their records say .*'deno task verify --deep --repair'/,
      );
      assert(!plain.stdout.includes("complete;"), plain.stdout);

      // The deep repair under MPI: all three recorded as no longer verified.
      const repair = await deepRepair(impl, ws);
      const out = repair.stdout + repair.stderr;
      assertEquals(repair.code, 5, out);
      assertMatch(out, /verify --deep: 2 rank\(s\) re-read 12 files .*: 3 problem\(s\)/);
      const quarantine = join(ws.tool, "quarantine");
      const moved = (row: ScheduleRow) => join(quarantine, relative(ws.dstImages, row.dstPath));
      assertMatch(
        out,
        new RegExp(`^repaired: ${removed.dstPath}: recorded as no longer verified$`, "m"),
      );
      for (const row of [truncated, altered]) {
        assertMatch(
          out,
          new RegExp(
            `^repaired: ${row.dstPath}: recorded as no longer verified; moved to ${moved(row)}$`,
            "m",
          ),
        );
      }
      assertMatch(repair.stdout, /verify: 3 file\(s\) left: run 'deno task run'/);
      assertEquals(await Deno.readFile(moved(truncated)), truncatedBytes, "kept as it was");
      assertEquals(await Deno.readFile(moved(altered)), alteredBytes, "kept as it was");
      assertEquals(listFiles(quarantine), [moved(altered), moved(truncated)].sort());
      const damaged = [removed, truncated, altered].map((r) => r.dstPath).sort();
      assertEquals(
        datasetFiles(ws),
        rows.map((r) => r.dstPath).filter((p) => !damaged.includes(p)).sort(),
      );
      const logs = await readVerificationLogs(join(ws.tool, "verification"));
      for (const p of damaged) assertEquals(logs.byDst.get(p)?.status, "invalidated", p);
      const s = await status(ws);
      assertEquals(s.left.files, 3);
      assertEquals(s.phases.completed, false);
      await md5sumCheck(ws); // the lists no longer name the files taken out

      // The next run copies exactly those three again, to the same names.
      const run = await mpirun(impl, 2, "phases/run.ts", ["--config", ws.configPath]);
      assertEquals(run.code, 0, run.stdout + run.stderr);
      assertMatch(
        run.stdout,
        /run: 3 files copied and verified, 0 found already published, 9 verified before/,
      );
      assertEquals(datasetFiles(ws), rows.map((r) => r.dstPath).sort());
      await assertCopiesOf(rows);
      const done = await verify(ws);
      assertEquals(done.code, 0, done.stdout + done.stderr);
      assertMatch(done.stdout, /verify: complete; checkpoint says completed: true/);
      await md5sumCheck(ws);
      for (const root of [ws.dstImages, ws.dstErrors]) {
        const lines = (await Deno.readTextFile(join(root, "_MD5SUMS"))).trimEnd().split("\n");
        assertEquals(lines.length, 6);
      }

      // Damaged again: the second quarantined copy never overwrites the first.
      const again = await Deno.readFile(altered.dstPath);
      again[7] ^= 0x0f;
      await Deno.writeFile(altered.dstPath, again);
      const second = await deepRepair(impl, ws);
      assertEquals(second.code, 5, second.stdout + second.stderr);
      const numbered = moved(altered).replace(/\.parquet$/, ".1.parquet");
      assertMatch(second.stdout, new RegExp(`moved to ${numbered}$`, "m"));
      assertEquals(await Deno.readFile(moved(altered)), alteredBytes, "the first one untouched");
      assertEquals(await Deno.readFile(numbered), again);
      const last = await mpirun(impl, 2, "phases/run.ts", ["--config", ws.configPath]);
      assertEquals(last.code, 0, last.stdout + last.stderr);
      assertMatch(last.stdout, /run: 1 files copied and verified/);
      await assertCopiesOf([altered]);
      assertEquals((await verify(ws)).code, 0);
    } finally {
      if (ownFileSystem) await sh("umount", [ws.dstImages]);
      await Deno.remove(ws.dir, { recursive: true });
    }
  });
}

Deno.test("repair: a missing file found by plain verify is repaired by --deep --repair as one process; strays are reported, never moved", async () => {
  const { ws, rows } = await transferred("mpich", false);
  const gone = rows.find((r) => r.kind === "errors")!;
  await Deno.remove(gone.dstPath);
  const stray = join(gone.dstPath, "..", "data_00000000-stray.parquet");
  await Deno.writeTextFile(stray, "not ours");
  const r = await verify(ws, "--deep", "--repair");
  assertEquals(r.code, 5, r.stdout + r.stderr);
  assertMatch(
    r.stdout,
    new RegExp(`^repaired: ${gone.dstPath}: recorded as no longer verified$`, "m"),
  );
  assertMatch(
    r.stderr,
    new RegExp(`^stray: ${stray}: a file that no verification log explains`, "m"),
  );
  assertMatch(r.stdout, /move strays and other entries away yourself/);
  assertEquals(await Deno.readTextFile(stray), "not ours", "a stray stays where it is");
  const run = await runScript("phases/run.ts", ["--config", ws.configPath]);
  assertEquals(run.code, 0, run.stdout + run.stderr);
  assertEquals(await Deno.readFile(gone.dstPath), await Deno.readFile(gone.srcPath));
  const deep = await verify(ws, "--deep");
  assertEquals(deep.code, 3, "the stray still differs from the logs");
  await Deno.remove(stray);
  assertEquals((await verify(ws, "--deep")).code, 0);
  await Deno.remove(ws.dir, { recursive: true });
});
