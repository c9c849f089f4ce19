/**
 * Tests of the shared work queue (core/transfer/work_queue.ts): in one process, and under the
 * real `mpirun.mpich` and `mpirun.openmpi` with 2, 3 and 8 ranks (8 oversubscribed on the
 * machine's cores), through tests/fixtures/work_queue_driver.ts. A slow rank is slow by
 * construction (it waits until the others are done, see the driver), never by timing: the
 * tests assert what the ranks report, never how long anything took.
 * @module
 */

import { join } from "node:path";
import { openWorld } from "../mpi/mod.ts";
import { pickVictim, WorkQueue } from "../core/transfer/work_queue.ts";
import { buildLists, type Item, type TakenLine } from "./fixtures/work_queue_driver.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertThrows,
} from "./support/assert.ts";
import { runCommandOrFail } from "./support/command.ts";
import { REPO } from "./support/fixture.ts";
import { cleanEnv, MPI_IMPLS, type MpiImpl, mpirun } from "./support/mpi_launch.ts";

const DRIVER = "tests/fixtures/work_queue_driver.ts";
const FILES = 60;

/** What every rank reported, by rank (a rank that reported nothing has an empty list). */
async function reports(out: string, size: number): Promise<TakenLine[][]> {
  const all: TakenLine[][] = [];
  for (let rank = 0; rank < size; rank++) {
    let text = "";
    try {
      text = await Deno.readTextFile(join(out, `rank${rank}.jsonl`));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    all.push(text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line)));
  }
  return all;
}

/** Asserts that no item was reported twice and that each line names its item truly. */
function assertNoneTwice(lists: Item[][], taken: TakenLine[][]): string[] {
  const keys = taken.flat().map((line) => line.key);
  const twice = keys.filter((key, i) => keys.indexOf(key) !== i);
  assertEquals(twice, [], "items taken twice");
  for (const line of taken.flat()) {
    assertEquals(lists[line.from][line.index].key, line.key, `line ${JSON.stringify(line)}`);
  }
  return keys;
}

/** Runs the driver under `impl` with `n` ranks in a fresh folder; returns the reports. */
async function runDriver(
  impl: MpiImpl,
  n: number,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string; taken: TakenLine[][] }> {
  const out = await Deno.makeTempDir({ prefix: "dt-queue-" });
  try {
    const result = await mpirun(impl, n, DRIVER, ["--out", out, "--files", `${FILES}`, ...args], {
      env,
      timeoutMs: 180_000,
    });
    return { code: result.code, stderr: result.stderr, taken: await reports(out, n) };
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

/**
 * Checks a run with slow rank `slow`: every item taken exactly once; the slow rank took only
 * the first item of its own list; the others took all the rest of its list.
 */
function assertStolen(
  n: number,
  slow: number,
  run: { code: number; stderr: string; taken: TakenLine[][] },
) {
  assertEquals(run.code, 0, run.stderr);
  const lists = buildLists(FILES, n);
  const keys = assertNoneTwice(lists, run.taken);
  assertEquals(keys.sort(), lists.flat().map((item) => item.key).sort(), "items taken");
  assertEquals(run.taken[slow], [{ key: lists[slow][0].key, from: slow, index: 0 }]);
  const fromSlow = run.taken.flat().filter((line) => line.from === slow && line.index > 0);
  assertEquals(fromSlow.length, lists[slow].length - 1, "items of the slow rank taken by others");
  assert(lists[slow].length > 1, "the slow rank must have more than one item to take from");
}

// --- One process --------------------------------------------------------------------------

Deno.test("pickVictim: most bytes left, then most items, then lowest rank; null when none", () => {
  assertEquals(pickVictim([]), null);
  assertEquals(pickVictim([{ bytes: 0, items: 0 }, { bytes: 0, items: 0 }]), null);
  assertEquals(
    pickVictim([{ bytes: 5, items: 1 }, { bytes: 9, items: 1 }, { bytes: 9, items: 1 }]),
    1,
  );
  assertEquals(
    pickVictim([{ bytes: 9, items: 1 }, { bytes: 9, items: 3 }, { bytes: 2, items: 7 }]),
    1,
  );
  // Empty files still have to be taken.
  assertEquals(pickVictim([{ bytes: 0, items: 0 }, { bytes: 0, items: 2 }]), 1);
});

Deno.test("WorkQueue without MPI: the one list in order, then null, checked input", async () => {
  const comm = openWorld({ env: {} });
  const items = buildLists(7, 1)[0];
  const options = { sizeOf: (item: Item) => item.size, keyOf: (item: Item) => item.key };
  assertThrows(() => WorkQueue.open(comm, [items, []], options), RangeError);
  const bad = [{ key: "x", size: -1 }];
  assertThrows(() => WorkQueue.open(comm, [bad], options), RangeError);
  const queue = WorkQueue.open(comm, [items], options);
  const taken = [];
  for (let next = await queue.take(); next !== null; next = await queue.take()) taken.push(next);
  assertEquals(taken, items.map((item, index) => ({ item, from: 0, index })));
  assertEquals(await queue.take(), null);
  queue.free();
  await assertRejects(() => queue.take(), Error);
  const empty = WorkQueue.open(comm, [[]], options);
  assertEquals(await empty.take(), null);
  empty.free();
});

Deno.test("work queue driver without a launcher: one process takes every item in order", async () => {
  const out = await Deno.makeTempDir({ prefix: "dt-queue-" });
  try {
    const result = await runCommandOrFail(
      Deno.execPath(),
      ["run", "-A", join(REPO, DRIVER), "--out", out, "--files", "25"],
      { env: cleanEnv(), clearEnv: true, timeoutMs: 60_000 },
    );
    assertEquals(result.code, 0, result.stderr);
    const [list] = buildLists(25, 1);
    const [taken] = await reports(out, 1);
    assertEquals(taken, list.map((item, index) => ({ key: item.key, from: 0, index })));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

// --- Real launchers -----------------------------------------------------------------------

for (const impl of MPI_IMPLS) {
  const name = impl === "mpich" ? "mpirun.mpich" : "mpirun.openmpi";

  for (const n of [2, 3]) {
    Deno.test(`${name} -n ${n}: a slow rank's files are taken by the others, each once`, async () => {
      assertStolen(n, 1, await runDriver(impl, n, ["--slow-rank", "1"]));
    });
  }

  Deno.test(`${name} -n 8 on 2 cores: every file once, the slow rank's taken by others`, async () => {
    assertStolen(8, 3, await runDriver(impl, 8, ["--slow-rank", "3"]));
  });

  Deno.test(`${name} -n 3: SIGKILL of a rank being stolen from ends the job, nothing twice`, async () => {
    const run = await runDriver(impl, 3, ["--slow-rank", "1", "--kill-when-stolen"]);
    assert(run.code !== 0, `the job must fail when a rank is killed:\n${run.stderr}`);
    const lists = buildLists(FILES, 3);
    assertNoneTwice(lists, run.taken);
    assertEquals(run.taken[1], [{ key: lists[1][0].key, from: 1, index: 0 }]);
    const stolen = run.taken.flat().filter((line) => line.from === 1 && line.index > 0);
    assert(stolen.length >= 1, "the killed rank was being stolen from");
  });

  Deno.test(`${name} -n 2: ranks with different lists stop before taking anything`, async () => {
    const run = await runDriver(impl, 2, ["--mismatch"]);
    assert(run.code !== 0, run.stderr);
    assertMatch(run.stderr, /WorkListMismatchError: rank \d: the ranks built different work lists/);
    assertEquals(run.taken, [[], []]);
  });
}

Deno.test("mpirun.openmpi -n 3, osc pt2pt: every file once with a target-driven transport", async () => {
  assertStolen(
    3,
    1,
    await runDriver("openmpi", 3, ["--slow-rank", "1"], { OMPI_MCA_osc: "pt2pt" }),
  );
});
