/**
 * Tests of the MPI layer. The launcher tests run the real `mpirun.mpich` and `mpirun.openmpi`
 * (they fail, never skip, when one is missing) on tests/fixtures/mpi_gather_driver.ts and on
 * phases/mpi_check.ts.
 *
 * Open MPI runs with `OMPI_MCA_btl_vader_single_copy_mechanism=none`: the multi-MB gathers use
 * the shared-memory BTL's single-copy path (CMA), which needs ptrace rights that containers
 * often withhold, and Open MPI 4.1 then prints warnings or fails. Copying through shared memory
 * is as correct, only slower.
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  detectLauncher,
  libraryCandidates,
  MpiError,
  openWorld,
  type OpenWorldOptions,
} from "../mpi/mod.ts";
import { planGather } from "../mpi/gather.ts";
import { payload, type ScenarioResult, SCENARIOS, sha256 } from "./fixtures/mpi_gather_driver.ts";
import type { IdleWaitResult } from "./fixtures/mpi_idle_driver.ts";
import { runCommandOrFail } from "./support/command.ts";
import { REPO } from "./support/fixture.ts";
import type { RunResult } from "./support/fixture.ts";
import { cleanEnv, MPI_IMPLS, type MpiImpl, mpirun as launch } from "./support/mpi_launch.ts";

const DRIVER = "tests/fixtures/mpi_gather_driver.ts";
const IDLE_DRIVER = "tests/fixtures/mpi_idle_driver.ts";
const CHECK = "phases/mpi_check.ts";
const TIMEOUT_MS = 30_000;

const LAUNCHERS: Record<MpiImpl, { command: string; name: string }> = {
  mpich: { command: "mpirun.mpich", name: "MPICH" },
  openmpi: { command: "mpirun.openmpi", name: "Open MPI" },
};

/** Open MPI without the single-copy path of its shared-memory BTL (see the module header). */
const OPENMPI_ENV = { OMPI_MCA_btl_vader_single_copy_mechanism: "none" };

/** Runs `deno run -A script args` under the real launcher of `impl` with `n` ranks. */
function mpirun(
  impl: MpiImpl,
  n: number,
  script: string,
  args: string[] = [],
  extraEnv: Record<string, string> = {},
): Promise<RunResult> {
  const env = impl === "openmpi" ? { ...extraEnv, ...OPENMPI_ENV } : extraEnv;
  return launch(impl, n, script, args, { env, timeoutMs: TIMEOUT_MS });
}

/** Runs `deno run -A script args` in exactly the environment `env`, without a launcher. */
function deno(script: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  return runCommandOrFail(Deno.execPath(), ["run", "-A", join(REPO, script), ...args], {
    env,
    clearEnv: true,
    timeoutMs: TIMEOUT_MS,
  });
}

function explain(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

// --- Environment detection and planning (no MPI) --------------------------------------------

Deno.test("detectLauncher: Open MPI, Hydra, srun pmi2 / pmix, Slurm step, none", () => {
  const ompi = detectLauncher({
    OMPI_COMM_WORLD_SIZE: "4",
    OMPI_COMM_WORLD_RANK: "1",
    PMIX_RANK: "1",
  });
  assert.equal(ompi?.kind, "openmpi");
  assert.equal(ompi?.size, 4);
  const hydra = detectLauncher({ PMI_RANK: "0", PMI_SIZE: "3", PMI_FD: "6", HYDI_CONTROL_FD: "7" });
  assert.deepEqual([hydra?.kind, hydra?.size], ["pmi", 3]);
  const pmi2 = detectLauncher({ PMI_FD: "5", SLURM_STEP_ID: "0", SLURM_STEP_NUM_TASKS: "8" });
  assert.deepEqual([pmi2?.kind, pmi2?.size], ["pmi", 8]);
  const pmix = detectLauncher({ PMIX_RANK: "2", SLURM_STEP_ID: "1", SLURM_STEP_NUM_TASKS: "6" });
  assert.deepEqual([pmix?.kind, pmix?.size], ["pmix", 6]);
  assert.deepEqual([detectLauncher({ PMIX_NAMESPACE: "x" })?.size], [null]);
  const step = detectLauncher({ SLURM_STEP_ID: "0", SLURM_NTASKS: "2", SLURM_PROCID: "1" });
  assert.deepEqual([step?.kind, step?.size], ["slurm", 2]);
  // A batch script (allocation without a step) and a plain shell are not launchers.
  assert.equal(detectLauncher({ SLURM_JOB_ID: "7", SLURM_NTASKS: "4" }), null);
  assert.equal(detectLauncher({ MPIR_CVAR_ASYNC_PROGRESS: "1", HYDRA_IFACE: "eth0" }), null);
  assert.equal(detectLauncher({}), null);
});

Deno.test("libraryCandidates: family of the launcher first, libmpi.so last", () => {
  const at = (env: Record<string, string>) => libraryCandidates(detectLauncher(env)!, env);
  assert.deepEqual(at({ OMPI_COMM_WORLD_SIZE: "2" }), ["libmpi.so.40", "libmpi.so"]);
  assert.deepEqual(at({ PMI_SIZE: "2" }), ["libmpich.so.12", "libmpi.so.12", "libmpi.so"]);
  assert.deepEqual(at({ PMIX_RANK: "0" }), [
    "libmpi.so.40",
    "libmpich.so.12",
    "libmpi.so.12",
    "libmpi.so",
  ]);
  assert.equal(at({ PMIX_RANK: "0", MPIR_CVAR_X: "1" })[0], "libmpich.so.12");
  assert.deepEqual(at({ PMI_FD: "3", SLURM_STEP_ID: "0" }).slice(0, 3), [
    "libmpich.so.12",
    "libmpi.so.12",
    "libmpi.so.40",
  ]);
});

Deno.test("planGather: rounds stay within the limit and cover every byte once", () => {
  assert.deepEqual(planGather([0, 0, 0]), []);
  const lengths = [0, 10, 3, 25, 0, 7];
  for (const max of [1, 4, 9, 45, 1000]) {
    const rounds = planGather(lengths, max);
    const sent = lengths.map(() => 0);
    for (const round of rounds) {
      assert.ok(round.total <= max && round.total > 0);
      round.counts.forEach((count, rank) => {
        assert.equal(round.offsets[rank], sent[rank]);
        assert.ok(round.displs[rank] + count <= round.total);
        sent[rank] += count;
      });
    }
    assert.deepEqual(sent, lengths);
    assert.equal(rounds.length, Math.ceil(45 / max));
  }
  assert.throws(() => planGather([1], 0), RangeError);
  assert.throws(() => planGather([1], 2 ** 31), RangeError);
});

Deno.test("openWorld without a launcher: one process, no MPI, said once", async () => {
  const lines: string[] = [];
  const options: OpenWorldOptions = { env: {}, log: (line) => lines.push(line) };
  const comm = openWorld(options);
  assert.deepEqual([comm.rank, comm.size, comm.implementation, comm.library], [0, 1, "none", null]);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /no MPI launcher detected/);
  const bytes = new Uint8Array([1, 2, 3]);
  const gathered = comm.gather(bytes);
  assert.deepEqual(gathered, [bytes]);
  assert.notEqual(gathered?.[0], bytes);
  assert.equal(comm.allreduce(2.5, "sum"), 2.5);
  const reduction = comm.iallreduce(1.5, "max");
  assert.equal(reduction.test(), true);
  assert.equal(reduction.value(), 1.5);
  assert.throws(() => comm.gather(bytes, 1), RangeError);
  const value = { rank: 0, name: "é", list: [1, 2.5] };
  const objects = comm.gatherObject(value);
  assert.deepEqual(objects, [value]);
  assert.notEqual(objects?.[0], value);
  assert.throws(() => comm.gatherObject(undefined), TypeError);
  assert.equal(comm.ibarrier().test(), true);
  await comm.ibarrier().wait();
  comm.barrier();
  comm.finalize();
});

Deno.test("openWorld: launcher says 2 processes but the library is missing → MpiError", () => {
  const library = "/nonexistent/libmpi-for-test.so";
  assert.throws(
    () => openWorld({ env: { OMPI_COMM_WORLD_SIZE: "2" }, libraryPath: library }),
    (error: unknown) =>
      error instanceof MpiError && error.message.includes(library) &&
      error.message.includes("OMPI_COMM_WORLD_SIZE=2"),
  );
});

// --- Entry point without a launcher ---------------------------------------------------------

Deno.test("mpi_check: single process without a launcher", async () => {
  const result = await deno(CHECK, [], cleanEnv());
  assert.equal(result.code, 0, explain(result));
  assert.match(result.stdout, /^implementation: none$/m);
  assert.match(result.stdout, /^rank 0\/1$/m);
  assert.match(result.stdout, /^mpi-check: OK$/m);
  assert.equal(result.stderr.match(/no MPI launcher detected/g)?.length, 1, explain(result));
});

Deno.test("mpi_check --help", async () => {
  const result = await deno(CHECK, ["--help"], cleanEnv());
  assert.equal(result.code, 0, explain(result));
  assert.match(result.stdout, /^Usage:/);
  const bad = await deno(CHECK, ["--bogus"], cleanEnv());
  assert.equal(bad.code, 2, explain(bad));
});

Deno.test("mpi_check: OMPI_COMM_WORLD_SIZE=2 with a missing DT_MPI_LIBRARY fails", async () => {
  const library = "/nonexistent/dir/libmpi.so.40";
  const env = cleanEnv({ OMPI_COMM_WORLD_SIZE: "2", OMPI_COMM_WORLD_RANK: "0" });
  const result = await deno(CHECK, [], { ...env, DT_MPI_LIBRARY: library });
  assert.notEqual(result.code, 0, explain(result));
  assert.ok(result.stderr.includes(library), explain(result));
  assert.doesNotMatch(result.stdout, /mpi-check: OK/);
});

// --- Real launchers -------------------------------------------------------------------------

interface DriverLine {
  implementation: string;
  abi: string;
  size: number;
  sum: number;
  max: number;
  min: number;
  imax: number;
  isum: number;
  scenarios: ScenarioResult[];
}

function checkDriver(impl: MpiImpl, n: number, result: RunResult): void {
  assert.equal(result.code, 0, explain(result));
  const lines = result.stdout.trim().split("\n").filter((line) => line.startsWith("{"));
  assert.equal(lines.length, 1, explain(result));
  const line = JSON.parse(lines[0]) as DriverLine;
  assert.equal(line.implementation, LAUNCHERS[impl].name);
  assert.equal(line.abi, impl);
  assert.equal(line.size, n);
  assert.equal(line.sum, n * (n - 1) / 2 + n * 0.5);
  assert.equal(line.max, (n - 1) * 2);
  assert.equal(line.min, -(n - 1));
  assert.equal(line.imax, (n - 1) * 3 + 1);
  assert.equal(line.isum, n * (n - 1) / 2 + n * 0.25);
  assert.deepEqual(line.scenarios.map((s) => s.name), Object.keys(SCENARIOS));
  for (const scenario of line.scenarios) {
    const ranks = Array.from({ length: n }, (_, rank) => rank);
    assert.equal(scenario.root, scenario.name === "uneven" ? n - 1 : 0);
    assert.deepEqual(scenario.lengths, ranks.map((rank) => SCENARIOS[scenario.name](rank, n)));
    assert.deepEqual(
      scenario.digests,
      ranks.map((rank) => sha256(payload(scenario.name, rank, n))),
      `payload bytes of scenario ${scenario.name}`,
    );
  }
}

for (const impl of MPI_IMPLS) {
  const name = LAUNCHERS[impl].command;

  for (const n of [2, 3]) {
    Deno.test(`${name} -n ${n}: gather 0 B .. 4.5 MB uneven payloads byte for byte, allreduce, iallreduce`, async () => {
      checkDriver(impl, n, await mpirun(impl, n, DRIVER));
    });
  }

  Deno.test(`${name} -n 3: gathers split in 1 MB MPI_Gatherv rounds`, async () => {
    checkDriver(impl, 3, await mpirun(impl, 3, DRIVER, ["--max-message-bytes", "1000003"]));
  });

  Deno.test(`${name} -n 3: mpi_check passes`, async () => {
    const result = await mpirun(impl, 3, CHECK);
    assert.equal(result.code, 0, explain(result));
    assert.match(result.stdout, new RegExp(`^implementation: ${LAUNCHERS[impl].name}$`, "m"));
    assert.match(result.stdout, /^library version: \S+/m);
    for (const rank of [0, 1, 2]) assert.match(result.stdout, new RegExp(`^rank ${rank}/3$`, "m"));
    assert.match(result.stdout, /^gather: 3 payloads, 3017 bytes$/m);
    assert.match(result.stdout, /^allreduce: sum=3 max=2 min=0$/m);
    assert.match(result.stdout, /^mpi-check: OK$/m);
  });

  Deno.test(`${name} -n 3: an error in rank 1 aborts the job instead of hanging`, async () => {
    const result = await mpirun(impl, 3, DRIVER, ["--fail-rank", "1"]);
    assert.notEqual(result.code, 0, explain(result));
    assert.match(result.stderr, /\[rank 1\/3\] Error: driver: rank 1 fails on purpose/);
    assert.doesNotMatch(result.stdout, /^\{/m);
  });

  for (const n of [2, 3]) {
    Deno.test(`${name} -n ${n}: a rank waiting in ibarrier for busy ranks sleeps instead of spinning`, async () => {
      const gate = await Deno.makeTempDir({ prefix: "dt-idle-" });
      try {
        const result = await mpirun(impl, n, IDLE_DRIVER, ["--gate", gate, "--hold-ms", "1500"]);
        assert.equal(result.code, 0, explain(result));
        const lines = result.stdout.trim().split("\n").filter((line) => line.startsWith("{"));
        assert.equal(lines.length, 1, explain(result));
        const wait = JSON.parse(lines[0]) as IdleWaitResult;
        assert.equal(wait.size, n);
        // No other rank could enter before rank 0 let them: the request was not complete.
        assert.deepEqual(wait.earlyTests, Array(10).fill(false));
        assert.ok(wait.othersEntered, "the barrier completed only after every rank entered it");
        assert.ok(wait.waitMs >= 1500, `rank 0 waited for the others (${wait.waitMs} ms)`);
        // A blocking MPI_Barrier keeps a core busy for the whole wait; the timer-driven wait
        // costs a few percent at most, whatever the machine's speed.
        console.log(
          `  ${name} -n ${n}: ${wait.cpuMs.toFixed(0)} ms CPU in ${wait.waitMs.toFixed(0)} ms`,
        );
        assert.ok(
          wait.cpuMs < 0.25 * wait.waitMs,
          `rank 0 used ${wait.cpuMs} ms of CPU while waiting ${wait.waitMs} ms`,
        );
      } finally {
        await Deno.remove(gate, { recursive: true });
      }
    });
  }

  const other = impl === "mpich" ? "libmpi.so.40" : "libmpich.so.12";
  Deno.test(`${name} -n 2 with the other MPI's library (${other}): size mismatch error`, async () => {
    const result = await mpirun(impl, 2, CHECK, [], { DT_MPI_LIBRARY: other });
    assert.notEqual(result.code, 0, explain(result));
    assert.ok(result.stderr.includes(other), explain(result));
    assert.match(result.stderr, /which means 2 processes, but .* reports 1/);
    assert.doesNotMatch(result.stdout, /mpi-check: OK/);
  });
}

// --- Shared counters: one-sided MPI windows ----------------------------------------------------

const COUNTERS_DRIVER = "tests/fixtures/mpi_counters_driver.ts";

interface CountersLine {
  implementation: string;
  abi: string;
  size: number;
  problems: string[];
}

function checkCounters(impl: MpiImpl, n: number, result: RunResult): void {
  assert.equal(result.code, 0, explain(result));
  const lines = result.stdout.trim().split("\n").filter((line) => line.startsWith("{"));
  assert.equal(lines.length, 1, explain(result));
  const line = JSON.parse(lines[0]) as CountersLine;
  assert.deepEqual([line.implementation, line.abi, line.size], [LAUNCHERS[impl].name, impl, n]);
  assert.deepEqual(line.problems, []);
}

/** A fresh folder holding the FIFO `fifo` of the progress driver. */
async function fifoFolder(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dt-rma-" });
  const made = await new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).output();
  assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
  return dir;
}

Deno.test("counters without MPI: same results as a window, checked arguments, free once", async () => {
  const comm = openWorld({ env: {} });
  const counters = comm.allocateCounters(2);
  assert.deepEqual([counters.ranks, counters.length], [1, 2]);
  assert.equal(await counters.fetchAdd(0, 1, 5), 0);
  assert.equal(await counters.fetchAdd(0, 1, -2), 5);
  assert.deepEqual([await counters.read(0, 0), await counters.read(0, 1)], [0, 3]);
  assert.deepEqual(await counters.readAll(1), [3]);
  await assert.rejects(() => counters.read(1, 0), RangeError);
  await assert.rejects(() => counters.fetchAdd(0, 2, 1), RangeError);
  await assert.rejects(() => counters.fetchAdd(0, 0, 0.5), RangeError);
  assert.throws(() => comm.allocateCounters(0), RangeError);
  assert.throws(() => comm.allocateCounters(1, { progressIntervalMs: -1 }), RangeError);
  counters.free();
  await assert.rejects(() => counters.read(0, 0), MpiError);
  assert.throws(() => counters.free(), MpiError);
});

const PT2PT = { OMPI_MCA_osc: "pt2pt" };

for (const impl of MPI_IMPLS) {
  const name = LAUNCHERS[impl].command;
  for (const n of [2, 3]) {
    Deno.test(`${name} -n ${n}: counters are each rank's own, every fetch-add atomic`, async () => {
      checkCounters(impl, n, await mpirun(impl, n, COUNTERS_DRIVER, ["--mode", "counters"]));
    });

    Deno.test(`${name} -n ${n}: a fetch-add completes while its target awaits I/O`, async () => {
      const dir = await fifoFolder();
      try {
        const args = ["--mode", "progress", "--dir", dir];
        checkCounters(impl, n, await mpirun(impl, n, COUNTERS_DRIVER, args));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

// Open MPI's pt2pt window component (what a job across nodes without RDMA atomics gets) needs
// the target to enter MPI for every operation: the progress poke is what serves it.
for (const n of [2, 3]) {
  Deno.test(`mpirun.openmpi -n ${n}, osc pt2pt: counters, and progress while awaiting I/O`, async () => {
    checkCounters(
      "openmpi",
      n,
      await mpirun("openmpi", n, COUNTERS_DRIVER, ["--mode", "counters"], PT2PT),
    );
    const dir = await fifoFolder();
    try {
      const args = ["--mode", "progress", "--dir", dir];
      checkCounters("openmpi", n, await mpirun("openmpi", n, COUNTERS_DRIVER, args, PT2PT));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}
