/**
 * The Slurm layer on the real local cluster (tests/support/local_slurm.ts): `deno task submit`
 * and the `slurm/tools_*.slurm` scripts carry a generated tree through filter, scheduler, two
 * worker jobs and the verifier; a worker job whose time limit is too short stops on its budget
 * (exit 4) and the next one finishes; `srun` starts mpi_check and the runner with MPICH
 * (`--mpi=pmi2`) and Open MPI (`--mpi=pmix`); MPICH under a plugin it cannot use refuses to
 * start instead of copying as lone ranks; a run lock named by a job still running on another
 * node blocks a run until that job ends; `--dry-run` prints a runnable script. Never skips.
 */

import { join } from "node:path";
import { load as parseYaml } from "js-yaml";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { addPartition, makeWorkspace, REPO } from "./support/fixture.ts";
import type { RunResult, Workspace } from "./support/fixture.ts";
import { lazyLocalSlurm } from "./support/local_slurm.ts";
import {
  cleanCommand,
  slurmCommand,
  submittedJobIds,
  submittedJobOutput,
  waitForJob,
} from "./support/slurm_job.ts";
import type { JobState } from "./support/slurm_job.ts";
import { loadConfig } from "../core/config.ts";
import { shellQuote } from "../core/shell_quote.ts";
import { formatDryRun } from "../core/slurm/dry_run.ts";
import {
  appendJobHistory,
  JOB_HISTORY_COLUMNS,
  readJobHistory,
} from "../core/slurm/job_history.ts";
import { readSiteSettings } from "../core/slurm/site_settings.ts";
import type { SiteSettings } from "../core/slurm/site_settings.ts";
import { submitChain } from "../core/slurm/submit.ts";
import { parseSbatchTime, planSubmission } from "../core/slurm/submit_plan.ts";
import { RUN_DRIVER } from "./support/run_gate.ts";

const slurm = lazyLocalSlurm();

/** `deno run -A phases/submit.ts ARGS` in a clean environment plus `env` (no cluster needed). */
function submitOffline(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return cleanCommand(Deno.execPath(), ["run", "-A", join(REPO, "phases/submit.ts"), ...args], env);
}

/** `deno run -A phases/submit.ts ARGS` with the cluster's SLURM_CONF. */
async function submit(args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const c = await slurm();
  return await submitOffline(args, { ...c.env, ...env });
}

async function waitAll(ids: Map<string, string>): Promise<Map<string, JobState>> {
  const c = await slurm();
  const states = new Map<string, JobState>();
  for (const [label, id] of ids) {
    states.set(
      label,
      await waitForJob(c.env, id, { timeoutMs: 150_000, jobCompLog: c.jobCompLog }),
    );
  }
  return states;
}

/** What job `id` of the chain submitted for `ws` printed. */
function jobOutput(ws: Workspace, id: string): Promise<string> {
  return submittedJobOutput(join(ws.tool, "logs", "slurm"), id);
}

async function describe(ws: Workspace, states: Map<string, JobState>): Promise<string> {
  const parts: string[] = [];
  for (const [label, s] of states) {
    parts.push(
      `--- ${label}: job ${s.jobId} ${s.state} ${s.exitCode}\n${await jobOutput(ws, s.jobId)}`,
    );
  }
  return parts.join("\n");
}

async function checkpointOf(ws: Workspace): Promise<Record<string, unknown>> {
  return parseYaml(await Deno.readTextFile(join(ws.tool, "tool_checkpoint.yaml"))) as Record<
    string,
    unknown
  >;
}

async function countParquet(folder: string): Promise<number> {
  let n = 0;
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.isDirectory) await walk(join(dir, e.name));
      else if (/^(data|errors)_.*\.parquet$/.test(e.name)) n++;
    }
  };
  await walk(folder).catch(() => {});
  return n;
}

async function setNumWorkers(ws: Workspace, n: number): Promise<void> {
  const text = await Deno.readTextFile(ws.configPath);
  await Deno.writeTextFile(ws.configPath, text.replace(/num_workers: \d+/, `num_workers: ${n}`));
}

async function tree(
  options: { partitions: number; workersPerNode: number; transfer?: Record<string, unknown> },
): Promise<Workspace> {
  const ws = await makeWorkspace({
    workersPerNode: options.workersPerNode,
    transfer: options.transfer,
  });
  for (let p = 0; p < options.partitions; p++) {
    await addPartition(ws, p % 2 ? "img.example.org:8080" : "cdn.example.com", p, {
      successes: 60_000 + p * 7_000,
      errors: 900,
      seed: p,
    });
  }
  return ws;
}

Deno.test("slurm: submit chains filter, scheduler, 2 workers (MPICH, srun --mpi=pmi2), verifier", async () => {
  const ws = await tree({ partitions: 6, workersPerNode: 3 });
  await setNumWorkers(ws, 2);
  // The repository's own slurm/site.sh, unchanged: srun --mpi=pmi2, deno from PATH.
  const r = await submit(["--config", ws.configPath], { DT_SITE: `${REPO}/slurm/site.sh` });
  assertEquals(r.code, 0, r.stderr);
  const ids = submittedJobIds(r.stdout);
  assertEquals([...ids.keys()], ["filter", "scheduler", "worker 1/2", "worker 2/2", "verifier"]);

  // While the chain runs, a second submission is refused (it would run a second chain).
  const again = await submit(["--config", ws.configPath]);
  assertEquals(again.code, 2, again.stdout + again.stderr);
  assertMatch(again.stderr, /still queued or running: .*--after \d+/);

  const states = await waitAll(ids);
  const text = await describe(ws, states);
  for (const [label, s] of states) {
    assertEquals([label, s.state, s.exitCode], [label, "COMPLETED", 0], text);
  }
  // Each job started after the one before it ended.
  const ordered = [...states.values()];
  for (let i = 1; i < ordered.length; i++) {
    const [start, end] = [ordered[i].fields.StartTime, ordered[i - 1].fields.EndTime];
    assert(start >= end, `job ${ordered[i].jobId} started ${start}, before ${end}\n${text}`);
  }
  assertMatch(await jobOutput(ws, ids.get("worker 1/2")!), /run: 3 rank\(s\), MPI MPICH/);
  assertMatch(await jobOutput(ws, ids.get("worker 1/2")!), /12 files copied and verified/);
  assertMatch(await jobOutput(ws, ids.get("worker 2/2")!), /0 files copied.*12 verified before/);
  assertMatch(await jobOutput(ws, ids.get("verifier")!), /verify: complete/);

  const cp = await checkpointOf(ws);
  assertEquals(
    [cp.filtering_completed, cp.scheduling_completed, cp.completed],
    [true, true, true],
  );
  assertEquals(await countParquet(join(ws.dir, "dataset")), 12);
  const history = await readJobHistory(join(ws.tool, "job_history.csv"));
  assertEquals(
    history.map((h) => [h.phase, h.job_id]),
    [...ids].map(([label, id]) => [label.split(" ")[0], id]),
  );
  assertEquals(history.map((h) => h.dependency), ["", ...[...ids.values()].slice(0, -1)]);
  assertEquals(
    (await Deno.readTextFile(join(ws.tool, "job_history.csv"))).split("\n")[0],
    JOB_HISTORY_COLUMNS.join(","),
  );

  // Completed: a new submission submits nothing; --reset-runners would run workers + verifier.
  const done = await submit(["--config", ws.configPath]);
  assertEquals(done.code, 0, done.stderr);
  assertMatch(done.stdout, /nothing to submit/);
  assertEquals(submittedJobIds(done.stdout).size, 0);
  assertEquals((await readJobHistory(join(ws.tool, "job_history.csv"))).length, 5);
  const dry = await submit(["--config", ws.configPath, "--dry-run", "--reset-runners"]);
  assertEquals(dry.code, 0, dry.stderr);
  assertEquals(
    dry.stdout.split("\n").filter((l) => /^\w+=\$\(sbatch /.test(l)).map((l) => l.split("=")[0]),
    ["worker_1", "worker_2", "verifier"],
  );
  assertEquals((await checkpointOf(ws)).completed, true, "a dry run changes nothing");
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("slurm: a worker out of time stops midway with exit 4, the next worker (Open MPI, srun --mpi=pmix) finishes", async () => {
  const c = await slurm();
  // The worker's --time=1 (60 s) less time_margin_seconds (48) leaves about 12 s of work. The
  // first worker job runs the test driver (DT_RUN_ENTRY, set by the test's site file in the
  // first worker job only) whose ranks each copy 3 of their 12 files, one at a time, then wait
  // until the budget says stop: it stops midway, by construction, with the rest left. The
  // second worker runs phases/run.ts; it is given 5 minutes (scontrol update while it waits,
  // as an operator would) and does the rest.
  const ws = await tree({
    partitions: 12,
    workersPerNode: 2,
    transfer: { time_margin_seconds: 48, files_in_flight: 1, progress_interval_seconds: 1 },
  });
  await setNumWorkers(ws, 2);
  const site = join(ws.dir, "site.sh");
  const firstWorker = join(ws.dir, "first-worker-started");
  await Deno.writeTextFile(
    site,
    `DT_SBATCH_ARGS=(--partition=${c.partition})\nDT_DENO=${shellQuote(Deno.execPath())}\n` +
      `DT_MPI_LAUNCH=(srun --mpi=pmix)\nDT_WORKER_TIME=1\n` +
      `if [[ "\${SLURM_JOB_NAME:-}" == dt_worker && ! -e ${shellQuote(firstWorker)} ]]; then\n` +
      `  : > ${shellQuote(firstWorker)}\n` +
      `  DT_RUN_ENTRY=(${shellQuote(join(REPO, RUN_DRIVER))} --stall-after 3)\n` +
      `fi\n`,
  );
  // A held job in front of the chain, so that nothing starts before worker 2 is updated.
  const blocker = await cleanCommand("sbatch", [
    "--parsable",
    "--hold",
    "-o",
    "/dev/null",
    "--wrap",
    "true",
  ], c.env);
  assertEquals(blocker.code, 0, blocker.stderr);
  const blockerId = blocker.stdout.trim();
  let released = false;
  try {
    const r = await submit(["--config", ws.configPath, "--after", blockerId], { DT_SITE: site });
    assertEquals(r.code, 0, r.stderr);
    const ids = submittedJobIds(r.stdout);
    assertEquals([...ids.keys()], ["filter", "scheduler", "worker 1/2", "worker 2/2", "verifier"]);
    assertMatch(r.stdout, new RegExp(`^filter: submitted \\(after ${blockerId}\\) job \\d+$`, "m"));
    const w2 = ids.get("worker 2/2")!;
    const up = await slurmCommand(c.env, "scontrol", ["update", `JobId=${w2}`, "TimeLimit=5"]);
    assertEquals(up.code, 0, up.stderr);
    const rel = await slurmCommand(c.env, "scontrol", ["release", blockerId]);
    assertEquals(rel.code, 0, rel.stderr);
    released = true;

    const states = await waitAll(ids);
    const text = await describe(ws, states);
    const w1 = states.get("worker 1/2")!;
    assertEquals([w1.state, w1.exitCode], ["FAILED", 4], text);
    assertEquals(w1.fields.TimeLimit, "00:01:00", text);
    const out1 = await jobOutput(ws, w1.jobId);
    assertMatch(out1, /time budget: less than 48s left \(squeue \(job \d+\)\)/);
    const first = /run: (\d+) files copied and verified, .* (\d+) left/.exec(out1);
    assert(first, out1);
    const [copied1, left1] = [Number(first[1]), Number(first[2])];
    assert(copied1 > 0 && copied1 <= 6 && copied1 + left1 === 24, `midway: ${first[0]}`);
    assertMatch(out1, /exit 4: stopped for the time budget/);
    // Progress under srun: rank 0's output is a pipe to Slurm: plain lines, no escapes.
    assertMatch(out1, /^progress: \d+\/24 files, .*\(2 ranks reporting\)$/m);
    assert(!out1.includes("\x1b"), "no terminal escape in the job's output");
    for (const label of ["filter", "scheduler", "worker 2/2", "verifier"]) {
      const s = states.get(label)!;
      assertEquals([label, s.state, s.exitCode], [label, "COMPLETED", 0], text);
    }
    assertEquals(states.get("worker 2/2")!.fields.TimeLimit, "00:05:00");
    const out2 = await jobOutput(ws, w2);
    assertMatch(out2, /command: srun --mpi=pmix \S+ run .* \S+\/phases\/start\.ts run --config/);
    assertMatch(out2, /run: 2 rank\(s\), MPI Open MPI/);
    assertMatch(
      out2,
      new RegExp(`run: ${left1} files copied and verified, .* ${copied1} verified before`),
    );
    assertEquals((await checkpointOf(ws)).completed, true, text);
    assertEquals(await countParquet(join(ws.dir, "dataset")), 24);
    // A worker limit within the margin would never copy anything: submit warns.
    const warn = await submit([
      "--config",
      ws.configPath,
      "--dry-run",
      "--reset-runners",
      "--worker-time",
      "00:00:40",
    ], { DT_SITE: site });
    assertEquals(warn.code, 0, warn.stderr);
    assertMatch(
      warn.stdout,
      /^# warning: worker time 00:00:40 \(40s\) is not more than .*time_margin_seconds/m,
    );
  } finally {
    if (!released) await slurmCommand(c.env, "scancel", [blockerId]);
  }
  await Deno.remove(ws.dir, { recursive: true });
});

/** `srun -n N --mpi=PLUGIN deno run -A <repo>/<script> ARGS` outside any job. */
async function srun(
  n: number,
  plugin: string,
  script: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<RunResult> {
  const c = await slurm();
  return await cleanCommand("srun", [
    "-n",
    String(n),
    `--mpi=${plugin}`,
    "--time=10", // more than the default time_margin_seconds (300)
    Deno.execPath(),
    "run",
    "-A",
    join(REPO, script),
    ...args,
  ], { ...c.env, ...env });
}

async function planned(partitions: number, workersPerNode: number): Promise<Workspace> {
  const ws = await tree({ partitions, workersPerNode });
  for (const phase of ["filter", "schedule"]) {
    const r = await cleanCommand(Deno.execPath(), [
      "run",
      "-A",
      join(REPO, `phases/${phase}.ts`),
      "--config",
      ws.configPath,
    ], {});
    assertEquals(r.code, 0, r.stderr);
  }
  return ws;
}

for (
  const [impl, plugin, n] of [["MPICH", "pmi2", 3], ["Open MPI", "pmix", 2]] as const
) {
  Deno.test(`slurm: srun --mpi=${plugin} runs mpi_check and the runner with ${impl}, ${n} ranks`, async () => {
    const check = await srun(n, plugin, "phases/mpi_check.ts", []);
    assertEquals(check.code, 0, check.stdout + check.stderr);
    assertMatch(check.stdout, new RegExp(`^implementation: ${impl}$`, "m"));
    assertMatch(check.stdout, /^mpi-check: OK$/m);
    for (let r = 0; r < n; r++) assertMatch(check.stdout, new RegExp(`^rank ${r}/${n}$`, "m"));

    const ws = await planned(5, n);
    const run = await srun(n, plugin, "phases/run.ts", ["--config", ws.configPath]);
    assertEquals(run.code, 0, run.stdout + run.stderr);
    assertMatch(run.stdout, new RegExp(`run: ${n} rank\\(s\\), MPI ${impl}`));
    assertMatch(run.stdout, /run: 10 files copied and verified/);
    const verify = await cleanCommand(Deno.execPath(), [
      "run",
      "-A",
      join(REPO, "phases/verify.ts"),
      "--config",
      ws.configPath,
    ], {});
    assertEquals(verify.code, 0, verify.stdout + verify.stderr);
    assertEquals(await countParquet(join(ws.dir, "dataset")), 10);
    await Deno.remove(ws.dir, { recursive: true });
  });
}

Deno.test("slurm: MPICH under srun --mpi=pmix or --mpi=none refuses to run as lone ranks", async () => {
  const ws = await planned(3, 3);
  for (const plugin of ["pmix", "none"]) {
    // The plugin cannot serve MPICH: MPI_Init gives every task a world of 1.
    const env = { DT_MPI_LIBRARY: "libmpich.so.12" };
    const check = await srun(3, plugin, "phases/mpi_check.ts", [], env);
    assertEquals(check.code, 2, `${plugin}: ${check.stdout}${check.stderr}`);
    assertMatch(check.stderr, /which means 3 processes, but MPICH .* reports 1/);
    assert(!/mpi-check: OK/.test(check.stdout), check.stdout);
    const run = await srun(3, plugin, "phases/run.ts", ["--config", ws.configPath], env);
    assertEquals(run.code, 2, `${plugin}: ${run.stdout}${run.stderr}`);
    assertMatch(run.stderr, /reports 1: the library does not match the launcher/);
  }
  // Nothing was copied and nothing was logged.
  assertEquals(await countParquet(join(ws.dir, "dataset")), 0);
  const logs: string[] = [];
  try {
    for await (const e of Deno.readDir(join(ws.tool, "verification"))) logs.push(e.name);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  assertEquals(logs, []);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("slurm: a script submitted by hand finds the repository and reports a missing config", async () => {
  const c = await slurm();
  const ws = await tree({ partitions: 2, workersPerNode: 2 });
  const out = join(ws.dir, "by-hand-%j.out");
  // No DT_HOME, submitted from another folder: the script finds the repository from the
  // job's Command (sbatch runs a copy of it from the spool folder).
  const vars = `PATH,SLURM_CONF`;
  const byHand = (exported: string) =>
    cleanCommand(
      "sbatch",
      [
        "--parsable",
        `--export=${exported}`,
        `--output=${out}`,
        join(REPO, "slurm/tools_filter.slurm"),
      ],
      c.env,
      { timeoutMs: 30_000, cwd: ws.dir },
    );
  const ok = await byHand(`${vars},CONFIG_PATH=${ws.configPath}`);
  assertEquals(ok.code, 0, ok.stderr);
  const missing = await byHand(vars);
  assertEquals(missing.code, 0, missing.stderr);
  const [okId, missingId] = [ok.stdout.trim(), missing.stdout.trim()];
  const so = await waitForJob(c.env, okId, { timeoutMs: 60_000, jobCompLog: c.jobCompLog });
  const sm = await waitForJob(c.env, missingId, { timeoutMs: 60_000, jobCompLog: c.jobCompLog });
  const okText = await Deno.readTextFile(out.replace("%j", okId));
  assertEquals([so.state, so.exitCode], ["COMPLETED", 0], okText);
  assertMatch(okText, new RegExp(`repository ${REPO}; site ${REPO}/slurm/site.sh`));
  assertMatch(okText, /filter: 2 partitions seen, 2 completed/);
  assertMatch(okText, /exit 0: done/);
  const missingText = await Deno.readTextFile(out.replace("%j", missingId));
  assertEquals([sm.state, sm.exitCode], ["FAILED", 2], missingText);
  assertMatch(missingText, /error: CONFIG_PATH is not set/);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("slurm: a run lock named by a job still running on another node blocks the next run until that job ends", async () => {
  const c = await slurm();
  const ws = await planned(2, 2);
  // A running job stands for rank 0 of a run on another node, where an flock of this node
  // may not reach (Lustre with localflock): its name in the lock file decides.
  const held = await cleanCommand("sbatch", [
    "--parsable",
    "-o",
    "/dev/null",
    `--partition=${c.partition}`,
    "--wrap",
    "sleep 300",
  ], c.env);
  assertEquals(held.code, 0, held.stderr);
  const job = held.stdout.trim().split(";")[0];
  try {
    const until = Date.now() + 60_000;
    let state = "";
    while (state !== "RUNNING" && Date.now() < until) {
      const q = await slurmCommand(c.env, "squeue", ["-h", "-j", job, "-o", "%T"]);
      state = q.stdout.trim();
      if (state !== "RUNNING") await new Promise((r) => setTimeout(r, 200));
    }
    assertEquals(state, "RUNNING", `job ${job} runs`);
    const lock = join(ws.tool, "run.lock");
    await Deno.writeTextFile(
      lock,
      JSON.stringify({ writer: `${job}@other-node@4242`, ranks: 4, startedAt: "earlier" }),
    );
    const run = () =>
      cleanCommand(Deno.execPath(), [
        "run",
        "-A",
        join(REPO, "phases/run.ts"),
        "--config",
        ws.configPath,
      ], c.env);
    const refused = await run();
    assertEquals(refused.code, 2, refused.stdout + refused.stderr);
    assertMatch(
      refused.stderr,
      new RegExp(
        `^error: another run is working on this tool folder: Slurm job ${job}, rank 0 on host ` +
          `other-node \\(pid 4242\\), 4 rank\\(s\\), started earlier; wait for it to end or stop ` +
          `it \\(scancel ${job}\\), then run again \\(it holds ${lock}\\)$`,
        "m",
      ),
    );
    assertEquals(await countParquet(join(ws.dir, "dataset")), 0, "nothing copied");
    await slurmCommand(c.env, "scancel", [job]);
    await waitForJob(c.env, job, { timeoutMs: 60_000, jobCompLog: c.jobCompLog });
    const after = await run();
    assertEquals(after.code, 0, after.stdout + after.stderr);
    assertEquals(await countParquet(join(ws.dir, "dataset")), 4);
  } finally {
    await slurmCommand(c.env, "scancel", [job]);
  }
  await Deno.remove(ws.dir, { recursive: true });
});

const SITE: SiteSettings = {
  path: "/site/site.sh",
  sbatchArgs: ["--account=proj", "--partition=cpu"],
  phaseArgs: { filter: ["--time=04:00:00"], scheduler: [], worker: ["--exclusive"], verifier: [] },
};

Deno.test("slurm: --dry-run prints a runnable chain; resets and skips follow the checkpoint", async () => {
  const ws = await tree({ partitions: 1, workersPerNode: 2 });
  await setNumWorkers(ws, 3);
  const dry = await submitOffline(
    ["--config", ws.configPath, "--dry-run", "--worker-time", "1-00:00:00"],
    { DT_SITE: `${REPO}/slurm/site.sh` },
  );
  assertEquals(dry.code, 0, dry.stderr);
  const lines = dry.stdout.trimEnd().split("\n");
  const o = `${ws.tool}/logs/slurm`;
  const exp = `--export=ALL,DT_HOME=${REPO},CONFIG_PATH=${ws.configPath},` +
    `DT_SITE=${REPO}/slurm/site.sh`;
  const common = `--output=${o}/%x-%j.out ${exp}`;
  const s = (name: string) => `${REPO}/slurm/tools_${name}.slurm`;
  const w = "--nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=1-00:00:00";
  assertEquals(lines, [
    "# dry run: nothing submitted; checkpoint and job_history.csv unchanged",
    `mkdir -p ${o}`,
    `filter=$(sbatch --parsable ${common} ${s("filter")})`,
    `scheduler=$(sbatch --parsable --dependency=afterany:$filter ${common} ${s("scheduler")})`,
    `worker_1=$(sbatch --parsable --dependency=afterany:$scheduler ${common} ${w} ${s("worker")})`,
    `worker_2=$(sbatch --parsable --dependency=afterany:$worker_1 ${common} ${w} ${s("worker")})`,
    `worker_3=$(sbatch --parsable --dependency=afterany:$worker_2 ${common} ${w} ${s("worker")})`,
    `verifier=$(sbatch --parsable --dependency=afterany:$worker_3 ${common} ${s("verifier")})`,
  ]);
  await Deno.stat(join(ws.tool, "job_history.csv")).then(
    () => assert(false, "a dry run must not write job_history.csv"),
    () => {},
  );
  // The site file's settings as sbatch arguments, and the bash script it prints runs (with a
  // fake sbatch that echoes its arguments).
  const sitePath = join(ws.dir, "site.sh");
  await Deno.writeTextFile(
    sitePath,
    "DT_SBATCH_ARGS=(--account=proj '--comment=two words')\nDT_SBATCH_ARGS_WORKER=(--exclusive)\n" +
      "DT_WORKER_TIME=02:00:00\ndt_site_setup() { echo must-not-run; }\n",
  );
  const site = await readSiteSettings(sitePath);
  assertEquals(site.sbatchArgs, ["--account=proj", "--comment=two words"]);
  assertEquals(site.phaseArgs.worker, ["--exclusive"]);
  assertEquals(site.workerTime, "02:00:00");
  const config = await loadConfig(ws.configPath);
  const plan = planSubmission(config, {}, { home: REPO, site });
  const fake = join(ws.dir, "bin");
  await Deno.mkdir(fake);
  await Deno.writeTextFile(
    join(fake, "sbatch"),
    `#!/bin/bash\necho "$*" >> ${ws.dir}/calls\necho $((1000 + $(wc -l < ${ws.dir}/calls)))\n`,
    { mode: 0o755 },
  );
  const script = formatDryRun(plan).join("\n") + "\necho $verifier\n";
  const ran = await cleanCommand("bash", ["-c", script], { PATH: `${fake}:/usr/bin:/bin` });
  assertEquals([ran.code, ran.stdout.trim()], [0, "1006"], ran.stderr);
  const calls = (await Deno.readTextFile(join(ws.dir, "calls"))).trimEnd().split("\n");
  assertEquals(calls.length, 6);
  assertMatch(calls[0], /^--parsable --account=proj --comment=two words --output=/);
  assertMatch(calls[2], /--dependency=afterany:1002 .* --exclusive .* --time=02:00:00 /);
  assertMatch(calls[5], /^--parsable --dependency=afterany:1005 .*tools_verifier.slurm$/);

  // Skips follow the checkpoint; resets clear flags and bring the phases back.
  const keys = (cp: Record<string, unknown>, o: Record<string, unknown> = {}) =>
    planSubmission(config, cp, { home: REPO, site: SITE, ...o }).jobs.map((j) => j.key);
  const all = ["filter", "scheduler", "worker_1", "worker_2", "worker_3", "verifier"];
  const done = { filtering_completed: true, scheduling_completed: true, completed: true };
  assertEquals(keys({}), all);
  assertEquals(keys({ filtering_completed: true }), all.slice(1));
  assertEquals(keys({ filtering_completed: true, scheduling_completed: true }), all.slice(2));
  assertEquals(keys(done), []);
  assertEquals(keys(done, { resetRunners: true }), all.slice(2));
  assertEquals(keys(done, { resetScheduling: true }), all.slice(1));
  assertEquals(keys(done, { resetFiltering: true }), all);
  const p = planSubmission(config, done, { home: REPO, site: SITE, resetFiltering: true });
  assertEquals(p.resets, { filtering_completed: false, scheduling_completed: false });
  assertEquals(p.jobs[0].args.slice(0, 3), [
    "--account=proj",
    "--partition=cpu",
    "--time=04:00:00",
  ]);
  assertEquals(p.jobs[2].args.slice(2, 3), ["--exclusive"]);
  assertEquals(p.jobs[2].args.at(-1), "--time=03:00:00");
  assertMatch(
    formatDryRun(p).join("\n"),
    /# would set to false in tool_checkpoint.yaml: filtering_completed, scheduling_completed/,
  );

  // submitChain with a fake sbatch: resets applied, ids recorded, a refusal names the job.
  await Deno.mkdir(ws.tool, { recursive: true });
  await Deno.writeTextFile(
    join(ws.tool, "tool_checkpoint.yaml"),
    "filtering_completed: true\nscheduling_completed: true\ncompleted: true\nextra: kept\n",
  );
  let next = 500;
  const printed: string[] = [];
  const res = await submitChain(config, { home: REPO, site: SITE, resetScheduling: true }, {
    sbatch: (argv) => {
      if (argv.some((a) => a.endsWith("tools_verifier.slurm")) && next > 502) {
        return Promise.reject(new Error("sbatch: error: QOSMaxSubmitJobPerUserLimit"));
      }
      return Promise.resolve(String(next++));
    },
    print: (l) => printed.push(l),
    ignoreActive: true,
  }).catch((e) => e as Error);
  assert(res instanceof Error, "the verifier's refusal must fail the submission");
  assertMatch(res.message, /^verifier: sbatch: error: QOSMaxSubmitJobPerUserLimit/);
  assertEquals(printed, [
    "filter: skipped, the checkpoint says filtering_completed",
    "checkpoint: set to false: scheduling_completed",
    "scheduler: submitted job 500",
    "worker 1/3: submitted (after 500) job 501",
    "worker 2/3: submitted (after 501) job 502",
    "worker 3/3: submitted (after 502) job 503",
  ]);
  const cp = await checkpointOf(ws);
  assertEquals(cp, {
    filtering_completed: true,
    scheduling_completed: false,
    completed: true,
    extra: "kept",
  });
  const hist = await readJobHistory(join(ws.tool, "job_history.csv"));
  assertEquals(hist.map((h) => `${h.phase}:${h.job_id}:${h.dependency}`), [
    "scheduler:500:",
    "worker:501:500",
    "worker:502:501",
    "worker:503:502",
  ]);
  // An existing history with other columns keeps them.
  const other = join(ws.dir, "other.csv");
  await Deno.writeTextFile(other, "job_id,phase,note\n1,x,y");
  await appendJobHistory(other, [{ job_id: "7", phase: "worker", script: "s" }]);
  assertEquals(await Deno.readTextFile(other), "job_id,phase,note\n1,x,y\n7,worker,\n");

  assertEquals(parseSbatchTime("90"), 5400);
  assertEquals(parseSbatchTime("1-2"), 93600);
  assertEquals(parseSbatchTime("90s"), null);
  const bad = await submitOffline(["--config", ws.configPath, "--dry-run", "--worker-time", "3h"]);
  assertEquals(bad.code, 2);
  assertMatch(bad.stderr, /worker time "3h" is not an sbatch time limit/);
  await Deno.remove(ws.dir, { recursive: true });
});
