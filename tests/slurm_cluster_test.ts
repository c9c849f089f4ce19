/**
 * Proves the local two-node Slurm cluster works the way the tool's jobs need it: batch jobs,
 * final state and exit code, TIMEOUT, afterany chains, time left from inside a job, 3 tasks on
 * one node, and MPI launch with MPICH (srun --mpi=pmi2, mpirun.mpich) and Open MPI
 * (srun --mpi=pmix, mpirun.openmpi). Never skips: a missing binary fails with the package name.
 */
import { parseSlurmDuration } from "../core/slurm/client.ts";
import {
  type LocalSlurm,
  requireBinary,
  startLocalSlurm,
  stopLocalSlurm,
} from "./support/local_slurm.ts";
import {
  jobCompRecord,
  parseRecord,
  sbatch,
  sbatchScript,
  slurmCommand,
  waitForJob,
} from "./support/slurm_job.ts";

function assert(cond: unknown, msg: string): asserts cond {
  if (!cond) throw new Error(msg);
}
function assertEquals<T>(actual: T, expected: T, msg = ""): void {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${msg}${msg ? ": " : ""}expected ${e}, got ${a}`);
}

let cluster: LocalSlurm | undefined;
let workDir: string | undefined;

async function setup(): Promise<{ c: LocalSlurm; dir: string }> {
  cluster ??= await startLocalSlurm();
  workDir ??= await Deno.makeTempDir({ prefix: "dt-slurm-test-" });
  return { c: cluster, dir: workDir };
}

// The TIMEOUT job needs ~60 s (--time=1 is the smallest limit): submit it first, check it last.
let timeoutJob: Promise<string> | undefined;
function submitTimeoutJob(): Promise<string> {
  timeoutJob ??= setup().then(({ c, dir }) =>
    sbatchScript(c.env, dir, "timeout.sh", "#!/bin/bash\necho started\nsleep 300\necho never\n", [
      "--time=1",
      "-o",
      `${dir}/timeout.out`,
    ])
  );
  return timeoutJob;
}

Deno.test("local slurm: starts, node idle, SLURM_CONF in env, second start reuses it", async () => {
  const { c } = await setup();
  await submitTimeoutJob();
  assert(c.env.SLURM_CONF === `${c.stateDir}/slurm.conf`, "SLURM_CONF must point at the state dir");
  const again = await startLocalSlurm();
  assert(again.reused, "second startLocalSlurm() must reuse the running cluster");
  assert(again.startMs < 5000, `reuse took ${again.startMs} ms`);
  const s = await slurmCommand(c.env, "sinfo", ["-h", "-o", "%P %a %D %c"]);
  assertEquals(s.stdout.trim(), `${c.partition}* up ${c.nodeNames.length} ${c.cpus}`, "sinfo");
  const mpi = await slurmCommand(c.env, "srun", ["--mpi=list"]);
  const list = mpi.stdout + mpi.stderr;
  for (const p of ["pmi2", "pmix", "none"]) {
    assert(list.includes(p), `srun --mpi=list lacks ${p}: ${list}`);
  }
});

Deno.test("local slurm: a batch job writes a file, ends COMPLETED with exit code 0", async () => {
  const { c, dir } = await setup();
  const id = await sbatchScript(
    c.env,
    dir,
    "write.sh",
    `#!/bin/bash\necho "hello $SLURM_JOB_ID" > ${dir}/written.txt\n`,
    [
      "-o",
      `${dir}/write.out`,
    ],
  );
  const st = await waitForJob(c.env, id, { timeoutMs: 30_000, jobCompLog: c.jobCompLog });
  assertEquals([st.state, st.exitCode, st.signal], ["COMPLETED", 0, 0], "state");
  assertEquals((await Deno.readTextFile(`${dir}/written.txt`)).trim(), `hello ${id}`);
  // The jobcomp/filetxt log has the same verdict (it outlives MinJobAge).
  let rec = await jobCompRecord(c.jobCompLog, id);
  for (let i = 0; !rec && i < 20; i++) {
    await new Promise((r) => setTimeout(r, 100));
    rec = await jobCompRecord(c.jobCompLog, id);
  }
  assertEquals(rec?.state, "COMPLETED", "jobcomp log");
});

Deno.test("local slurm: a failing script ends FAILED with its exit code", async () => {
  const { c, dir } = await setup();
  const id = await sbatch(c.env, ["-o", `${dir}/fail.out`, "--wrap", "exit 3"], { cwd: dir });
  const st = await waitForJob(c.env, id, { timeoutMs: 30_000 });
  assertEquals([st.state, st.exitCode], ["FAILED", 3]);
});

Deno.test("local slurm: an impossible request is refused by sbatch, not left pending", async () => {
  const { c, dir } = await setup();
  let msg = "";
  try {
    const cpus = c.cpus * c.nodeNames.length;
    await sbatch(c.env, ["-n", String(cpus + 1), "--wrap", "true"], { cwd: dir });
  } catch (e) {
    msg = (e as Error).message;
  }
  assert(/More processors requested than permitted/.test(msg), `expected refusal, got '${msg}'`);
});

Deno.test("local slurm: 3 tasks run on one node (srun -n 3 in sbatch -N 1 -n 3)", async () => {
  const { c, dir } = await setup();
  const id = await sbatch(c.env, [
    "--nodes=1",
    "-n",
    "3",
    "-o",
    `${dir}/three.out`,
    "--wrap",
    "srun bash -c 'echo task $SLURM_PROCID of $SLURM_NTASKS'",
  ], { cwd: dir });
  const st = await waitForJob(c.env, id, { timeoutMs: 30_000 });
  assertEquals(st.state, "COMPLETED");
  const lines = (await Deno.readTextFile(`${dir}/three.out`)).trim().split("\n").sort();
  assertEquals(lines, ["task 0 of 3", "task 1 of 3", "task 2 of 3"]);
});

Deno.test("local slurm: an afterany chain runs in order, even after a failure", async () => {
  const { c, dir } = await setup();
  const log = `${dir}/chain.log`;
  const step = (name: string, code: number) =>
    `#!/bin/bash\necho "${name} start $(date +%s.%N)" >> ${log}\nsleep 1\necho "${name} end $(date +%s.%N)" >> ${log}\nexit ${code}\n`;
  const a = await sbatchScript(c.env, dir, "a.sh", step("a", 1), ["-o", `${dir}/a.out`]);
  const b = await sbatchScript(c.env, dir, "b.sh", step("b", 0), [
    `--dependency=afterany:${a}`,
    "-o",
    `${dir}/b.out`,
  ]);
  const cc = await sbatchScript(c.env, dir, "c.sh", step("c", 0), [
    `--dependency=afterany:${b}`,
    "-o",
    `${dir}/c.out`,
  ]);
  // While a runs, c waits on a dependency.
  const pending = await slurmCommand(c.env, "squeue", ["-h", "-j", cc, "-o", "%T %r"]);
  assertEquals(pending.stdout.trim(), "PENDING Dependency", "c before a ends");
  const sc = await waitForJob(c.env, cc, { timeoutMs: 60_000 });
  const sa = await waitForJob(c.env, a, { timeoutMs: 5_000 });
  const sb = await waitForJob(c.env, b, { timeoutMs: 5_000 });
  assertEquals([sa.state, sa.exitCode, sb.state, sc.state], [
    "FAILED",
    1,
    "COMPLETED",
    "COMPLETED",
  ]);
  const events = (await Deno.readTextFile(log)).trim().split("\n").map((l) => l.split(" "));
  assertEquals(events.map((e) => `${e[0]} ${e[1]}`), [
    "a start",
    "a end",
    "b start",
    "b end",
    "c start",
    "c end",
  ]);
  const times = events.map((e) => Number(e[2]));
  for (let i = 1; i < times.length; i++) assert(times[i] >= times[i - 1], "chain out of order");
});

Deno.test("local slurm: afterok on a failed job is cancelled, not left pending", async () => {
  const { c, dir } = await setup();
  const a = await sbatch(c.env, ["-o", `${dir}/ok_a.out`, "--wrap", "exit 2"], { cwd: dir });
  const b = await sbatch(c.env, [
    `--dependency=afterok:${a}`,
    "-o",
    `${dir}/ok_b.out`,
    "--wrap",
    "true",
  ], { cwd: dir });
  // DependencyParameters=kill_invalid_depend; without it b stays PENDING forever.
  const sb = await waitForJob(c.env, b, { timeoutMs: 60_000 });
  assertEquals([sb.state, sb.reason], ["CANCELLED", "DependencyNeverSatisfied"]);
});

Deno.test("local slurm: a job can compute its remaining time (squeue %L, scontrol EndTime)", async () => {
  const { c, dir } = await setup();
  const script = `#!/bin/bash
echo "NOW=$(date +%s)"
echo "LEFT=$(squeue -h -j "$SLURM_JOB_ID" -o %L)"
scontrol show job -o "$SLURM_JOB_ID"
`;
  const id = await sbatchScript(c.env, dir, "left.sh", script, [
    "--time=5",
    "-o",
    `${dir}/left.out`,
  ]);
  const st = await waitForJob(c.env, id, { timeoutMs: 30_000 });
  assertEquals(st.state, "COMPLETED");
  const out = await Deno.readTextFile(`${dir}/left.out`);
  const now = Number(/^NOW=(\d+)$/m.exec(out)?.[1]);
  const leftText = /^LEFT=(.*)$/m.exec(out)?.[1] ?? "";
  // squeue %L is M:SS below an hour, H:MM:SS below a day, D-HH:MM:SS above.
  assert(/^\d+:\d\d$/.test(leftText), `squeue %L format: '${leftText}'`);
  const left = parseSlurmDuration(leftText);
  assert(left !== null && left > 240 && left <= 300, `time left ${left}`);
  // scontrol: EndTime is local time without a zone, TimeLimit is a duration.
  const rec = parseRecord(out.split("\n").find((l) => l.startsWith("JobId=")) ?? "");
  assertEquals(rec.TimeLimit, "00:05:00", "TimeLimit");
  assertEquals(parseSlurmDuration(rec.TimeLimit), 300);
  const endSec = new Date(rec.EndTime).getTime() / 1000; // parsed as local time
  const startSec = new Date(rec.StartTime).getTime() / 1000;
  assertEquals(endSec - startSec, 300, "EndTime - StartTime");
  const fromEnd = endSec - now;
  assert(Math.abs(fromEnd - left) <= 2, `EndTime-now ${fromEnd} vs %L ${left}`);
  // The parser covers the other formats squeue/scontrol print.
  assertEquals(parseSlurmDuration("1-02:04:00"), 93840);
  assertEquals(parseSlurmDuration("1:30:00"), 5400);
  assertEquals(parseSlurmDuration("0:04"), 4);
  assertEquals(parseSlurmDuration("UNLIMITED"), null);
  assertEquals(parseSlurmDuration("INVALID"), null);
});

const HELLO_C = `#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  int r, s, one = 1, sum = 0;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  printf("rank=%d size=%d sum=%d\\n", r, s, sum);
  MPI_Finalize();
  return 0;
}
`;

async function compile(dir: string, mpicc: string, pkg: string, out: string): Promise<string> {
  try {
    requireBinary(mpicc);
  } catch {
    throw new Error(`${mpicc} not found; install it with: apt-get install -y ${pkg}`);
  }
  await Deno.writeTextFile(`${dir}/hello.c`, HELLO_C);
  const r = await new Deno.Command(mpicc, { args: ["-o", `${dir}/${out}`, `${dir}/hello.c`] })
    .output();
  assert(
    r.code === 0,
    `${mpicc} failed: ${new TextDecoder().decode(r.stderr)} (apt-get install -y ${pkg})`,
  );
  return `${dir}/${out}`;
}

function expectRanks(text: string, n: number): void {
  const ranks = text.split("\n").filter((l) => l.startsWith("rank=")).sort();
  const want = Array.from({ length: n }, (_, i) => `rank=${i} size=${n} sum=${n}`);
  assertEquals(ranks, want, `MPI output:\n${text}\n`);
}

async function mpiJob(c: LocalSlurm, dir: string, name: string, command: string): Promise<string> {
  const id = await sbatch(c.env, ["-n", "3", "-o", `${dir}/${name}.out`, "--wrap", command], {
    cwd: dir,
  });
  const st = await waitForJob(c.env, id, { timeoutMs: 60_000 });
  const text = await Deno.readTextFile(`${dir}/${name}.out`).catch(() => "");
  assertEquals([st.state, st.exitCode], ["COMPLETED", 0], `${name}:\n${text}\n`);
  return text;
}

Deno.test("local slurm: MPICH launches 3 ranks with srun --mpi=pmi2 and mpirun.mpich", async () => {
  const { c, dir } = await setup();
  const exe = await compile(dir, "mpicc.mpich", "mpich libmpich-dev", "hello_mpich");
  expectRanks(await mpiJob(c, dir, "mpich_srun", `srun --mpi=pmi2 ${exe}`), 3);
  expectRanks(await mpiJob(c, dir, "mpich_mpirun", `mpirun.mpich -n 3 ${exe}`), 3);
});

Deno.test("local slurm: Open MPI launches 3 ranks with srun --mpi=pmix and mpirun.openmpi", async () => {
  const { c, dir } = await setup();
  const exe = await compile(dir, "mpicc.openmpi", "openmpi-bin libopenmpi-dev", "hello_ompi");
  expectRanks(await mpiJob(c, dir, "ompi_srun", `srun --mpi=pmix ${exe}`), 3);
  expectRanks(
    await mpiJob(c, dir, "ompi_mpirun", `mpirun.openmpi --allow-run-as-root -n 3 ${exe}`),
    3,
  );
});

Deno.test("local slurm: a job over its --time=1 limit ends TIMEOUT", async () => {
  const { c, dir } = await setup();
  const id = await submitTimeoutJob();
  const st = await waitForJob(c.env, id, { timeoutMs: 150_000, pollMs: 1000 });
  assertEquals([st.state, st.reason, st.signal], ["TIMEOUT", "TimeLimit", 15]);
  const out = await Deno.readTextFile(`${dir}/timeout.out`);
  assert(out.includes("started") && !out.includes("never"), out);
  assert(/DUE TO TIME LIMIT/.test(out), `slurmstepd message missing:\n${out}`);
});

Deno.test("local slurm: stop() ends the daemons and a later start works", async () => {
  // A second cluster in its own folder and ports, so that the shared one (which later test
  // files reuse) keeps running.
  const { dir } = await setup();
  const stateDir = await Deno.makeTempDir({ prefix: "dt-slurm-restart-" });
  const opts = { stateDir, slurmctldPort: 16827, slurmdPort: 16828 };
  try {
    const first = await startLocalSlurm(opts);
    assert(!first.reused, "a new state folder must start a new cluster");
    const id1 = await sbatch(first.env, ["-o", `${dir}/r1.out`, "--wrap", "sleep 30"], {
      cwd: dir,
    });
    const t0 = Date.now();
    await first.stop(); // cancels the running job, then stops slurmd and slurmctld
    const stopMs = Date.now() - t0;
    // (`scontrol ping`, not `sinfo`: sinfo retries for ~9 s against a stopped controller.)
    const down = await slurmCommand(first.env, "scontrol", ["ping"]);
    assert(down.code !== 0 && /DOWN/.test(down.stdout), `controller still up: ${down.stdout}`);
    const t1 = Date.now();
    const again = await startLocalSlurm(opts);
    assert(!again.reused, "start after stop must start afresh");
    const id2 = await sbatch(again.env, ["-o", `${dir}/r2.out`, "--wrap", "true"], { cwd: dir });
    assertEquals((await waitForJob(again.env, id2, { timeoutMs: 30_000 })).state, "COMPLETED");
    console.log(
      `stop with a running job (${id1}): ${stopMs} ms; start + one job: ${Date.now() - t1} ms`,
    );
    await again.stop();
  } finally {
    await stopLocalSlurm(stateDir);
    await Deno.remove(stateDir, { recursive: true });
  }
  // The shared cluster was not touched.
  const { c } = await setup();
  const up = await slurmCommand(c.env, "scontrol", ["ping"]);
  assert(up.code === 0, `shared cluster down: ${up.stdout}`);
  await Deno.remove(dir, { recursive: true });
  workDir = undefined;
});
