/**
 * Compute nodes without network access (issue 17). The phases run in a network namespace of
 * their own that has only loopback (`unshare -n`, which needs root; loopback is up because Open
 * MPI's launcher listens on it), so any attempt to reach the npm registry fails as it does on a
 * compute node. Each test uses a fresh `DENO_DIR`:
 * - after `deno task setup` (with network), filter, schedule, the runner under `mpirun -n 2`
 *   (MPICH and Open MPI) and verify succeed with no network, and the cache holds nothing of
 *   DuckDB (a test-only package);
 * - with an empty cache and no network, a phase exits 2 with one line (once per MPI job).
 * @module
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { type CommandResult, runCommand, runCommandOrFail } from "./support/command.ts";
import { addPartition, datasetFiles, listFiles, makeWorkspace, REPO } from "./support/fixture.ts";
import { cleanEnv, launcherArgs, MPI_IMPLS } from "./support/mpi_launch.ts";
import { lockFlags } from "../core/setup/setup.ts";
import { missingDependency } from "../core/setup/missing_dependency.ts";
import { launcherRank } from "../mpi/locate.ts";

const DENO = Deno.execPath();
const START = join(REPO, "phases", "start.ts");
/** How the Slurm jobs start a phase (slurm/lib.sh). */
const JOB_FLAGS = ["run", "-q", "--cached-only", ...lockFlags(REPO), "-A", START];

/** Runs `argv` in a new network namespace with only loopback, from the repository. */
async function offline(argv: string[], env: Record<string, string>): Promise<CommandResult> {
  if (Deno.uid() !== 0) throw new Error("these tests need root for `unshare -n`; they never skip");
  return await runCommandOrFail(
    "unshare",
    ["-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", ...argv],
    { env, clearEnv: true, cwd: REPO, timeoutMs: 180_000 },
  );
}

/** A fresh, empty `DENO_DIR` and the clean environment that uses it; removed after `fn`. */
async function withDenoDir(
  fn: (dir: string, env: Record<string, string>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dt-deno-dir-" });
  try {
    await fn(dir, cleanEnv({ DENO_DIR: dir }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The one line a phase prints when its dependencies are missing, as a pattern. */
function missingLine(phase: string, denoDir: string, cause = ".+"): RegExp {
  return new RegExp(
    `^error: ${phase}: npm package \\S+@\\S+ is not in the Deno cache \\(DENO_DIR ` +
      `${escapeRegExp(denoDir)}\\) and cannot be downloaded \\(${cause}\\); run ` +
      "`deno task setup` on a node with network access$",
  );
}

const outputLines = (r: CommandResult) =>
  (r.stdout + r.stderr).split("\n").filter((line) => line.trim() !== "");

Deno.test("the test namespace has no network: the npm registry's name does not resolve", async () => {
  const inside = await offline(["getent", "hosts", "registry.npmjs.org"], cleanEnv());
  assert(inside.code !== 0, `resolved inside the namespace: ${inside.stdout}`);
  const outside = await runCommand("getent", ["hosts", "registry.npmjs.org"]);
  assertEquals(outside.code, 0, "the registry must resolve outside, or the comparison is void");
});

Deno.test("after deno task setup, every phase runs with no network (MPICH, Open MPI)", async () => {
  await withDenoDir(async (denoDir, env) => {
    const setup = await runCommandOrFail(DENO, ["task", "setup"], {
      env,
      clearEnv: true,
      cwd: REPO,
      timeoutMs: 300_000,
    });
    assertEquals(setup.code, 0, setup.stdout + setup.stderr);
    assertMatch(setup.stdout, new RegExp(`^export DENO_DIR=${escapeRegExp(denoDir)}$`, "m"));
    assertMatch(setup.stdout, /^setup: MPI library libmpi\.so\.40 loads: Open MPI, /m);
    assertMatch(setup.stdout, /^setup: MPI library libmpich\.so\.12 loads: MPICH, /m);
    const cached = listFiles(denoDir);
    assert(cached.some((p) => p.includes("/parquet-wasm/")), "setup cached the phases' packages");
    assertEquals(cached.filter((p) => /duckdb/i.test(p)), [], "nothing of DuckDB is cached");

    // Safe to run again, and it needs no network once the cache is filled.
    const again = await offline([DENO, "task", "setup"], env);
    assertEquals(again.code, 0, again.stdout + again.stderr);

    for (const impl of MPI_IMPLS) {
      const ws = await makeWorkspace();
      try {
        for (const p of [0, 1, 2]) await addPartition(ws, "images.example.org%3A8080", p);
        await addPartition(ws, "media.example.net:443", 0);
        const config = ["--config", ws.configPath];
        for (const phase of ["filter", "schedule"]) {
          const r = await offline([DENO, "task", phase, ...config], env);
          assertEquals(r.code, 0, `${phase}: ${r.stdout}${r.stderr}`);
        }
        const run = await offline(
          launcherArgs(impl, 2, [DENO, ...JOB_FLAGS, "run", ...config]),
          env,
        );
        assertEquals(run.code, 0, `${impl} run: ${run.stdout}${run.stderr}`);
        assertMatch(run.stdout, /^run: 8 files copied and verified, /m);
        const verify = await offline([DENO, "task", "verify", ...config], env);
        assertEquals(verify.code, 0, verify.stdout + verify.stderr);
        assertEquals(datasetFiles(ws).length, 8);
        for (const folder of [ws.dstImages, ws.dstErrors]) {
          const sums = await runCommand("md5sum", ["-c", "--quiet", "_MD5SUMS"], { cwd: folder });
          assertEquals(sums.code, 0, sums.stdout + sums.stderr);
        }
      } finally {
        await Deno.remove(ws.dir, { recursive: true });
      }
    }
  });
});

Deno.test("with an empty cache and no network, a phase exits 2 with one line", async () => {
  await withDenoDir(async (denoDir, env) => {
    // As a user starts it: deno task's own header line, then the phase's one line.
    const task = await offline([DENO, "task", "filter", "--config", "/nowhere.yaml"], env);
    assertEquals(task.code, 2, task.stdout + task.stderr);
    const [header, ...rest] = outputLines(task);
    assertMatch(header, /^Task filter /);
    assertEquals(rest.length, 1, rest.join("\n"));
    assertMatch(rest[0], missingLine("filter", denoDir));

    // As the Slurm jobs start it: from the cache alone.
    const job = await offline([DENO, ...JOB_FLAGS, "schedule", "--config", "/nowhere.yaml"], env);
    assertEquals(job.code, 2, job.stdout + job.stderr);
    const lines = outputLines(job);
    assertEquals(lines.length, 1, lines.join("\n"));
    assertMatch(lines[0], missingLine("schedule", denoDir, '.*"\\S+", --cached-only is specified'));

    // Under an MPI launcher with 2 ranks: every rank exits 2, rank 0 alone says why.
    for (const impl of MPI_IMPLS) {
      const argv = launcherArgs(impl, 2, [DENO, ...JOB_FLAGS, "run", "--config", "/nowhere.yaml"]);
      const r = await offline(argv, env);
      assertEquals(r.code, 2, `${impl}: ${r.stdout}${r.stderr}`);
      const errors = outputLines(r).filter((line) => line.startsWith("error:"));
      assertEquals(errors.length, 1, `${impl}: ${r.stdout}${r.stderr}`);
      assertMatch(errors[0], missingLine("run", denoDir));
      assert(!/^\s+at /m.test(r.stdout + r.stderr), `${impl}: no stack trace`);
    }
  });
});

Deno.test("missingDependency: a module that is missing for another reason is not one", async () => {
  const error = await import(new URL("./fixtures/no_such_module.ts", import.meta.url).href)
    .then(() => null, (e: unknown) => e);
  assert(error instanceof Error, "importing a missing file fails");
  assertEquals(missingDependency(error), null);
  assertEquals(missingDependency('error: Module not found "file:///x.ts".'), null);
});

Deno.test("launcherRank: the rank each launcher exports, or null without a launcher", () => {
  assertEquals(launcherRank({ OMPI_COMM_WORLD_RANK: "3", OMPI_COMM_WORLD_SIZE: "4" }), 3);
  assertEquals(launcherRank({ PMI_RANK: "1", PMI_SIZE: "2" }), 1);
  assertEquals(launcherRank({ PMIX_RANK: "0", SLURM_PROCID: "5" }), 0);
  assertEquals(launcherRank({ SLURM_PROCID: "2", SLURM_STEP_ID: "0" }), 2);
  assertEquals(launcherRank({ PMI_RANK: "one" }), null);
  assertEquals(launcherRank({ HOME: "/root" }), null);
});

Deno.test("setup fails with one line when DT_MPI_LIBRARY is not an MPI library", async () => {
  const r = await runCommandOrFail(DENO, ["task", "setup"], {
    env: cleanEnv({ DT_MPI_LIBRARY: "libc.so.6" }),
    clearEnv: true,
    cwd: REPO,
    timeoutMs: 300_000,
  });
  assertEquals(r.code, 2, r.stdout + r.stderr);
  const errors = outputLines(r).filter((line) => line.startsWith("error:"));
  assertEquals(errors, [
    "error: setup: DT_MPI_LIBRARY=libc.so.6 does not load as MPI (it does not define " +
    "MPI_Comm_rank); fix or unset it",
  ]);
});
