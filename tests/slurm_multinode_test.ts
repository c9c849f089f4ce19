/**
 * Multi-node paths on the local two-node cluster (tests/support/local_slurm.ts: nodes n1 and
 * n2, one slurmd each, on this machine). srun places two tasks on each node and both MPIs run
 * across them. Then, under MPICH (`srun --mpi=pmi2`) and Open MPI (`srun --mpi=pmix`),
 * `deno task submit` carries a generated tree through filter, scheduler, one worker job of
 * 2 nodes x 2 ranks, and the verifier, while writers on n1 and on n2 have left temporaries in
 * every dataset folder (of jobs that ended, and of jobs still running). The tests check what a
 * user would see: ranks on both nodes, each temporary swept or kept by a rank on either node
 * as its writer's job says, a progress line that adds up all 4 ranks, a summary of all 4, and
 * a dataset byte-identical to the sources (md5sum -c, DuckDB); once the running writers end,
 * the next run (across both nodes) sweeps what they left and a deep verify finds nothing.
 * Never skips.
 */

import { dirname, join } from "node:path";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { addPartition, makeWorkspace, REPO } from "./support/fixture.ts";
import type { Workspace } from "./support/fixture.ts";
import { cleanEnv } from "./support/mpi_launch.ts";
import { lazyLocalSlurm } from "./support/local_slurm.ts";
import {
  cleanCommand,
  sbatch,
  slurmCommand,
  submittedJobIds,
  submittedJobOutput,
  waitForJob,
} from "./support/slurm_job.ts";
import type { JobState } from "./support/slurm_job.ts";
import type { CommandResult } from "./support/command.ts";
import { countRowsWithDuckdb } from "./support/parquet_readers.ts";
import { makeGate, openGate, RUN_DRIVER, waitPaused } from "./support/run_gate.ts";
import { readSchedule } from "../core/plan/plan_table.ts";
import type { ScheduleRow } from "../core/plan/plan_table.ts";
import { parseTemporaryName } from "../core/layout.ts";
import { currentToken, parseToken } from "../core/transfer/temporaries.ts";
import { shellQuote } from "../core/shell_quote.ts";
import type { RankProgress } from "../core/transfer/progress.ts";
import type { RunSummary } from "../core/transfer/run_summary.ts";

const NODES = 2;
const RANKS_PER_NODE = 2;
const RANKS = NODES * RANKS_PER_NODE;

const slurm = lazyLocalSlurm();

/** `srun` of `argv` over both nodes, 2 tasks each, outside any job. */
async function srunBothNodes(argv: string[], mpi?: string): Promise<CommandResult> {
  const c = await slurm();
  return await cleanCommand("srun", [
    `--nodes=${NODES}`,
    `--ntasks-per-node=${RANKS_PER_NODE}`,
    ...(mpi ? [`--mpi=${mpi}`] : []),
    "--time=10", // more than the default time_margin_seconds (300)
    ...argv,
  ], c.env);
}

/** `deno run -A <repo>/<script> ARGS`. */
function deno(script: string, ...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", join(REPO, script), ...args];
}

Deno.test("slurm multinode: writer token names the Slurm node (SLURMD_NODENAME), else the host", () => {
  assertEquals(currentToken({ SLURM_JOB_ID: "7", SLURMD_NODENAME: "n2" }), {
    job: "7",
    host: "n2",
    pid: Deno.pid,
  });
  assertEquals(currentToken({}), { job: "none", host: Deno.hostname(), pid: Deno.pid });
});

Deno.test("slurm multinode: srun puts 2 tasks on each of n1 and n2; mpi_check passes across both nodes with MPICH and Open MPI", async () => {
  const c = await slurm();
  assertEquals(c.nodeNames, ["n1", "n2"]);
  const s = await slurmCommand(c.env, "sinfo", ["-h", "-N", "-o", "%N %P %c"]);
  assertEquals(
    s.stdout.trim().split("\n"),
    c.nodeNames.map((n) => `${n} ${c.partition}* ${c.cpus}`),
  );
  const where = await srunBothNodes(["bash", "-c", 'echo "$SLURM_PROCID $SLURMD_NODENAME"']);
  assertEquals(where.code, 0, where.stderr);
  assertEquals(where.stdout.trim().split("\n").sort(), ["0 n1", "1 n1", "2 n2", "3 n2"]);
  for (const [impl, plugin] of [["MPICH", "pmi2"], ["Open MPI", "pmix"]]) {
    const check = await srunBothNodes(deno("phases/mpi_check.ts"), plugin);
    assertEquals(check.code, 0, `${plugin}: ${check.stdout}${check.stderr}`);
    assertMatch(check.stdout, new RegExp(`^implementation: ${impl}$`, "m"));
    for (let r = 0; r < RANKS; r++) {
      assertMatch(check.stdout, new RegExp(`^rank ${r}/${RANKS}$`, "m"));
    }
    assertMatch(check.stdout, /^mpi-check: OK$/m);
  }
});

/** A writer job pinned to a node that leaves a temporary for each of `destinations`. */
interface Writer {
  node: string;
  /** `exit`: its job ends at once (a crashed writer); `hold`: its job keeps running. */
  mode: "exit" | "hold";
  jobId: string;
}

async function startWriter(
  ws: Workspace,
  node: string,
  mode: Writer["mode"],
  destinations: string[],
): Promise<Writer> {
  const c = await slurm();
  const argv = deno("tests/fixtures/temporary_writer_driver.ts", mode, ...destinations);
  const jobId = await sbatch(c.env, [
    `--nodelist=${node}`,
    `--output=${ws.dir}/writer-%j.out`,
    "--wrap",
    argv.map(shellQuote).join(" "),
  ], { cwd: ws.dir, env: cleanEnv() });
  return { node, mode, jobId };
}

/** Temporaries in `folders` (a folder not made yet has none), by path. */
async function temporariesIn(folders: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const folder of folders) {
    try {
      for await (const e of Deno.readDir(folder)) {
        if (parseTemporaryName(e.name) !== null) found.push(join(folder, e.name));
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return found.sort();
}

/** The writer token in a temporary's name. */
function tokenOf(path: string) {
  const parsed = parseTemporaryName(path.slice(path.lastIndexOf("/") + 1));
  const token = parsed && parseToken(parsed.token);
  assert(token, `not a temporary of this tool: ${path}`);
  return token;
}

/** Waits (up to 60 s) until `writer` has written its temporaries; returns their paths. */
async function waitForTemporaries(
  writer: Writer,
  folders: readonly string[],
): Promise<string[]> {
  const until = Date.now() + 60_000;
  for (;;) {
    const mine = (await temporariesIn(folders)).filter((p) => tokenOf(p).job === writer.jobId);
    if (mine.length === folders.length) return mine;
    if (Date.now() > until) {
      throw new Error(
        `writer job ${writer.jobId} on ${writer.node} wrote ${mine.length} temporaries`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Node and log text of each rank of job `jobId`, from the rank logs `run_rank<r>_<token>.log`. */
async function rankLogs(
  ws: Workspace,
  jobId: string,
): Promise<Map<number, { node: string; text: string }>> {
  const logs = new Map<number, { node: string; text: string }>();
  for await (const e of Deno.readDir(join(ws.tool, "logs"))) {
    const m = /^run_rank(\d+)_(.+)\.log$/.exec(e.name);
    const token = m && parseToken(m[2]);
    if (!m || !token || token.job !== jobId) continue;
    const text = await Deno.readTextFile(join(ws.tool, "logs", e.name));
    logs.set(Number(m[1]), { node: token.host, text });
  }
  return logs;
}

async function md5sumCheck(root: string): Promise<string[]> {
  const r = await cleanCommand("md5sum", ["-c", "--strict", "_MD5SUMS"], {}, { cwd: root });
  assertEquals(r.code, 0, `md5sum -c in ${root}: ${r.stdout}${r.stderr}`);
  return r.stdout.trim().split("\n");
}

for (const [impl, plugin] of [["MPICH", "pmi2"], ["Open MPI", "pmix"]] as const) {
  Deno.test(`slurm multinode: submit with a worker of 2 nodes x 2 ranks (${impl}, srun --mpi=${plugin}): ranks on both nodes, temporaries of writers on either node swept or kept, progress of all 4 ranks, verified dataset`, async () => {
    const started = Date.now();
    const c = await slurm();
    const ws = await makeWorkspace({
      maxNodes: NODES,
      workersPerNode: RANKS_PER_NODE,
      // One file at a time per rank, a progress line every second.
      transfer: { files_in_flight: 1, progress_interval_seconds: 1 },
    });
    for (let p = 0; p < 8; p++) {
      await addPartition(ws, p % 2 ? "img.example.org:8080" : "cdn.example.com", p, {
        successes: 40_000 + p * 5_000,
        errors: 900,
        seed: p,
      });
    }
    const site = join(ws.dir, "site.sh");
    const gate = await makeGate();
    await Deno.writeTextFile(
      site,
      `DT_SBATCH_ARGS=(--partition=${c.partition})\nDT_DENO=${shellQuote(Deno.execPath())}\n` +
        `DT_MPI_LAUNCH=(srun --mpi=${plugin})\nDT_WORKER_TIME=10\n` +
        // The worker runs the test driver: every rank pauses at the gate before its second
        // file, so that rank 0 shows progress lines while all 4 ranks are mid-run.
        `DT_RUN_ENTRY=(${shellQuote(join(REPO, RUN_DRIVER))} --gate ${shellQuote(gate)} ` +
        `--pause-after 1)\n`,
    );
    // Nothing starts before the worker is held: the chain waits for a held job.
    const blocker = await sbatch(c.env, ["--hold", "--output=/dev/null", "--wrap", "true"], {
      cwd: ws.dir,
      env: cleanEnv(),
    });
    let released = false;
    const writers: Writer[] = [];
    try {
      const r = await cleanCommand(Deno.execPath(), [
        "run",
        "-A",
        join(REPO, "phases/submit.ts"),
        "--config",
        ws.configPath,
        "--after",
        blocker,
      ], { ...c.env, DT_SITE: site });
      assertEquals(r.code, 0, r.stdout + r.stderr);
      const ids = submittedJobIds(r.stdout);
      assertEquals([...ids.keys()], ["filter", "scheduler", "worker 1/1", "verifier"]);
      const workerId = ids.get("worker 1/1")!;
      const held = await slurmCommand(c.env, "scontrol", ["hold", workerId]);
      assertEquals(held.code, 0, held.stderr);
      assertEquals((await slurmCommand(c.env, "scontrol", ["release", blocker])).code, 0);
      released = true;

      const jobLogs = join(ws.tool, "logs", "slurm");
      const wait = (id: string) =>
        waitForJob(c.env, id, { timeoutMs: 150_000, jobCompLog: c.jobCompLog });
      const states = new Map<string, JobState>();
      for (const label of ["filter", "scheduler"]) {
        const s = await wait(ids.get(label)!);
        states.set(label, s);
        assertEquals(
          [label, s.state, s.exitCode],
          [label, "COMPLETED", 0],
          await submittedJobOutput(jobLogs, s.jobId),
        );
      }

      // Writers on both nodes leave a temporary of one planned file in every dataset folder:
      // two whose jobs end at once, two whose jobs keep running.
      const schedule = await readSchedule(join(ws.tool, "schedule.csv"));
      assertEquals(schedule.length, 16);
      const folders = [...new Set(schedule.map((row) => dirname(row.dstPath)))].sort();
      assertEquals(folders.length, 4, "2 servers x (images, errors)");
      const victims = folders.map((f) =>
        schedule.map((row) => row.dstPath).filter((d) => dirname(d) === f).sort()[0]
      );
      for (const node of c.nodeNames) {
        for (const mode of ["exit", "hold"] as const) {
          writers.push(await startWriter(ws, node, mode, victims));
        }
      }
      const temporaries = new Map<string, Writer>();
      for (const w of writers) {
        if (w.mode === "exit") {
          const s = await wait(w.jobId);
          const out = await Deno.readTextFile(join(ws.dir, `writer-${w.jobId}.out`));
          assertEquals([s.state, s.exitCode], ["COMPLETED", 0], out);
        }
        for (const p of await waitForTemporaries(w, folders)) {
          assertEquals(tokenOf(p).host, w.node, `the token of ${p} names its writer's node`);
          temporaries.set(p, w);
        }
      }
      assertEquals(temporaries.size, 16);

      assertEquals((await slurmCommand(c.env, "scontrol", ["release", workerId])).code, 0);
      // All 4 ranks, on both nodes, pause mid-run; rank 0's ticker goes on, so a progress line
      // that adds up the snapshots of all 4 ranks appears while they wait; then they go on.
      let workerEnded = false;
      const workerDone = wait(workerId).finally(() => workerEnded = true);
      await waitPaused(gate, [...Array(RANKS).keys()], () => !workerEnded, 150_000);
      const progressOf4 = new RegExp(`^progress: .*\\(${RANKS} ranks reporting\\)$`, "m");
      while (!progressOf4.test(await submittedJobOutput(jobLogs, workerId).catch(() => ""))) {
        assert(!workerEnded, "the worker ended while its ranks were paused");
        await new Promise((r) => setTimeout(r, 100));
      }
      await openGate(gate);
      await workerDone;
      for (const label of ["worker 1/1", "verifier"]) {
        states.set(label, await wait(ids.get(label)!));
      }
      const outputs = new Map<string, string>();
      for (const [label, s] of states) {
        outputs.set(label, await submittedJobOutput(jobLogs, s.jobId));
      }
      const text = [...states].map(([label, s]) =>
        `--- ${label}: job ${s.jobId} ${s.state} ${s.exitCode}\n${outputs.get(label)}`
      ).join("\n");
      for (const [label, s] of states) {
        assertEquals([label, s.state, s.exitCode], [label, "COMPLETED", 0], text);
      }
      const worker = outputs.get("worker 1/1")!;
      assertMatch(worker, new RegExp(`run: ${RANKS} rank\\(s\\), MPI ${impl}`));
      assertMatch(
        worker,
        /run: 16 files copied and verified, 0 found already published, 0 verified before, 0 failed, 0 left/,
      );
      assertMatch(outputs.get("verifier")!, /verify: complete/);

      // Rank placement: two ranks on each node, as the rank logs' writer tokens say.
      const ranks = await rankLogs(ws, workerId);
      assertEquals([...ranks.keys()].sort(), [0, 1, 2, 3], text);
      const perNode = c.nodeNames.map((n) =>
        [...ranks.values()].filter((r) => r.node === n).length
      );
      assertEquals(perNode, [RANKS_PER_NODE, RANKS_PER_NODE], "ranks per node");

      // Temporaries: each one of a writer whose job ended was removed, each one of a writer
      // whose job still runs was kept, by a rank on the writer's node (which looks up the pid)
      // and by a rank on the other node (which asks Slurm about the job).
      const seen = new Set<string>();
      for (const [path, w] of temporaries) {
        const removed = `removed leftover temporary ${path}\n`;
        const kept = `kept temporary ${path}: its writer may still be running\n`;
        const by = [...ranks].filter(([, r]) => r.text.includes(removed) || r.text.includes(kept));
        assertEquals(by.length, 1, `one rank sweeps ${path}`);
        const [rank, log] = by[0];
        const outcome = log.text.includes(removed) ? "removed" : "kept";
        assertEquals(outcome, w.mode === "exit" ? "removed" : "kept", `rank ${rank}: ${path}`);
        seen.add(`${outcome} on ${log.node} a temporary of ${w.node}`);
      }
      assertEquals([...seen].sort(), [
        "kept on n1 a temporary of n1",
        "kept on n1 a temporary of n2",
        "kept on n2 a temporary of n1",
        "kept on n2 a temporary of n2",
        "removed on n1 a temporary of n1",
        "removed on n1 a temporary of n2",
        "removed on n2 a temporary of n1",
        "removed on n2 a temporary of n2",
      ]);
      const running = [...temporaries].filter(([, w]) => w.mode === "hold").map(([p]) => p).sort();
      assertEquals(await temporariesIn(folders), running, "only the running writers' temporaries");

      // Progress from every node: rank 0 added up the snapshots of all 4 ranks, each of which
      // ends with what it did out of the run's 16 files; the summary gathers all 4.
      const reporting = [...worker.matchAll(/^progress: .*\((\d+) ranks reporting\)$/gm)]
        .map((m) => Number(m[1]));
      assert(reporting.includes(RANKS), `no progress line of ${RANKS} ranks:\n${worker}`);
      const snapshots: RankProgress[] = [];
      for (let rank = 0; rank < RANKS; rank++) {
        const path = join(ws.tool, "logs", `progress_rank${rank}.json`);
        snapshots.push(JSON.parse(await Deno.readTextFile(path)));
      }
      for (const p of snapshots) {
        assertEquals([p.rank, p.filesTotal, p.failed], [p.rank, 16, 0], "snapshot");
      }
      assertEquals(snapshots.reduce((n, p) => n + p.filesDone, 0), 16);
      const summary: RunSummary = JSON.parse(
        await Deno.readTextFile(join(ws.tool, "run_summary.json")),
      );
      assertEquals([summary.size, summary.done, summary.failed], [RANKS, 16, 0]);
      assertEquals(summary.ranks.map((r) => r.rank), [0, 1, 2, 3]);
      assertEquals(summary.ranks.reduce((n, r) => n + r.assigned, 0), 16);
      for (const r of summary.ranks) {
        // Its own files it copied, and no more than its share; the rest it took over.
        const own = r.done - r.takenFromOthers;
        assert(own >= 0 && own <= r.assigned, `rank ${r.rank}: ${JSON.stringify(r)}`);
      }
      // Balancing at run time across both nodes: the worker job's lib.sh gives Open MPI 4 its
      // pt2pt window component, so the window is made under both MPIs.
      assertEquals([summary.stealing, summary.stealingOff], [true, null], text);
      assert(!worker.includes("balancing at run time is off"), worker);

      // The dataset: byte-identical copies, _MD5SUMS checked by md5sum, rows read by DuckDB.
      await assertDataset(ws, schedule);

      // Once the running writers end, the next run (over both nodes again) sweeps what they
      // left, and a deep verify across both nodes finds nothing wrong.
      for (const w of writers.filter((w) => w.mode === "hold")) {
        await slurmCommand(c.env, "scancel", [w.jobId]);
        assertEquals((await wait(w.jobId)).state, "CANCELLED");
      }
      const again = await srunBothNodes(deno("phases/run.ts", "--config", ws.configPath), plugin);
      assertEquals(again.code, 0, again.stdout + again.stderr);
      // Outside the worker job nothing sets OMPI_MCA_osc: Open MPI 4's default window component
      // may refuse a window across nodes; the run then goes on and says what to set.
      const rerun: RunSummary = JSON.parse(
        await Deno.readTextFile(join(ws.tool, "run_summary.json")),
      );
      if (!rerun.stealing) {
        assertMatch(rerun.stealingOff ?? "", /one-sided window.*OMPI_MCA_osc=pt2pt/);
        assertMatch(again.stderr, /^warning: run: balancing at run time is off: .*OMPI_MCA_osc/m);
      }
      console.log(
        `  ${impl}: a run over both nodes outside the worker job: ` +
          (rerun.stealing ? "balancing at run time on" : `off (${rerun.stealingOff})`),
      );
      assertMatch(again.stdout, /run: 0 files copied and verified, .* 16 verified before/);
      assertEquals(await temporariesIn(folders), [], "every temporary swept");
      const deep = await srunBothNodes(
        deno("phases/verify.ts", "--config", ws.configPath, "--deep"),
        plugin,
      );
      assertEquals(deep.code, 0, deep.stdout + deep.stderr);
      assertMatch(deep.stdout, /verify: complete/);
      // The chain's wall time, less the pause while the writers were placed.
      const at = (label: string, field: "StartTime" | "EndTime") =>
        Date.parse(states.get(label)!.fields[field]) / 1000;
      const chain = at("scheduler", "EndTime") - at("filter", "StartTime") +
        at("verifier", "EndTime") - at("worker 1/1", "StartTime");
      const jobs = [...states].map(([label, _]) =>
        `${label} ${at(label, "EndTime") - at(label, "StartTime")} s`
      );
      console.log(
        `two-node chain (${impl}): ${chain} s from the filter's start to the verifier's end, ` +
          `less the pause before the worker (${jobs.join(", ")}; the worker's ranks wait at a ` +
          `gate mid-run until a progress line of all 4 shows); whole test ${
            ((Date.now() - started) / 1000).toFixed(1)
          } s`,
      );
    } finally {
      if (!released) await slurmCommand(c.env, "scancel", [blocker]);
      for (const w of writers) await slurmCommand(c.env, "scancel", [w.jobId]);
    }
    await Deno.remove(ws.dir, { recursive: true });
    await Deno.remove(gate, { recursive: true });
  });
}

/** Every scheduled file published byte for byte; md5sum and DuckDB agree with the sources. */
async function assertDataset(ws: Workspace, schedule: readonly ScheduleRow[]): Promise<void> {
  for (const row of schedule) {
    const [src, dst] = [await Deno.readFile(row.srcPath), await Deno.readFile(row.dstPath)];
    assert(
      src.length === dst.length && src.every((b, i) => b === dst[i]),
      `${row.dstPath} differs from ${row.srcPath}`,
    );
  }
  for (const root of [ws.dstImages, ws.dstErrors]) {
    const lines = await md5sumCheck(root);
    assertEquals(lines.length, 8, lines.join("\n"));
    for (const line of lines) assertMatch(line, /: OK$/);
  }
  for (const [root, source] of [[ws.dstImages, "successes"], [ws.dstErrors, "errors"]]) {
    const copied = await countRowsWithDuckdb(`${root}/*/*.parquet`, { hive: true });
    const original = await countRowsWithDuckdb(`${ws.images}/*/*/${source}.parquet`);
    assert(original > 0, `no ${source} rows`);
    assertEquals(copied, original, `${source} rows`);
  }
}
