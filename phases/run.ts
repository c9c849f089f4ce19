/**
 * `deno task run --config FILE` (under `mpirun`/`srun`, or as one process): copies this
 * rank's share of the schedule, verified, and gathers every rank's results at rank 0.
 *
 * Test-only hooks: `DT_TEST_CORRUPT=<text>[:<attempts>]` flips a byte of the temporary of
 * every file whose source path contains `<text>`, on storage, once the range holding its middle
 * byte was written and before that range is read back, on its first `<attempts>` attempts (all
 * when omitted), so that tests can prove a corrupted copy is caught, retried and never
 * published. `DT_TEST_TRUNCATE=<text>[:<attempts>]` cuts such a temporary at its middle byte
 * instead, as a write that came up short would leave it. `DT_TEST_SLOW_MS=<ms>` waits that long
 * before each file, so that a test job runs out of its time budget midway.
 * @module
 */

import {
  CONFIG_OPTION,
  configFromCommand,
  formatBytes,
  type OpenComm,
  parseCommand,
  runMpiMain,
  UsageError,
} from "../core/cli.ts";
import { writeFileAtomic } from "../core/records/atomic_file.ts";
import { ExitCode } from "../core/exit_codes.ts";
import { type Md5EngineChoice, openMd5Engine } from "../core/md5/open_engine.ts";
import type { Md5Engine } from "../core/md5/engine.ts";
import { formatDuration, progressLine, readProgress } from "../core/transfer/progress.ts";
import { findDeadline } from "../core/transfer/time_budget.ts";
import { parseSlurmDuration } from "../core/slurm/client.ts";
import { currentToken, formatToken } from "../core/transfer/temporaries.ts";
import { rankLogPath, runRank, summarize } from "../core/transfer/runner.ts";
import type { RankReport, RunnerHooks } from "../core/transfer/runner.ts";
import type { ScheduleRow } from "../core/plan/plan_table.ts";
import { toolPaths } from "../core/layout.ts";
import { readCheckpoint, requireSteps } from "../core/records/checkpoint.ts";

/** Parses `<text>[:<attempts>]`: which files, and on how many first attempts. */
function faultSpec(spec: string | undefined): (row: ScheduleRow, attempt: number) => boolean {
  if (!spec) return () => false;
  const [text, attempts] = spec.split(":");
  const limit = attempts === undefined ? Infinity : Number(attempts);
  return (row, attempt) => row.srcPath.includes(text) && attempt < limit;
}

function testHooks(env: Record<string, string>): RunnerHooks {
  const hooks: RunnerHooks = {};
  const slowMs = Number(env.DT_TEST_SLOW_MS ?? 0);
  if (slowMs > 0) hooks.beforeFile = () => new Promise((r) => setTimeout(r, slowMs));
  const corrupt = faultSpec(env.DT_TEST_CORRUPT);
  const truncate = faultSpec(env.DT_TEST_TRUNCATE);
  if (!env.DT_TEST_CORRUPT && !env.DT_TEST_TRUNCATE) return hooks;
  hooks.beforeReadBack = async (row, tmp, range, attempt) => {
    const at = Math.floor(row.sizeBytes / 2);
    if (at < range.offset || at >= range.offset + range.length) return;
    if (truncate(row, attempt)) await Deno.truncate(tmp, at);
    if (!corrupt(row, attempt)) return;
    const file = await Deno.open(tmp, { read: true, write: true });
    try {
      const one = new Uint8Array(1);
      await file.seek(at, Deno.SeekMode.Start);
      if ((await file.read(one)) !== 1) return;
      one[0] ^= 0xff;
      await file.seek(at, Deno.SeekMode.Start);
      await file.write(one);
      await file.syncData();
    } finally {
      file.close();
    }
  };
  return hooks;
}

/**
 * With `md5_engine: auto` and the SIMD engine, libcrypto too, for a file that is most of a
 * rank's work: one stream gains nothing from SIMD lanes, and libcrypto hashes it off the rank's
 * thread, beside the reads, writes and comparisons.
 */
function openLoneEngine(choice: Md5EngineChoice, engine: Md5Engine): Md5Engine | undefined {
  if (choice !== "auto" || engine.name !== "wasm-simd") return undefined;
  const lone = openMd5Engine({ prefer: "libcrypto" });
  if (lone.name === "libcrypto") return lone;
  lone.close();
  return undefined;
}

async function main(openComm: OpenComm, args: string[]): Promise<number> {
  const cmd = parseCommand(
    "run",
    "Copies this rank's share of schedule.csv into the dataset: each file is read once while\n" +
      "hashed and written, every range of the copy is read back from storage and compared,\n" +
      "then it is published under its final name without ever overwriting. Start it under\n" +
      "mpirun/srun for several ranks. Exit codes: 0 all done,\n" +
      "3 some files failed, 4 stopped for the time budget (submit another job).",
    {
      ...CONFIG_OPTION,
      "dry-run": { type: "boolean", help: "list what this rank would copy, copy nothing" },
      "time-limit": {
        type: "string",
        value: "DURATION",
        help: "stop taking files this long after start ([D-]HH:MM:SS, MM:SS or 90s)",
      },
    },
    args,
  );
  const config = await configFromCommand(cmd, "run");
  const paths = toolPaths(config);
  // Checked before MPI starts, so that a run too early prints its one line alone.
  requireSteps(await readCheckpoint(paths.checkpoint), paths.checkpoint, "schedule");
  const comm = openComm();
  let timeLimitSeconds: number | undefined;
  if (cmd.values["time-limit"] !== undefined) {
    const parsed = parseSlurmDuration(String(cmd.values["time-limit"]));
    if (parsed === null) {
      throw new UsageError(
        `run: --time-limit: expected [D-]HH:MM:SS, MM:SS or 90s, got "${cmd.values["time-limit"]}"`,
      );
    }
    timeLimitSeconds = parsed;
  }
  await Deno.mkdir(paths.logs, { recursive: true });
  const token = formatToken(currentToken());
  const logFile = await Deno.open(rankLogPath(config, comm.rank, token), {
    create: true,
    append: true,
  });
  const encoder = new TextEncoder();
  const log = (line: string) => {
    logFile.writeSync(encoder.encode(`${new Date().toISOString()} [rank ${comm.rank}] ${line}\n`));
    if (/^(FAILED|time budget|kept temporary)/.test(line) || cmd.values["dry-run"]) {
      console.error(`[rank ${comm.rank}/${comm.size}] ${line}`);
    }
  };
  const engine = openMd5Engine({ prefer: config.transfer.md5Engine, log });
  const loneEngine = openLoneEngine(config.transfer.md5Engine, engine);
  if (comm.rank === 0) {
    const lone = loneEngine ? ` (${loneEngine.name} for a file that is most of a rank's work)` : "";
    console.log(
      `run: ${comm.size} rank(s), MPI ${comm.implementation}, md5 engine ${engine.name}${lone}, ` +
        `verify ${config.transfer.verifyMode}`,
    );
  }
  const deadline = await findDeadline({ timeLimitSeconds });
  log(`start: md5 ${engine.name}, deadline ${deadline.source}`);
  let timer: ReturnType<typeof setInterval> | undefined;
  if (comm.rank === 0 && !cmd.values["dry-run"]) {
    const tty = Deno.stdout.isTerminal();
    const every = tty ? 1000 : config.transfer.progressIntervalSeconds * 1000;
    timer = setInterval(async () => {
      const all = await readProgress(paths.logs, comm.size);
      if (all.length === 0) return;
      const line = progressLine(all, Date.now());
      if (tty) Deno.stdout.writeSync(encoder.encode(`\r\x1b[K${line}`));
      else console.log(line);
    }, every);
  }
  let report: RankReport;
  try {
    report = await runRank(config, {
      rank: comm.rank,
      size: comm.size,
      engine,
      loneEngine,
      deadline,
      dryRun: cmd.values["dry-run"] === true,
      log,
      barrier: () => comm.barrier(),
      hooks: testHooks(Deno.env.toObject()),
    });
  } finally {
    if (timer !== undefined) {
      clearInterval(timer);
      if (Deno.stdout.isTerminal()) console.log();
    }
    engine.close();
    loneEngine?.close();
  }
  log(
    `end: ${report.done} copied, ${report.existing} found published, ${report.failed.length} ` +
      `failed, ${report.left} left, ${formatBytes(report.bytes)}`,
  );
  logFile.close();
  const gathered = comm.gather(encoder.encode(JSON.stringify(report)), 0);
  const failed = comm.allreduce(report.failed.length, "sum");
  const stopped = comm.allreduce(report.stoppedForTime ? 1 : 0, "max");
  const code = failed > 0 ? ExitCode.Failures : stopped > 0 ? ExitCode.TimeBudget : ExitCode.Ok;
  if (comm.rank === 0 && gathered && !cmd.values["dry-run"]) {
    const reports: RankReport[] = gathered.map((b) => JSON.parse(new TextDecoder().decode(b)));
    const s = summarize(reports, report.skipped + reports.reduce((n, r) => n + r.assigned, 0));
    await writeFileAtomic(paths.runSummary, JSON.stringify(s, null, 2) + "\n");
    for (const f of s.failures) console.error(`failed: ${f.srcPath} -> ${f.dstPath}: ${f.reason}`);
    console.log(
      `run: ${s.done} files copied and verified, ${s.existing} found already published, ` +
        `${s.skipped} verified before, ${s.failed} failed, ${s.left} left; ` +
        `${formatBytes(s.bytes)} in ${formatDuration(s.seconds)} ` +
        `(${formatBytes(s.bytesPerSecond)}/s, ${s.readsPerByte.toFixed(2)} reads per byte)`,
    );
    if (s.stoppedForTime) {
      console.log(`run: stopped for the time budget; ${s.left} files left for the next job`);
    }
    console.log(`run: summary in ${paths.runSummary}`);
  }
  return code;
}

/** Runs this rank of the copy on `args` (default: the command line); exits with the job's code. */
export function start(args: string[] = Deno.args): Promise<never> {
  return runMpiMain((openComm) => main(openComm, args), {
    log: (line) => console.error(`note: ${line}`),
  });
}

if (import.meta.main) await start();
