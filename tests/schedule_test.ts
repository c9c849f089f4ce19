import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { join } from "node:path";
import { assignRanks, rankLoads, readCheckpoint, readSchedule } from "../mod.ts";
import { addPartition, makeWorkspace, runScript } from "./support/fixture.ts";

/** A deterministic generator of sizes spread over two orders of magnitude. */
function spreadSizes(n: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
  return Array.from({ length: n }, () => Math.round(1e6 * 10 ** (2 * next())));
}

Deno.test("assignRanks: heaviest rank within 5% of the ideal when no file exceeds it", () => {
  let cases = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const world = 2 + (seed % 15);
    const sizes = spreadSizes(40 + seed * 13, seed);
    const ideal = sizes.reduce((a, b) => a + b, 0) / world;
    if (Math.max(...sizes) > ideal) continue;
    cases++;
    const ranks = assignRanks(sizes, world);
    const loads = rankLoads(sizes, ranks, world);
    assert(Math.max(...loads) <= ideal * 1.05, `seed ${seed}: ${Math.max(...loads) / ideal}`);
    assertEquals(loads.reduce((a, b) => a + b, 0), sizes.reduce((a, b) => a + b, 0));
    assertEquals(assignRanks(sizes, world), ranks, "deterministic");
  }
  assert(cases > 40, `enough cases exercised (${cases})`);
});

Deno.test("assignRanks: the classic LPT worst case is fixed by refinement", () => {
  // Largest-first alone puts 3+2+2 on one rank (7 against an ideal of 6).
  const loads = rankLoads([3, 3, 2, 2, 2], assignRanks([3, 3, 2, 2, 2], 2), 2);
  assertEquals(loads.sort(), [6, 6]);
});

Deno.test("schedule: refuses to run before the filter, and without a table", async () => {
  const ws = await makeWorkspace();
  const r = await runScript("phases/schedule.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 2);
  assertMatch(r.stderr, /filtering is not completed; run 'deno task filter' first/);
  await runScript("phases/filter.ts", ["--config", ws.configPath]);
  const r2 = await runScript("phases/schedule.ts", ["--config", ws.configPath]);
  assertEquals(r2.code, 2);
  assertMatch(r2.stderr, /filter_table: no filter table yet; run 'deno task filter' first/);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("schedule: all files once, balanced by bytes over max_nodes*workers_per_node, deterministic", async () => {
  const ws = await makeWorkspace({ maxNodes: 2, workersPerNode: 3 });
  const sizes = spreadSizes(120, 7);
  for (let p = 0; p < 60; p++) {
    await addPartition(ws, `srv${p % 3}`, p, {
      successes: sizes[2 * p] >> 8,
      errors: sizes[2 * p + 1] >> 8,
    });
  }
  assertEquals((await runScript("phases/filter.ts", ["--config", ws.configPath])).code, 0);
  const r = await runScript("phases/schedule.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(
    r.stdout,
    /120 files, .* over 6 ranks; heaviest rank .* \((\d+\.\d+)% over the ideal/,
  );
  const path = join(ws.tool, "schedule.csv");
  const first = await Deno.readTextFile(path);
  const rows = await readSchedule(path);
  assertEquals(rows.length, 120);
  assertEquals(new Set(rows.map((x) => x.srcPath)).size, 120);
  const loads = new Array(6).fill(0);
  for (const row of rows) {
    assert(row.rank >= 0 && row.rank < 6);
    loads[row.rank] += row.sizeBytes;
  }
  const ideal = loads.reduce((a, b) => a + b, 0) / 6;
  assert(Math.max(...loads) <= ideal * 1.05, `imbalance ${Math.max(...loads) / ideal}`);
  assertEquals(
    (await readCheckpoint(join(ws.tool, "tool_checkpoint.yaml"))).scheduling_completed,
    true,
  );
  await runScript("phases/schedule.ts", ["--config", ws.configPath]);
  assertEquals(await Deno.readTextFile(path), first, "same tables and world give the same file");
  // A new filter run clears scheduling_completed.
  await runScript("phases/filter.ts", ["--config", ws.configPath]);
  assertEquals(
    (await readCheckpoint(join(ws.tool, "tool_checkpoint.yaml"))).scheduling_completed,
    false,
  );
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("schedule: a source planned in two tables is refused naming both", async () => {
  const ws = await makeWorkspace();
  await addPartition(ws, "s", 0);
  await runScript("phases/filter.ts", ["--config", ws.configPath]);
  const dir = join(ws.tool, "filter_table");
  const [name] = [...Deno.readDirSync(dir)].map((e) => e.name);
  const text = await Deno.readTextFile(join(dir, name));
  await Deno.writeTextFile(
    join(dir, "zz_copy.csv"),
    text.replaceAll("data_", "data_x").replaceAll("errors_", "errors_x"),
  );
  const r = await runScript("phases/schedule.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 2);
  assertMatch(
    r.stderr,
    /source .*\.parquet is planned twice: .*filter_.*\.csv row \d+ and .*zz_copy\.csv row \d+/,
  );
  await Deno.remove(ws.dir, { recursive: true });
});
