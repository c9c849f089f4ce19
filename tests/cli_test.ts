/**
 * The command line of the entry points: the MPI note only where MPI is used, options named
 * plainly when unknown, the toolbox's underscore spellings, the first missing step named,
 * `--help` of the MD5 benchmark.
 * @module
 */

import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { join } from "node:path";
import { addPartition, makeWorkspace, REPO, runScript } from "./support/fixture.ts";
import type { Workspace } from "./support/fixture.ts";
import { runCommandOrFail } from "./support/command.ts";
import { cleanEnv } from "./support/mpi_launch.ts";

const NOTE = /no MPI launcher detected/;

/** Runs an entry point as one process, outside any MPI launcher or Slurm job. */
async function alone(script: string, args: string[]) {
  return await runCommandOrFail(Deno.execPath(), ["run", "-A", join(REPO, script), ...args], {
    env: cleanEnv(),
    clearEnv: true,
  });
}

async function ready(): Promise<Workspace> {
  const ws = await makeWorkspace();
  await addPartition(ws, "a.org%3A80", 0);
  await addPartition(ws, "b.net", 1);
  return ws;
}

Deno.test("cli: --help, bad options and phases without MPI never print the MPI note; runs that use MPI do", async () => {
  for (const script of ["phases/run.ts", "phases/verify.ts"]) {
    const help = await alone(script, ["--help"]);
    assertEquals(help.code, 0, help.stderr);
    assertMatch(help.stdout, /^Usage: deno task (run|verify) \[options\]/);
    assertEquals(help.stderr, "", `${script} --help: nothing on stderr`);
    const bad = await alone(script, ["--x"]);
    assertEquals(bad.code, 2);
    assertEquals(bad.stderr, `error: ${script.slice(7, -3)}: unknown option --x; see --help\n`);
  }
  const ws = await ready();
  const args = ["--config", ws.configPath];
  for (const script of ["phases/filter.ts", "phases/schedule.ts"]) {
    assertEquals((await alone(script, args)).code, 0);
  }
  const run = await alone("phases/run.ts", args);
  assertEquals(run.code, 0, run.stderr);
  assertMatch(run.stderr, NOTE, "a run as one process says it runs without MPI");
  const verify = await alone("phases/verify.ts", args);
  assertEquals(verify.code, 0, verify.stdout + verify.stderr);
  assertEquals(verify.stderr, "", "plain verify never opens MPI");
  const deep = await alone("phases/verify.ts", [...args, "--deep"]);
  assertEquals(deep.code, 0, deep.stdout + deep.stderr);
  assertMatch(deep.stderr, NOTE, "verify --deep as one process says so");
  const repairAlone = await alone("phases/verify.ts", [...args, "--repair"]);
  assertEquals(repairAlone.code, 2);
  assertMatch(repairAlone.stderr, /^error: verify: --repair acts on what the deep check finds/);
  const status = await alone("phases/status.ts", args);
  assertEquals([status.code, status.stderr], [0, ""]);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("cli: a step run too early names the first step missing", async () => {
  const ws = await ready();
  const args = ["--config", ws.configPath];
  for (const script of ["phases/schedule.ts", "phases/run.ts", "phases/verify.ts"]) {
    const r = await alone(script, args);
    assertEquals(r.code, 2, `${script}: ${r.stderr}`);
    assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
    assertMatch(r.stderr, /filtering is not completed; run 'deno task filter' first$/m, script);
  }
  assertEquals((await alone("phases/filter.ts", args)).code, 0);
  for (const script of ["phases/run.ts", "phases/verify.ts"]) {
    const r = await alone(script, args);
    assertEquals(r.code, 2, `${script}: ${r.stderr}`);
    assertMatch(r.stderr, /run 'deno task schedule' first$/m, script);
  }
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("cli: submit takes the toolbox's spellings --reset_filtering, --reset_scheduling, --reset_runners", async () => {
  const ws = await ready();
  await Deno.mkdir(ws.tool, { recursive: true });
  await Deno.writeTextFile(
    join(ws.tool, "tool_checkpoint.yaml"),
    "filtering_completed: true\nscheduling_completed: true\ncompleted: true\n",
  );
  const cases: Array<[string, string, string]> = [
    ["--reset_filtering", "filtering_completed, scheduling_completed", "filter"],
    ["--reset_scheduling", "scheduling_completed", "scheduler"],
    ["--reset_runners", "completed", "worker_1"],
  ];
  for (const [flag, cleared, first] of cases) {
    const r = await runScript("phases/submit.ts", ["--config", ws.configPath, flag, "--dry_run"], {
      env: { DT_SITE: join(REPO, "slurm", "site.sh") },
    });
    assertEquals(r.code, 0, `${flag}: ${r.stderr}`);
    assertMatch(
      r.stdout,
      new RegExp(`^# would set to false in tool_checkpoint\\.yaml: ${cleared}$`, "m"),
    );
    assertMatch(r.stdout, new RegExp(`^${first}=\\$\\(sbatch `, "m"));
  }
  const help = await runScript("phases/submit.ts", ["--help"]);
  assertMatch(
    help.stdout,
    /also be spelled with underscores, as the toolbox does \(--reset_filtering\)/,
  );
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("cli: bench-md5 --help prints its usage and measures nothing", async () => {
  const r = await runScript("tools/bench_md5.ts", ["--help"]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stdout, /^Usage: deno task bench-md5 \[options\]/);
  assertMatch(r.stdout, /--seconds N/);
  assert(!r.stdout.includes("GiB/s"), "no measurement was printed");
  const bad = await runScript("tools/bench_md5.ts", ["--secs", "1"]);
  assertEquals([bad.code, bad.stderr], [
    2,
    "error: bench-md5: unknown option --secs; see --help\n",
  ]);
});
