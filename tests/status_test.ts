/**
 * `deno task status` from the files on disk: fresh, planned, scheduled, partial, failed and
 * complete states, in the JSON shape scripts read and in the table people read.
 * @module
 */

import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { join } from "node:path";
import { readSchedule, readVerificationLogs, STATUS_VERSION } from "../mod.ts";
import type { ScheduleRow, StatusReport, Tally } from "../mod.ts";
import { addPartition, makeWorkspace, runScript } from "./support/fixture.ts";
import type { Workspace } from "./support/fixture.ts";
import { mpirun } from "./support/mpi_launch.ts";
import { runWithFault } from "./support/run_faults.ts";

async function status(ws: Workspace): Promise<StatusReport> {
  const r = await runScript("phases/status.ts", ["--config", ws.configPath, "--json"]);
  assertEquals(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function step(ws: Workspace, script: string): Promise<void> {
  const r = await runScript(script, ["--config", ws.configPath]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
}

async function addPartitions(ws: Workspace, from: number, to: number): Promise<void> {
  for (let p = from; p < to; p++) {
    await addPartition(ws, ["a.org%3A80", "b.net"][p % 2], p, { successes: 9000 + p * 101 });
  }
}

const sum = (rows: readonly ScheduleRow[]): Tally => ({
  files: rows.length,
  bytes: rows.reduce((s, r) => s + r.sizeBytes, 0),
});
const none: Tally = { files: 0, bytes: 0 };

Deno.test("status: fresh, planned and scheduled states", async () => {
  const ws = await makeWorkspace();
  const fresh = await status(ws);
  assertEquals(fresh.version, STATUS_VERSION);
  assertEquals(fresh.phases, { filtering: false, scheduling: false, completed: false });
  for (const k of ["planned", "scheduled", "verified", "failed", "left", "remaining"] as const) {
    assertEquals(fresh[k], none, k);
  }
  assertEquals(fresh.lastRun, null);
  assertEquals(fresh.etaSeconds, 0);

  await addPartitions(ws, 0, 3);
  await step(ws, "phases/filter.ts");
  const planned = await status(ws);
  assertEquals(planned.phases, { filtering: true, scheduling: false, completed: false });
  assertEquals(planned.planned.files, 6);
  assertEquals(planned.scheduled, none);
  assertEquals(planned.unscheduled, planned.planned);
  assertEquals(planned.remaining, planned.planned);
  assertEquals(planned.etaSeconds, null);
  assertMatch(planned.notes.join("\n"), /no schedule yet/);

  await step(ws, "phases/schedule.ts");
  const rows = await readSchedule(join(ws.tool, "schedule.csv"));
  const scheduled = await status(ws);
  assertEquals(scheduled.phases.scheduling, true);
  assertEquals(scheduled.scheduled, sum(rows));
  assertEquals(scheduled.planned, sum(rows));
  assertEquals(scheduled.left, sum(rows));
  assertEquals(scheduled.unscheduled, none);
  assertEquals(scheduled.verified, none);

  const table = await runScript("phases/status.ts", ["--config", ws.configPath]);
  assertEquals(table.code, 0, table.stderr);
  assertMatch(table.stdout, /phases: filter done, schedule done, transfer not completed/);
  assertMatch(table.stdout, /^left\s+6\s+/m);
  assertMatch(table.stdout, /last run: none yet/);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("status: after partial, failed and full runs (mpich and open mpi, 2 ranks)", async () => {
  const ws = await makeWorkspace({ transfer: { retries: 0 } });
  await addPartitions(ws, 0, 4);
  await step(ws, "phases/filter.ts");
  await step(ws, "phases/schedule.ts");
  const first = await readSchedule(join(ws.tool, "schedule.csv"));
  const r1 = await mpirun("mpich", 2, "phases/run.ts", ["--config", ws.configPath]);
  assertEquals(r1.code, 0, r1.stdout + r1.stderr);
  const full = await status(ws);
  assertEquals(full.verified, sum(first));
  assertEquals(full.remaining, none);
  assertEquals(full.phases.completed, false, "only verify sets completed");
  assert(full.lastRun !== null);
  assertEquals(full.lastRun.ranks, 2);
  assertEquals(full.lastRun.done, 8);
  assertEquals(full.lastRun.bytes, sum(first).bytes);
  assert(full.lastRun.bytesPerSecond > 0);
  assertEquals(full.etaSeconds, 0);
  await step(ws, "phases/verify.ts");
  assertEquals((await status(ws)).phases.completed, true);

  // Two more partitions: planned, then scheduled; a run where one file fails.
  await addPartitions(ws, 4, 6);
  await step(ws, "phases/filter.ts");
  const more = await status(ws);
  assertEquals(more.phases, { filtering: true, scheduling: false, completed: false });
  assertEquals(more.unscheduled.files, 4);
  assertEquals(more.remaining, more.unscheduled);
  await step(ws, "phases/schedule.ts");
  const all = await readSchedule(join(ws.tool, "schedule.csv"));
  const fresh = all.filter((r) => !first.some((f) => f.dstPath === r.dstPath));
  const partial = await status(ws);
  assertEquals(partial.scheduled, sum(all));
  assertEquals(partial.verified, sum(first));
  assertEquals(partial.left, sum(fresh));
  assertEquals(partial.remaining, sum(fresh));
  assert(partial.etaSeconds !== null && partial.etaSeconds > 0);
  const rate = partial.lastRun!.bytesPerSecond;
  assertEquals(partial.etaSeconds, sum(fresh).bytes / rate);

  const bad = fresh.find((r) => r.kind === "successes")!;
  const r2 = await runWithFault("openmpi", ws, "--corrupt", bad.srcPath.slice(ws.images.length));
  assertEquals(r2.code, 3, r2.stdout + r2.stderr);
  const failed = await status(ws);
  assertEquals(failed.failed, { files: 1, bytes: bad.sizeBytes });
  assertEquals(failed.left, none);
  assertEquals(failed.verified.files, all.length - 1);
  assertEquals(failed.remaining, failed.failed);
  assertEquals(failed.lastRun!.failed, 1);
  assertEquals(failed.lastRun!.done, 3);
  const logs = await readVerificationLogs(join(ws.tool, "verification"));
  assertEquals(failed.logs.files, logs.files.length);

  const r3 = await mpirun("openmpi", 2, "phases/run.ts", ["--config", ws.configPath]);
  assertEquals(r3.code, 0, r3.stdout + r3.stderr);
  await step(ws, "phases/verify.ts");
  const done = await status(ws);
  assertEquals(done.phases, { filtering: true, scheduling: true, completed: true });
  assertEquals(done.verified, sum(all));
  assertEquals(done.remaining, none);
  assertEquals(done.failed, none);
  assertEquals(done.lastRun!.done, 1);
  assertEquals(done.etaSeconds, 0);
  const table = await runScript("phases/status.ts", ["--config", ws.configPath]);
  assertMatch(table.stdout, /transfer completed/);
  assertMatch(table.stdout, /^verified\s+12\s+.*100\.0%$/m);
  assertMatch(table.stdout, /time left: 0\.0s/);
  await Deno.remove(ws.dir, { recursive: true });
});
