/**
 * Fault-campaign helpers: a seeded PRNG, processes started in their own session so that a
 * random rank can be killed with SIGKILL and every leftover process found, md5sum in bulk,
 * workspace snapshots for before/after comparisons, and the dataset invariants.
 * @module
 */

import { join } from "node:path";
import { assert, assertEquals } from "./assert.ts";
import { datasetFiles, REPO } from "./fixture.ts";
import type { RunResult, Workspace } from "./fixture.ts";
import { cleanEnv, launcherArgs } from "./mpi_launch.ts";
import type { MpiImpl } from "./mpi_launch.ts";
import { readFilterTables, readSchedule } from "../../core/plan/plan_table.ts";
import type { PlanRow, ScheduleRow } from "../../core/plan/plan_table.ts";
import { readVerificationLogs } from "../../core/records/verification_log.ts";
import type { VerificationState } from "../../core/records/verification_log.ts";
import { parseTemporaryName } from "../../core/layout.ts";
import { sleep } from "./sleep.ts";

/** How a phase is started: alone, or under a launcher with `n` ranks. */
export type Launch = { kind: "single" } | { kind: "mpi"; impl: MpiImpl; n: number };

/** Short label of a launch, for messages. */
export function launchLabel(l: Launch): string {
  return l.kind === "single" ? "single process" : `${l.impl} -n ${l.n}`;
}

/** The command line of `script` started by `launch`, in a new session (`setsid`). */
export function commandLine(launch: Launch, script: string, args: string[]): string[] {
  const argv = [Deno.execPath(), "run", "-A", join(REPO, script), ...args];
  return [
    "setsid",
    ...(launch.kind === "single" ? argv : launcherArgs(launch.impl, launch.n, argv)),
  ];
}

/** A phase running in its own session. */
export interface Session {
  /** Pid of the session leader (the launcher, or the single process). */
  pid: number;
  /** Resolves with the result once the leader exits. */
  result: Promise<RunResult>;
  /** True once the leader exited. */
  exited: () => boolean;
}

/** Starts `script` under `launch` in a new session; output is captured. */
export function startSession(
  launch: Launch,
  script: string,
  args: string[],
  options: { env?: Record<string, string>; umask?: string } = {},
): Session {
  let argv = commandLine(launch, script, args);
  if (options.umask) argv = ["sh", "-c", `umask ${options.umask}; exec "$@"`, "sh", ...argv];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: cleanEnv(options.env),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let done = false;
  const dec = new TextDecoder();
  const result = child.output().then((o) => {
    done = true;
    return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
  });
  return { pid: child.pid, result, exited: () => done };
}

/** Runs `script` under `launch` to its end (fails after `timeoutMs`). */
export async function runPhase(
  launch: Launch,
  script: string,
  args: string[],
  options: { env?: Record<string, string>; umask?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  const s = startSession(launch, script, args, options);
  return await waitSession(s, options.timeoutMs ?? 120_000);
}

/** A session whose leader did not end in time; its processes were killed. */
export class SessionTimeout extends Error {
  /** What the leader had said when it was killed. */
  readonly result: RunResult;
  constructor(pid: number, timeoutMs: number, result: RunResult) {
    super(`session ${pid} did not end within ${timeoutMs} ms:\n${result.stderr}`);
    this.name = "SessionTimeout";
    this.result = result;
  }
}

/**
 * Open MPI 4's `mpirun` sometimes stays up for good after it has reported a rank's death and
 * aborted the job, when the rank died before its PMIx connection was set up ("rank 1 with PID
 * 0 ... exited on signal 9", then "PMIX ERROR: UNREACHABLE"): a launcher defect, not one of the
 * tool's. Whether `stderr` shows exactly that.
 */
export function isOpenMpiLauncherHang(stderr: string): boolean {
  return /job has been aborted/.test(stderr) && /PMIX ERROR: UNREACHABLE/.test(stderr) &&
    /noticed that process rank \d+ with PID 0 /.test(stderr);
}

/** Waits for a session's leader; after `timeoutMs` kills the whole session and fails. */
export async function waitSession(s: Session, timeoutMs: number): Promise<RunResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((r) => timer = setTimeout(() => r(null), timeoutMs));
  const out = await Promise.race([s.result, timeout]);
  clearTimeout(timer);
  if (out === null) {
    for (const p of sessionMembers(s.pid)) killQuietly(p);
    throw new SessionTimeout(s.pid, timeoutMs, await s.result);
  }
  // Ranks orphaned by a dead launcher stay in the session: wait for them, then kill them.
  const until = Date.now() + 15_000;
  while (sessionMembers(s.pid).length > 0 && Date.now() < until) await sleep(20);
  const stragglers = sessionMembers(s.pid);
  for (const p of stragglers) killQuietly(p);
  assertEquals(stragglers, [], `no process of session ${s.pid} outlives its launcher by 15 s`);
  return out;
}

function killQuietly(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * Pids of the live processes of session `sid` and of their descendants (zombies excluded);
 * a launcher may start its ranks in sessions of their own (MPICH's proxy does).
 */
export function sessionMembers(sid: number): number[] {
  const procs: Array<{ pid: number; ppid: number; session: number }> = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let stat: string;
    try {
      stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
    } catch {
      continue;
    }
    // Fields after the command name in parentheses: state ppid pgrp session ...
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (f[0] === "Z" || f[0] === "X") continue;
    procs.push({ pid: Number(e.name), ppid: Number(f[1]), session: Number(f[3]) });
  }
  const family = new Set(procs.filter((p) => p.session === sid).map((p) => p.pid));
  let grown = true;
  while (grown) {
    grown = false;
    for (const p of procs) {
      if (!family.has(p.pid) && family.has(p.ppid)) {
        family.add(p.pid);
        grown = true;
      }
    }
  }
  return [...family].sort((a, b) => a - b);
}

/** The Deno processes (the ranks, or the single process) of session `sid`. */
export function sessionRanks(sid: number): number[] {
  const exe = Deno.execPath();
  return sessionMembers(sid).filter((p) => {
    try {
      return Deno.readLinkSync(`/proc/${p}/exe`) === exe;
    } catch {
      return false;
    }
  });
}

/** What {@linkcode killRandomRankAt} did. */
export interface KillOutcome {
  /** Pid killed, or null when the phase ended before the moment came. */
  victim: number | null;
  /** Ms after the start when the SIGKILL was sent. */
  atMs: number;
  /** Result of the launcher (or single process). */
  result: RunResult;
  /**
   * Open MPI's launcher did not end after it aborted the job (see
   * {@linkcode isOpenMpiLauncherHang}); the session was killed.
   */
  launcherHung: boolean;
}

/**
 * Sends SIGKILL to one rank of `s`, drawn with `rand`, `atMs` after `startedAt`
 * (`performance.now()` time); waits for the session to end.
 */
export async function killRandomRankAt(
  s: Session,
  startedAt: number,
  atMs: number,
  rand: () => number,
): Promise<KillOutcome> {
  let victim: number | null = null;
  let when = 0;
  while (!s.exited()) {
    const elapsed = performance.now() - startedAt;
    if (elapsed >= atMs) {
      const ranks = sessionRanks(s.pid);
      if (ranks.length > 0) {
        victim = ranks[Math.floor(rand() * ranks.length)];
        when = elapsed;
        try {
          Deno.kill(victim, "SIGKILL");
        } catch {
          victim = null; // it ended on its own in between
        }
        if (victim !== null) break;
      }
    }
    await sleep(Math.min(5, Math.max(1, atMs - elapsed)));
  }
  try {
    const result = await waitSession(s, 60_000);
    return { victim, atMs: Math.round(when), result, launcherHung: false };
  } catch (error) {
    if (!(error instanceof SessionTimeout) || !isOpenMpiLauncherHang(error.result.stderr)) {
      throw error;
    }
    return { victim, atMs: Math.round(when), result: error.result, launcherHung: true };
  }
}

/** MD5 of many files with one `md5sum` call: path to hex digest. */
export async function md5sums(paths: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < paths.length; i += 500) {
    const chunk = paths.slice(i, i + 500);
    const r = await new Deno.Command("md5sum", { args: ["--", ...chunk], stdout: "piped" })
      .output();
    assert(r.success, `md5sum of ${chunk.length} files`);
    const lines = new TextDecoder().decode(r.stdout).trimEnd().split("\n");
    assertEquals(lines.length, chunk.length, "one md5sum line per file");
    lines.forEach((l, j) => out.set(chunk[j], l.slice(0, 32)));
  }
  return out;
}

/** One entry of a {@linkcode snapshot}. */
export interface Entry {
  /** `file`, `dir`, `symlink -> target` or `other`. */
  type: string;
  /** Size of a file. */
  size: number;
  /** Permission bits. */
  mode: number;
  /** Modification time in ms. */
  mtime: number;
}

/** Every entry below each of `roots` (symlinks not followed): path to what it is. */
export function snapshot(roots: string[]): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (p: string) => {
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(p);
    } catch {
      return;
    }
    const type = info.isSymlink
      ? `symlink -> ${Deno.readLinkSync(p)}`
      : info.isDirectory
      ? "dir"
      : info.isFile
      ? "file"
      : "other";
    out.set(p, {
      type,
      size: info.isFile ? info.size : 0,
      mode: (info.mode ?? 0) & 0o7777,
      mtime: info.isDirectory ? 0 : info.mtime?.getTime() ?? 0,
    });
    if (info.isDirectory) { for (const e of Deno.readDirSync(p)) walk(join(p, e.name)); }
  };
  for (const r of roots) walk(r);
  return out;
}

/** Paths added, removed or changed between two snapshots. */
export function snapshotDiff(before: Map<string, Entry>, after: Map<string, Entry>): string[] {
  const out: string[] = [];
  for (const [p, e] of after) {
    const b = before.get(p);
    if (!b) out.push(p);
    else if (JSON.stringify(b) !== JSON.stringify(e)) out.push(p);
  }
  for (const p of before.keys()) if (!after.has(p)) out.push(p);
  return out.sort();
}

/** Source files of the completed partitions of the tree (what the filter must plan). */
export function completedSources(ws: Workspace): string[] {
  const out: string[] = [];
  for (const s of Deno.readDirSync(ws.images)) {
    if (!s.isDirectory || !s.name.startsWith("server_name=")) continue;
    for (const p of Deno.readDirSync(join(ws.images, s.name))) {
      const dir = join(ws.images, s.name, p.name);
      if (!p.isDirectory || !p.name.startsWith("partition_id=")) continue;
      try {
        Deno.lstatSync(join(dir, "completed"));
      } catch {
        continue;
      }
      for (const f of ["successes.parquet", "errors.parquet"]) out.push(join(dir, f));
    }
  }
  return out.sort();
}

/** What the tool's tables say after a fault: all parsed, nothing planned twice. */
export interface Tables {
  /** Rows of every filter table. */
  planned: PlanRow[];
  /** Rows of the schedule (empty when there is none yet). */
  schedule: ScheduleRow[];
  /** The verification logs. */
  logs: VerificationState;
}

/**
 * Reads the filter tables, the schedule and the verification logs and checks that they parse,
 * that no source is planned or scheduled twice, that no filter table is half written, and
 * that a log holds a bad line only as its torn last line.
 */
export async function readTables(ws: Workspace): Promise<Tables> {
  const planned = await readFilterTables(join(ws.tool, "filter_table"));
  assertEquals(new Set(planned.map((r) => r.srcPath)).size, planned.length, "planned once");
  let schedule: ScheduleRow[] = [];
  try {
    schedule = await readSchedule(join(ws.tool, "schedule.csv"));
  } catch (err) {
    if (!/no schedule yet/.test((err as Error).message)) throw err;
  }
  assertEquals(new Set(schedule.map((r) => r.srcPath)).size, schedule.length, "scheduled once");
  const bySrc = new Map(planned.map((r) => [r.srcPath, r.dstPath]));
  for (const r of schedule) {
    assertEquals(bySrc.get(r.srcPath), r.dstPath, `schedule row of ${r.srcPath} as planned`);
  }
  const logs = await readVerificationLogs(join(ws.tool, "verification"));
  for (const b of logs.badLines) assert(/:last line \(torn\)$/.test(b), `only a torn tail: ${b}`);
  return { planned, schedule, logs };
}

/**
 * Checks the dataset after a fault, before any re-run: every file is a scheduled final name
 * with the source's exact bytes, or a temporary of one; and returns the published ones.
 */
export async function checkPartialDataset(ws: Workspace, t: Tables): Promise<string[]> {
  const scheduled = new Map(t.schedule.map((r) => [r.dstPath, r]));
  const planned = new Map(t.planned.map((r) => [r.dstPath, r]));
  const published: string[] = [];
  for (const p of datasetFiles(ws)) {
    const name = p.slice(p.lastIndexOf("/") + 1);
    const tmp = parseTemporaryName(name);
    const final = tmp ? join(p, "..", tmp.finalName) : p;
    assert(planned.has(final) || scheduled.has(final), `${p} belongs to a planned file`);
    if (!tmp) published.push(p);
  }
  const sums = await md5sums([...published, ...published.map((p) => planned.get(p)!.srcPath)]);
  for (const p of published) {
    assertEquals(sums.get(p), sums.get(planned.get(p)!.srcPath), `${p} has its source's bytes`);
  }
  return published;
}

/**
 * Checks a completed transfer: exactly the scheduled files are in the dataset (no
 * temporaries), each with its source's md5 (by `md5sum`), each verified in the logs with that
 * md5. Returns how many scheduled files are missing or differ (0 when the assertions pass).
 */
export async function checkComplete(ws: Workspace, t: Tables): Promise<number> {
  const files = datasetFiles(ws);
  const expected = t.schedule.map((r) => r.dstPath).sort();
  const present = new Set(files);
  const sums = await md5sums([
    ...files,
    ...t.schedule.map((r) => r.srcPath),
  ]);
  let lost = 0;
  for (const r of t.schedule) {
    if (!present.has(r.dstPath) || sums.get(r.dstPath) !== sums.get(r.srcPath)) lost++;
  }
  assertEquals(files, expected, "exactly the scheduled files, once each, no temporaries");
  for (const r of t.schedule) {
    assertEquals(sums.get(r.dstPath), sums.get(r.srcPath), `${r.dstPath} identical to source`);
    const rec = t.logs.byDst.get(r.dstPath);
    assert(rec?.status === "verified", `${r.dstPath} verified in the logs`);
    assertEquals(rec.hashsumSrc, sums.get(r.srcPath), `logged md5 of ${r.srcPath}`);
  }
  return lost;
}
