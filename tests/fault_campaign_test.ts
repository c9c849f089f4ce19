/**
 * The fault campaign: turns the tool's guarantees into evidence. SIGKILLs at random moments
 * during filter, schedule and run (both MPI implementations and a single process) followed by
 * re-runs; storage faults on real file systems mounted by the test (ENOSPC and a read-only
 * remount, both mid-run, by construction: the test driver pauses the ranks until the fault is
 * set); corruption before verification and after publication; a second run while one works
 * (refused, naming it) and after one was killed (not blocked); bad inputs; and writes outside
 * the allowed folders, symlinks at destinations and the user's umask. The last test prints a tally of what was survived.
 *
 * `DT_FAULT_KILLS=N` sets the number of kills (default 30), `DT_FAULT_SEED=S` replays the
 * moments and victims of an earlier run (the seed is printed first).
 * @module
 */

import { prng } from "./support/random.ts";
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { addPartition, datasetFiles, listFiles, makeWorkspace } from "./support/fixture.ts";
import type { RunResult, Workspace, WorkspaceOptions } from "./support/fixture.ts";
import {
  checkComplete,
  checkPartialDataset,
  completedSources,
  killRandomRankAt,
  launchLabel,
  readTables,
  runPhase,
  snapshot,
  snapshotDiff,
  startSession,
  waitSession,
} from "./support/fault_harness.ts";
import type { Launch, Session } from "./support/fault_harness.ts";
import { readVerificationLogs } from "../core/records/verification_log.ts";
import { makeGate, openGate, RUN_DRIVER, waitPaused } from "./support/run_gate.ts";
import { parseCsv } from "../core/records/csv.ts";

const SEED = Number(Deno.env.get("DT_FAULT_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const KILLS = Number(Deno.env.get("DT_FAULT_KILLS") ?? 30);
const rand = prng(SEED);
console.log(
  `fault campaign: seed ${SEED} (DT_FAULT_SEED=${SEED} replays it), ${KILLS} kills ` +
    `(DT_FAULT_KILLS)`,
);

/** What the campaign did, printed by the last test. */
const tally = { kills: 0, launcherHangs: 0, faults: 0, badInputs: 0, filesChecked: 0, lost: 0 };

const SINGLE: Launch = { kind: "single" };
const MPICH: Launch = { kind: "mpi", impl: "mpich", n: 2 };
const OPENMPI: Launch = { kind: "mpi", impl: "openmpi", n: 2 };
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];

const CRASH_CONFIG: WorkspaceOptions = {
  transfer: { buffer_size: 65536, files_in_flight: 1, log_sync_every: 2 },
};
const SERVERS = ["img.example.org%3A8080", "cdn.example.net:443", "plain"];

let batchSeed = 0;
/** Adds `n` completed partitions of random sizes to the tree. */
async function addBatch(ws: Workspace, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const id = ++batchSeed;
    await addPartition(ws, SERVERS[id % SERVERS.length], id, {
      successes: 60_000 + Math.floor(rand() * 240_000),
      errors: 600 + Math.floor(rand() * 3000),
      seed: SEED + id,
    });
  }
}

const configArgs = (ws: Workspace) => ["--config", ws.configPath];

function expectCode(r: RunResult, code: number, what: string): void {
  assertEquals(r.code, code, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
}

type Phase = "filter" | "schedule" | "run";
const SCRIPT: Record<Phase, string> = {
  filter: "phases/filter.ts",
  schedule: "phases/schedule.ts",
  run: "phases/run.ts",
};

/** Measured wall time (ms) of an uninterrupted phase, by phase and launch. */
const durations = new Map<string, number>();
const key = (phase: Phase, l: Launch) => `${phase} ${launchLabel(l)}`;

async function timed(phase: Phase, l: Launch, ws: Workspace): Promise<RunResult> {
  const t = performance.now();
  const r = await runPhase(l, SCRIPT[phase], configArgs(ws));
  durations.set(key(phase, l), performance.now() - t);
  return r;
}

/**
 * Starts `phase` and kills one of its ranks at a moment drawn from its measured duration.
 * Returns the victim's pid, or null when the phase ended first.
 */
async function killDuring(phase: Phase, l: Launch, ws: Workspace): Promise<number | null> {
  const estimate = durations.get(key(phase, l))!;
  const atMs = rand() * estimate;
  const started = performance.now();
  const s = startSession(l, SCRIPT[phase], configArgs(ws));
  const k = await killRandomRankAt(s, started, atMs, rand);
  if (k.victim === null) {
    expectCode(k.result, 0, `${phase} that ended before its kill`);
    console.log(`  ${phase} (${launchLabel(l)}) ended before ${Math.round(atMs)} ms: no kill`);
    return null;
  }
  assert(k.result.code !== 0, `${phase} reports the killed rank (exit ${k.result.code})`);
  tally.kills++;
  if (k.launcherHung) tally.launcherHangs++;
  console.log(
    `  kill ${tally.kills}: ${phase} (${launchLabel(l)}) pid ${k.victim} at ${k.atMs} ms ` +
      `of ~${Math.round(estimate)} ms` +
      (k.launcherHung ? " (Open MPI's mpirun aborted the job but stayed up: session killed)" : ""),
  );
  return k.victim;
}

/** Checks that the filter tables plan every completed source of the tree exactly once. */
async function assertPlannedExactly(ws: Workspace): Promise<void> {
  const t = await readTables(ws);
  assertEquals(t.planned.map((r) => r.srcPath).sort(), completedSources(ws));
  const tables = listFiles(join(ws.tool, "filter_table"));
  for (const p of tables) {
    const name = p.slice(p.lastIndexOf("/") + 1);
    assert(/^filter_.*\.csv$/.test(name) || /^\.filter_.*\.tmp-/.test(name), `table ${p}`);
  }
}

async function filterAfterKill(ws: Workspace): Promise<void> {
  const t = await readTables(ws);
  const remaining = completedSources(ws).length - t.planned.length;
  const r = await runPhase(SINGLE, SCRIPT.filter, configArgs(ws));
  expectCode(r, 0, "filter after a kill");
  assertMatch(r.stdout, new RegExp(`files planned: ${remaining} new`));
  await assertPlannedExactly(ws);
}

Deno.test(`crashes: ${KILLS} SIGKILLs at random moments of filter, schedule and run, each followed by re-runs to completion`, async () => {
  const started = performance.now();
  const launches = [MPICH, OPENMPI, SINGLE];
  // Calibration: one uninterrupted batch per launch measures every phase.
  let ws = await makeWorkspace(CRASH_CONFIG);
  const workspaces = [ws];
  for (const l of launches) {
    await addBatch(ws, 3);
    expectCode(await timed("filter", SINGLE, ws), 0, "filter");
    expectCode(await timed("schedule", SINGLE, ws), 0, "schedule");
    expectCode(await timed("run", l, ws), 0, `run ${launchLabel(l)}`);
    const t = await readTables(ws);
    tally.lost += await checkComplete(ws, t);
  }
  console.log(
    `  measured: ${[...durations].map(([k, v]) => `${k} ${Math.round(v)} ms`).join(", ")}`,
  );
  // A seventh of the kills in filter, a tenth in schedule, the rest in run.
  const targets: Array<{ phase: Phase; launch: Launch }> = [];
  const nFilter = Math.max(1, Math.round(KILLS / 7));
  const nSchedule = Math.max(1, Math.round(KILLS / 10));
  for (let i = 0; i < KILLS; i++) {
    if (i < nFilter) targets.push({ phase: "filter", launch: SINGLE });
    else if (i < nFilter + nSchedule) targets.push({ phase: "schedule", launch: SINGLE });
    else targets.push({ phase: "run", launch: launches[i % 5 < 2 ? 0 : i % 5 < 4 ? 1 : 2] });
  }
  // Shuffle (Fisher-Yates with the seeded generator).
  for (let i = targets.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [targets[i], targets[j]] = [targets[j], targets[i]];
  }
  let cycles = 0;
  while (targets.length > 0) {
    assert(++cycles <= 4 * KILLS, "every kill found a running phase within 4x the cycles");
    if (cycles % 8 === 0) {
      ws = await makeWorkspace(CRASH_CONFIG);
      workspaces.push(ws);
    }
    const target = targets.shift()!;
    await addBatch(ws, 3);
    let hit = false;
    for (const phase of ["filter", "schedule"] as const) {
      if (target.phase === phase) {
        hit = (await killDuring(phase, SINGLE, ws)) !== null;
        await readTables(ws);
        if (phase === "filter") await filterAfterKill(ws);
        else expectCode(await runPhase(SINGLE, SCRIPT[phase], configArgs(ws)), 0, phase);
      } else {
        expectCode(await timed(phase, SINGLE, ws), 0, phase);
      }
    }
    await assertPlannedExactly(ws);
    if (target.phase === "run") {
      hit = (await killDuring("run", target.launch, ws)) !== null;
      const t = await readTables(ws);
      await checkPartialDataset(ws, t);
      const again = pick(launches);
      const r = await runPhase(again, SCRIPT.run, configArgs(ws));
      expectCode(r, 0, `re-run (${launchLabel(again)}) after a kill`);
    } else {
      const l = pick(launches);
      expectCode(await timed("run", l, ws), 0, `run ${launchLabel(l)}`);
    }
    const t = await readTables(ws);
    assertEquals(t.schedule.map((r) => r.srcPath).sort(), completedSources(ws));
    tally.lost += await checkComplete(ws, t);
    tally.filesChecked += t.schedule.length;
    if (!hit) targets.push(target);
  }
  // The finished datasets pass the deep check; a byte altered after publication is found.
  const last = workspaces[workspaces.length - 1];
  const deep = await runPhase(MPICH, "phases/verify.ts", [...configArgs(last), "--deep"]);
  expectCode(deep, 0, "verify --deep after the campaign");
  assertMatch(deep.stdout, /0 problem\(s\), 0 temporaries/);
  const published = datasetFiles(last);
  const victim = pick(published);
  const bytes = await Deno.readFile(victim);
  bytes[Math.floor(rand() * bytes.length)] ^= 0x01;
  await Deno.writeFile(victim, bytes);
  const truncated = pick(published.filter((p) => p !== victim));
  await Deno.truncate(truncated, 10);
  tally.faults += 2;
  const found = await runPhase(OPENMPI, "phases/verify.ts", [...configArgs(last), "--deep"]);
  expectCode(found, 3, "verify --deep on altered files");
  assertMatch(found.stderr, new RegExp(`altered: ${victim}: `));
  assertMatch(found.stderr, new RegExp(`size: ${truncated}: `));
  assertMatch(found.stdout, /2 problem\(s\)/);
  for (const w of workspaces) await Deno.remove(w.dir, { recursive: true });
  console.log(
    `  ${tally.kills} kills in ${cycles} cycles, ${tally.filesChecked} files checked, ` +
      `${Math.round((performance.now() - started) / 1000)} s`,
  );
});

/** A workspace with `n` completed partitions, filtered and scheduled. */
async function scheduled(n: number, size: number, options: WorkspaceOptions = CRASH_CONFIG) {
  const ws = await makeWorkspace(options);
  for (let p = 0; p < n; p++) {
    await addPartition(ws, SERVERS[p % SERVERS.length], p, {
      successes: size + p * 997,
      errors: 900 + p,
      seed: SEED + p,
    });
  }
  expectCode(await runPhase(SINGLE, SCRIPT.filter, configArgs(ws)), 0, "filter");
  expectCode(await runPhase(SINGLE, SCRIPT.schedule, configArgs(ws)), 0, "schedule");
  return { ws, t: await readTables(ws) };
}

async function sh(cmd: string, args: string[]): Promise<{ ok: boolean; err: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  return { ok: out.success, err: new TextDecoder().decode(out.stderr) };
}

async function mountTmpfs(dir: string, size: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const m = await sh("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0755`, "tmpfs", dir]);
  assert(m.ok, `mount tmpfs on ${dir} (the campaign runs as root): ${m.err}`);
}

/** The `failed: SRC -> DST: REASON` lines of a run, by destination. */
function failures(r: RunResult): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of r.stderr.matchAll(/^failed: .* -> (\S+): (.*)$/gm)) out.set(m[1], m[2]);
  return out;
}

/** A run of the test driver under `launch` whose ranks are paused at their gate. */
interface PausedRun {
  /** The run. */
  session: Session;
  /** Its gate: `openGate` lets the ranks go on. */
  gate: string;
  /** Pid of each paused rank. */
  pids: Map<number, number>;
}

/** Starts the run driver on `ws`, each of the 2 ranks pausing before its file `after + 1`. */
async function startPaused(launch: Launch, ws: Workspace, after: number): Promise<PausedRun> {
  const gate = await makeGate();
  const args = [...configArgs(ws), "--gate", gate, "--pause-after", String(after)];
  const session = startSession(launch, RUN_DRIVER, args);
  const pids = await waitPaused(gate, [0, 1], () => !session.exited());
  return { session, gate, pids };
}

Deno.test("storage: a destination file system that fills up mid-run, and one remounted read-only mid-run, fail those files with the system's reason; a re-run completes", async () => {
  for (const fault of ["ENOSPC", "EROFS"] as const) {
    const { ws, t } = await scheduled(20, 800_000);
    await mountTmpfs(ws.dstImages, "64m");
    // Each rank pauses before its third file (one file at a time) until the fault is set up,
    // so that the fault lands mid-run however fast the copies are.
    const { session: s, gate } = await startPaused(fault === "ENOSPC" ? OPENMPI : MPICH, ws, 2);
    try {
      const filler = join(ws.dstImages, "filler");
      if (fault === "ENOSPC") {
        // Another user fills the file system while the run goes on.
        const dd = await sh("dd", ["if=/dev/zero", `of=${filler}`, "bs=1M"]);
        assertMatch(dd.err, /No space left on device/);
      } else {
        // No copy is open while the ranks are paused: the remount cannot be refused as busy.
        const m = await sh("mount", ["-o", "remount,ro", ws.dstImages]);
        assert(m.ok, `remount read-only: ${m.err}`);
      }
      await openGate(gate);
      tally.faults++;
      const r = await waitSession(s, 120_000);
      expectCode(r, 3, `run with ${fault} mid-run`);
      const failed = failures(r);
      assert(failed.size > 0, `some files failed:\n${r.stderr}`);
      const reason = fault === "ENOSPC" ? /No space left on device/ : /Read-only file system/;
      console.log(
        `  ${fault}: ${failed.size} files failed mid-run, e.g. ${[...failed.values()][0]}`,
      );
      for (const [dst, why] of failed) {
        assert(dst.startsWith(ws.dstImages + "/"), `only files of the faulty file system fail`);
        assertMatch(why, reason);
      }
      // It went on with what it could: every errors file (another file system) is verified.
      const logs = await readVerificationLogs(join(ws.tool, "verification"));
      for (const row of t.schedule.filter((x) => x.kind === "errors")) {
        assertEquals(logs.byDst.get(row.dstPath)?.status, "verified", row.dstPath);
      }
      // Space is free again / the file system is writable again: a re-run completes.
      if (fault === "ENOSPC") await Deno.remove(filler);
      else assert((await sh("mount", ["-o", "remount,rw", ws.dstImages])).ok, "remount rw");
      const t2 = await readTables(ws);
      await checkPartialDataset(ws, t2);
      const again = await runPhase(SINGLE, SCRIPT.run, configArgs(ws));
      expectCode(again, 0, `re-run after ${fault}`);
      assertMatch(again.stdout, new RegExp(`run: ${failed.size} files copied and verified`));
      tally.lost += await checkComplete(ws, await readTables(ws));
    } finally {
      await sh("umount", [ws.dstImages]);
    }
    await Deno.remove(ws.dir, { recursive: true });
    await Deno.remove(gate, { recursive: true });
  }
});

/** Every record of every verification log (not only the latest per destination). */
async function allRecords(ws: Workspace): Promise<Array<Record<string, string>>> {
  const out: Array<Record<string, string>> = [];
  for (const p of listFiles(join(ws.tool, "verification"))) {
    out.push(...parseCsv(await Deno.readTextFile(p)).records);
  }
  return out;
}

Deno.test("corruption: copies corrupted or cut short on storage between write and read-back (both MPI) are retried or failed, never published", async () => {
  const { ws, t } = await scheduled(6, 80_000, { transfer: { retries: 1 } });
  // partition_id=1: corrupted on the first attempt only, partition_id=3: cut short on the first
  // attempt only; partition_id=2: corrupted on every attempt.
  const r = await runPhase(OPENMPI, RUN_DRIVER, [
    ...configArgs(ws),
    "--corrupt",
    "partition_id=1/:1",
    "--truncate",
    "partition_id=3/:1",
  ]);
  expectCode(r, 0, "run with one corrupted attempt per file");
  const r2 = await runPhase(MPICH, SCRIPT.run, configArgs(ws));
  expectCode(r2, 0, "nothing left");
  const { ws: ws2, t: t2 } = await scheduled(4, 80_000, { transfer: { retries: 1 } });
  const bad = await runPhase(MPICH, RUN_DRIVER, [
    ...configArgs(ws2),
    "--corrupt",
    "partition_id=2/",
  ]);
  expectCode(bad, 3, "run with a file corrupted on every attempt");
  tally.faults += 2 + 2 + 2;
  const failed = failures(bad);
  assertEquals(failed.size, 2, "both files of partition 2 failed");
  for (const [dst, why] of failed) {
    assertMatch(why, /verification failed after 2 attempt\(s\): bytes differ at offset \d+/);
    assert(!datasetFiles(ws2).includes(dst), "a corrupted copy is never published");
  }
  await checkPartialDataset(ws2, await readTables(ws2));
  assertEquals(datasetFiles(ws2).length, t2.schedule.length - 2, "no temporary left");
  expectCode(await runPhase(SINGLE, SCRIPT.run, configArgs(ws2)), 0, "clean re-run");
  tally.lost += await checkComplete(ws, await readTables(ws));
  tally.lost += await checkComplete(ws2, await readTables(ws2));
  for (const p of ["partition_id=1/", "partition_id=3/"]) {
    const retried = (await allRecords(ws)).filter((x) => x.src_path.includes(p));
    assertEquals(retried.map((x) => x.status), ["verified", "verified"], p);
  }
  assertEquals(t.schedule.length, 12);
  await Deno.remove(ws.dir, { recursive: true });
  await Deno.remove(ws2.dir, { recursive: true });
});

Deno.test("concurrency: a second run while one is working exits 2 naming it; the lock of a SIGKILLed run does not block the next", async () => {
  for (const [first, second] of [[MPICH, SINGLE], [OPENMPI, MPICH]]) {
    const label = `${launchLabel(first)} then ${launchLabel(second)}`;
    const { ws } = await scheduled(12, 150_000);
    // The first run pauses every rank after one file until the test lets it go.
    const { session: a, gate, pids } = await startPaused(first, ws, 1);
    const b = await runPhase(second, SCRIPT.run, configArgs(ws));
    tally.faults++;
    assertRefused(
      b,
      new RegExp(
        `another run is working on this tool folder: rank 0 on host \\S+ \\(pid ${
          pids.get(0)
        }\\), 2 rank\\(s\\), started .*; wait for it to end or stop it \\(kill ${
          pids.get(0)
        } on \\S+\\), then run again \\(it holds .*run\\.lock\\)$`,
      ),
      `second run (${label})`,
    );
    await openGate(gate);
    expectCode(await waitSession(a, 120_000), 0, `first run (${label})`);
    tally.lost += await checkComplete(ws, await readTables(ws));
    await Deno.remove(ws.dir, { recursive: true });
    await Deno.remove(gate, { recursive: true });

    // A run killed outright leaves its name in the lock; the next run finds it gone.
    const { ws: ws2 } = await scheduled(12, 150_000);
    const { session: c, gate: gate2, pids: victims } = await startPaused(first, ws2, 1);
    for (const pid of victims.values()) Deno.kill(pid, "SIGKILL");
    assert((await waitSession(c, 60_000)).code !== 0, "the killed run fails");
    tally.kills++;
    const lock = await Deno.readTextFile(join(ws2.tool, "run.lock"));
    assertMatch(lock, new RegExp(`@${victims.get(0)}"`), "the lock still names the dead run");
    const d = await runPhase(second, SCRIPT.run, configArgs(ws2));
    expectCode(d, 0, `run after a SIGKILLed one (${label})`);
    assertEquals(await Deno.readTextFile(join(ws2.tool, "run.lock")), "", "released at the end");
    tally.lost += await checkComplete(ws2, await readTables(ws2));
    await Deno.remove(ws2.dir, { recursive: true });
    await Deno.remove(gate2, { recursive: true });
  }
});

/** The lines of stderr that are not notes. */
function errorLines(r: RunResult): string[] {
  return r.stderr.split("\n").filter((l) => l.trim() !== "" && !/^note: /.test(l));
}

/** Asserts exit 2 with exactly one error line matching `reason`. */
function assertRefused(r: RunResult, reason: RegExp, what: string): void {
  expectCode(r, 2, what);
  const lines = errorLines(r);
  assertEquals(lines.length, 1, `${what}: one line\n${r.stderr}`);
  assertMatch(lines[0], reason);
  tally.badInputs++;
}

/** Whether `p` is one of `roots`, below one, or a folder on the way to one. */
function within(p: string, roots: string[]): boolean {
  return roots.some((a) => p === a || p.startsWith(a + "/") || a.startsWith(p + "/"));
}

/** Asserts that only the tool folder (and `allowed`) changed since `before`. */
function assertUndisturbed(ws: Workspace, before: ReturnType<typeof snapshot>, allowed: string[]) {
  const changed = snapshotDiff(before, snapshot([ws.dir]));
  const others = changed.filter((p) => !within(p, [ws.tool, ...allowed]));
  assertEquals(others, [], "nothing outside the tool folder was touched");
}

Deno.test("bad input: an empty tree, symlinks out of the tree, a folder for a file and hostile schedule edits get one clear reason and the right exit code", async () => {
  // An empty tree: nothing planned; schedule and run refuse with one line each.
  const empty = await makeWorkspace();
  let before = snapshot([empty.dir]);
  const f = await runPhase(SINGLE, SCRIPT.filter, configArgs(empty));
  expectCode(f, 0, "filter of an empty tree");
  assertMatch(f.stdout, /0 partitions seen, 0 completed.*\nfilter: nothing new to plan/);
  assertRefused(
    await runPhase(SINGLE, SCRIPT.schedule, configArgs(empty)),
    /no filter table yet; .*it found no file of a completed partition in .*\/images\)$/,
    "schedule of an empty tree",
  );
  assertRefused(
    await runPhase(SINGLE, SCRIPT.run, configArgs(empty)),
    /scheduling is not completed .*; run 'deno task schedule' first$/,
    "run of an empty tree",
  );
  assertUndisturbed(empty, before, []);
  await Deno.remove(empty.dir, { recursive: true });

  // Symlinks out of the tree: a server folder, a source file. Refused by the filter.
  const ws = await makeWorkspace();
  const outside = await Deno.makeTempDir({ prefix: "dt-outside-" });
  const foreign = await addPartition({ ...ws, images: outside }, "x", 0);
  await Deno.symlink(join(outside, "server_name=x"), join(ws.images, "server_name=evil"));
  const p0 = await addPartition(ws, "ok", 0);
  const p1 = await addPartition(ws, "ok", 1);
  await Deno.remove(join(p0, "errors.parquet"));
  await Deno.symlink(join(foreign, "errors.parquet"), join(p0, "errors.parquet"));
  before = snapshot([ws.dir]);
  const fr = await runPhase(SINGLE, SCRIPT.filter, configArgs(ws));
  expectCode(fr, 3, "filter with symlinks out of the tree");
  assertMatch(
    fr.stderr,
    /server_name=evil: is a symlink to .*, outside the images folder .*: refused/,
  );
  assertMatch(fr.stderr, /partition_id=0\/errors\.parquet: is a symlink: refused/);
  tally.badInputs += 2;
  expectCode(await runPhase(SINGLE, SCRIPT.schedule, configArgs(ws)), 0, "schedule");
  const t = await readTables(ws);
  assertEquals(t.schedule.length, 3, "only the three real files of the tree");
  assert(t.schedule.every((r) => r.srcPath.startsWith(ws.images + "/server_name=ok/")));
  assertUndisturbed(ws, before, []);

  // After scheduling: a source replaced by a folder, and a hand-edited row that reads through
  // the symlinked server folder (its path is inside the images folder by name only).
  const sched = join(ws.tool, "schedule.csv");
  const original = await Deno.readTextFile(sched);
  const p1Errors = await Deno.readFile(join(p1, "errors.parquet"));
  await Deno.remove(join(p1, "errors.parquet"));
  await Deno.mkdir(join(p1, "errors.parquet"));
  await Deno.writeTextFile(
    sched,
    original.replace(
      "server_name=ok/partition_id=1/successes",
      "server_name=evil/partition_id=0/successes",
    ),
  );
  before = snapshot([outside]);
  const rr = await runPhase(MPICH, SCRIPT.run, configArgs(ws));
  expectCode(rr, 3, "run with a folder for a file and a symlinked source");
  const failed = failures(rr);
  assertEquals(failed.size, 2, rr.stderr);
  assertMatch(rr.stderr, /partition_id=1\/errors\.parquet is not a regular file any more$/m);
  assertMatch(
    rr.stderr,
    /server_name=evil\/partition_id=0\/successes\.parquet resolves to .*dt-outside-.*, outside the images folder .*: refused/,
  );
  tally.badInputs += 2;
  assertEquals(datasetFiles(ws).length, 1, "the one good file went through");
  assertEquals(snapshotDiff(before, snapshot([outside])), [], "the outside tree untouched");
  await Deno.remove(join(p1, "errors.parquet"));
  await Deno.writeFile(join(p1, "errors.parquet"), p1Errors);

  // Hand edits of the schedule that would read or write elsewhere, or are malformed: exit 2,
  // one line, nothing written.
  const row = t.schedule[0];
  const edits: Array<[string, (text: string) => string, RegExp]> = [
    [
      "source outside the tree",
      (x) => x.replace(row.srcPath, "/etc/hostname"),
      /src_path \/etc\/hostname is outside the images folder .*: refused$/,
    ],
    [
      "source escaping with ..",
      (x) => x.replace(row.srcPath, `${ws.images}/../../../etc/hostname`),
      /src_path .*\/\.\.\/etc\/hostname is outside the images folder .*: refused$/,
    ],
    [
      "destination in the other dataset folder",
      (x) => x.replace(ws.dstImages, ws.dstErrors),
      /dst_path .* is not of the form .*\/server=<name>\/(data|errors)_<id>\.parquet: refused$/,
    ],
    [
      "destination with an unsafe server name",
      (x) => x.replace(/server=ok\//, "server=o k/"),
      /dst_path .*server=o k\/.* is not of the form .*: refused$/,
    ],
    [
      "a destination twice",
      (x) => x.replace(t.schedule[1].dstPath, row.dstPath),
      /destination .* appears twice$/,
    ],
    [
      "a torn last line",
      (x) => x.slice(0, x.length - 20),
      /the last line is not a well-formed CSV record$|row \d+: column .*$/,
    ],
  ];
  for (const [what, edit, reason] of edits) {
    await Deno.writeTextFile(sched, edit(original));
    const snap = snapshot([ws.dir]);
    assertRefused(await runPhase(SINGLE, SCRIPT.run, configArgs(ws)), reason, what);
    assertUndisturbed(ws, snap, []);
  }
  await Deno.writeTextFile(sched, original);
  expectCode(await runPhase(SINGLE, SCRIPT.run, configArgs(ws)), 0, "the restored schedule runs");
  tally.lost += await checkComplete(ws, await readTables(ws));
  await Deno.remove(ws.dir, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});

Deno.test("bad input: server names with .., %2F, spaces and 240-byte names get distinct safe folders (shortened with a hash), all copied", async () => {
  const ws = await makeWorkspace();
  const long = "l".repeat(236);
  const names = [
    "a%2Fb",
    "with space",
    "..%2F..%2Fup",
    `${long}-one`, // 240 bytes: the longest a folder server_name=<S> allows is 243
    `${long}-two`, // same 183-byte prefix once shortened
    `${long} :1`, // these two are the same once made safe, before the hash suffix
    `${long} _1`,
    `${"é".repeat(121)}`, // 242 bytes, 121 characters
  ];
  for (const [i, s] of names.entries()) await addPartition(ws, s, i, { successes: 3000 });
  await addPartition(ws, "..", 0);
  await addPartition(ws, "a%2Fb", 99, { completed: false });
  const f = await runPhase(SINGLE, SCRIPT.filter, configArgs(ws));
  expectCode(f, 3, "filter with a '..' server");
  assertEquals(errorLines(f), [
    `problem: ${ws.images}/server_name=..: server name ".." gives the folder name "..", which ` +
    `is not usable; rename the folder server_name=..`,
  ]);
  tally.badInputs += names.length + 2;
  expectCode(await runPhase(SINGLE, SCRIPT.schedule, configArgs(ws)), 0, "schedule");
  expectCode(await runPhase(OPENMPI, SCRIPT.run, configArgs(ws)), 0, "run");
  const t = await readTables(ws);
  tally.lost += await checkComplete(ws, t);
  const folderOf = new Map<string, Set<string>>();
  for (const r of t.schedule) {
    const folder = r.dstPath.split("/").slice(-2)[0];
    assertMatch(folder, /^server=[A-Za-z0-9._-]{1,200}$/);
    assert(new TextEncoder().encode(folder).length <= 255, folder);
    folderOf.set(r.serverName, (folderOf.get(r.serverName) ?? new Set()).add(folder));
  }
  assertEquals(folderOf.size, names.length, "every server planned; '..' and incomplete not");
  const folders = [...folderOf.values()].map((s) => [...s]);
  assert(folders.every((s) => s.length === 1), "one folder per server");
  assertEquals(new Set(folders.flat()).size, names.length, "no two servers share a folder");
  assertEquals(folderOf.get("a%2Fb"), new Set(["server=a_2Fb"]));
  assertEquals(folderOf.get("..%2F..%2Fup"), new Set(["server=.._2F.._2Fup"]));
  for (const s of names.slice(3, 7)) assertMatch([...folderOf.get(s)!][0], /_[0-9a-f]{16}$/);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("security: hostile names and planted symlinks never make the tool write outside its three folders", async () => {
  const ws = await makeWorkspace();
  const sentinel = await Deno.makeTempDir({ prefix: "dt-sentinel-" });
  await Deno.writeTextFile(join(sentinel, "keep.txt"), "do not touch");
  const hostile = ["..%2F..%2F..%2Fdt-sentinel", "$(touch pwned)", "-rf", ".hidden", "*", "a\\b"];
  for (const [i, s] of hostile.entries()) await addPartition(ws, s, i, { successes: 4000 });
  await addPartition(ws, "linked", 0, { successes: 4000 });
  await addPartition(ws, "planted", 0, { successes: 4000 });
  expectCode(await runPhase(SINGLE, SCRIPT.filter, configArgs(ws)), 0, "filter");
  expectCode(await runPhase(SINGLE, SCRIPT.schedule, configArgs(ws)), 0, "schedule");
  const t = await readTables(ws);
  // A destination server folder that is a symlink to elsewhere, and a symlink at a final name.
  await Deno.mkdir(ws.dstImages, { recursive: true });
  await Deno.symlink(sentinel, join(ws.dstImages, "server=linked"));
  const planted = t.schedule.find((r) => r.serverName === "planted" && r.kind === "successes")!;
  await Deno.mkdir(join(planted.dstPath, ".."), { recursive: true });
  await Deno.symlink(join(sentinel, "keep.txt"), planted.dstPath);
  const before = snapshot([ws.dir, sentinel]);
  const sentinelBefore = snapshot([sentinel]);
  const r = await runPhase(MPICH, SCRIPT.run, configArgs(ws));
  expectCode(r, 3, "run with planted symlinks");
  tally.faults += 2;
  tally.badInputs += hostile.length;
  const failed = failures(r);
  assertEquals(failed.size, 2, r.stderr);
  assertMatch(
    failed.get(planted.dstPath)!,
    /^conflict: .* exists and is not a regular file; not overwritten$/,
  );
  const linked = t.schedule.find((x) => x.serverName === "linked" && x.kind === "successes")!;
  assertMatch(
    failed.get(linked.dstPath)!,
    /^destination folder .*server=linked is a symlink: refused \(never followed\)$/,
  );
  const changed = snapshotDiff(before, snapshot([ws.dir, sentinel]));
  const allowed = [ws.dstImages, ws.dstErrors, ws.tool];
  for (const p of changed) {
    assert(within(p, allowed), `written only in the tool's folders: ${p}`);
  }
  assertEquals(snapshotDiff(sentinelBefore, snapshot([sentinel])), [], "sentinel untouched");
  assertEquals(await Deno.readTextFile(join(sentinel, "keep.txt")), "do not touch");
  const plantedLinks = [join(ws.dstImages, "server=linked"), planted.dstPath];
  for (const p of datasetFiles(ws).filter((x) => !plantedLinks.includes(x))) {
    assertMatch(
      p.slice(ws.dir.length),
      /^\/dataset\/(images|errors)\/server=[A-Za-z0-9._-]+\/[^/]+$/,
    );
  }
  for (const name of ["pwned", "touch"]) {
    assertEquals(listFiles(ws.dir).filter((p) => p.includes(name) && !p.includes("=")), []);
  }
  await Deno.remove(ws.dir, { recursive: true });
  await Deno.remove(sentinel, { recursive: true });
});

Deno.test("security: every file and folder the tool creates respects the user's umask (027), under Open MPI too", async () => {
  const ws = await makeWorkspace();
  for (let p = 0; p < 4; p++) await addPartition(ws, SERVERS[p % 3], p, { successes: 6000 });
  const before = snapshot([ws.dir]);
  for (const [phase, l] of [["filter", SINGLE], ["schedule", SINGLE], ["run", OPENMPI]] as const) {
    const r = await runPhase(l, SCRIPT[phase], configArgs(ws), { umask: "027" });
    expectCode(r, 0, `${phase} under umask 027`);
  }
  const v = await runPhase(MPICH, "phases/verify.ts", [...configArgs(ws), "--deep"], {
    umask: "027",
  });
  expectCode(v, 0, "verify --deep under umask 027");
  const after = snapshot([ws.dir]);
  const created = snapshotDiff(before, after);
  assert(created.length > 20, "the phases created files");
  for (const p of created) {
    const e = after.get(p)!;
    assertEquals(e.mode & 0o027, 0, `${p} (${e.type}, mode ${e.mode.toString(8)}) obeys umask 027`);
  }
  for (const p of datasetFiles(ws)) assertEquals(after.get(p)!.mode, 0o640, p);
  assert(created.some((p) => p.includes("/verification/")), "verification logs checked");
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("tally", () => {
  console.log(
    `fault campaign: ${tally.kills} kills survived, ${tally.faults} faults injected, ` +
      `${tally.badInputs} bad inputs tried, ${tally.lost} files lost ` +
      `(seed ${SEED}, ${tally.filesChecked} files checked after kills` +
      (tally.launcherHangs > 0
        ? `; Open MPI's mpirun stayed up after aborting the job ${tally.launcherHangs} time(s)`
        : "") +
      ")",
  );
  assertEquals(tally.lost, 0);
});
