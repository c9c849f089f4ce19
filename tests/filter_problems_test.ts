/**
 * Problems the filter finds do not vanish downstream: a completed partition with a file
 * missing keeps `verify` from saying complete (exit 3, naming the file and what to do) and
 * shows in `status`, for as long as it is true; restoring the file (then filter, schedule,
 * run) or removing the partition's `completed` marker resolves it.
 * @module
 */

import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { join } from "node:path";
import { readCheckpoint } from "../mod.ts";
import type { StatusReport } from "../mod.ts";
import { addPartition, datasetFiles, makeWorkspace, runScript } from "./support/fixture.ts";
import type { Workspace } from "./support/fixture.ts";

async function phase(ws: Workspace, name: string, code: number) {
  const r = await runScript(`phases/${name}.ts`, ["--config", ws.configPath]);
  assertEquals(r.code, code, `${name}: ${r.stdout}${r.stderr}`);
  return r;
}

async function status(ws: Workspace): Promise<StatusReport> {
  const r = await phase(ws, "status", 0);
  const json = await runScript("phases/status.ts", ["--config", ws.configPath, "--json"]);
  assertEquals(json.code, 0, json.stderr);
  const report: StatusReport = JSON.parse(json.stdout);
  for (const p of report.filterProblems) assert(r.stdout.includes(`problem: ${p.path}: `));
  return report;
}

const completed = async (ws: Workspace) =>
  (await readCheckpoint(join(ws.tool, "tool_checkpoint.yaml"))).completed === true;

Deno.test("filter problems: a completed partition missing a file keeps verify at exit 3 and shows in status until resolved", async () => {
  const ws = await makeWorkspace();
  for (let p = 0; p < 4; p++) await addPartition(ws, "a.org%3A80", p);
  const p1 = join(ws.images, "server_name=a.org%3A80", "partition_id=1");
  const p3 = join(ws.images, "server_name=a.org%3A80", "partition_id=3");
  const errors1 = await Deno.readFile(join(p1, "errors.parquet"));
  await Deno.remove(join(p1, "errors.parquet"));
  await Deno.remove(join(p3, "successes.parquet"));

  await phase(ws, "filter", 3);
  await phase(ws, "schedule", 0);
  await phase(ws, "run", 0);
  assertEquals(datasetFiles(ws).length, 6, "everything there is was copied");

  // verify names both files and what to do; it does not say complete.
  const v = await phase(ws, "verify", 3);
  const lines = v.stderr.trim().split("\n").filter((l) => l.startsWith("problem: "));
  assertEquals(lines.length, 2, v.stderr);
  assertMatch(
    v.stderr,
    new RegExp(
      `^problem: ${p1}/errors\\.parquet: missing in a completed partition: skipped \\(filter of ` +
        `\\d{4}-.*Z\\); restore it and run 'deno task filter', or remove ${p1}/completed to leave ` +
        `the partition for later$`,
      "m",
    ),
  );
  assertMatch(
    v.stderr,
    new RegExp(`^problem: ${p3}/successes\\.parquet: missing in a completed`, "m"),
  );
  assertMatch(v.stdout, /2 problem\(s\) found by the filter still stand/);
  assert(!v.stdout.includes("complete;"), v.stdout);
  assertEquals(await completed(ws), false);
  const s = await status(ws);
  assertEquals(s.filterProblems.map((p) => p.path), [
    join(p1, "errors.parquet"),
    join(p3, "successes.parquet"),
  ]);
  assertEquals(s.remaining.files, 0, "nothing left to copy, and still not complete");

  // Leaving partition 3 for later (its marker removed) resolves its problem only.
  await Deno.remove(join(p3, "completed"));
  const one = await phase(ws, "verify", 3);
  assertEquals(one.stderr.match(/^problem: /gm)?.length, 1, one.stderr);
  assertMatch(one.stderr, /partition_id=1\/errors\.parquet/);

  // Restoring the file: it stands until the filter plans it, then the run copies it.
  await Deno.writeFile(join(p1, "errors.parquet"), errors1);
  const restored = await phase(ws, "verify", 3);
  assertMatch(
    restored.stderr,
    /partition_id=1\/errors\.parquet: .*; it is there now: run 'deno task filter' to plan it$/m,
  );
  await phase(ws, "filter", 0);
  await phase(ws, "schedule", 0);
  await phase(ws, "run", 0);
  const done = await phase(ws, "verify", 0);
  assertMatch(done.stdout, /verify: complete; checkpoint says completed: true/);
  assertEquals(await completed(ws), true);
  assertEquals((await status(ws)).filterProblems, []);
  assertEquals(datasetFiles(ws).length, 7);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("filter problems: a folder the filter refused stands while it is there", async () => {
  const ws = await makeWorkspace();
  await addPartition(ws, "good", 0);
  await addPartition(ws, "..", 0);
  await phase(ws, "filter", 3);
  await phase(ws, "schedule", 0);
  await phase(ws, "run", 0);
  const v = await phase(ws, "verify", 3);
  assertMatch(
    v.stderr,
    /^problem: .*server_name=\.\.: server name "\.\." gives the folder name "\.\.".*; fix or remove it, then run 'deno task filter' again$/m,
  );
  await Deno.remove(join(ws.images, "server_name=.."), { recursive: true });
  await phase(ws, "verify", 0);
  await Deno.remove(ws.dir, { recursive: true });
});
