/**
 * `deno task verify --config FILE [--deep]`: compares the plan with every verification log
 * (no data file is read), prints what is left and every failure, writes `manifest.parquet`
 * and the `_MD5SUMS` of each destination folder, and sets `completed: true` in the checkpoint
 * when every planned file is verified.
 *
 * With `--deep` (under `mpirun`/`srun`, or as one process) every rank also re-reads its share
 * of the published files (balanced by bytes) and lists its share of the server folders:
 * missing, truncated and altered files and files no log explains are reported by rank 0.
 *
 * Exit codes: 0 complete; 5 files left (submit another run); 3 failures with nothing left,
 * or any difference found by `--deep`.
 * @module
 */

import {
  CONFIG_OPTION,
  configFromCommand,
  formatBytes,
  parseCommand,
  runMpiMain,
} from "../core/cli.ts";
import { ExitCode } from "../core/exit_codes.ts";
import type { ExitCodeValue } from "../core/exit_codes.ts";
import { openMd5Engine } from "../core/md5/open_engine.ts";
import { formatDuration } from "../core/transfer/progress.ts";
import { readTransferState, verifyTransfer } from "../core/audit/verify.ts";
import type { PendingFile, Tally, VerifyTransferResult } from "../core/audit/verify.ts";
import { deepCheckRank, mergeDeepReports } from "../core/audit/deep_verify.ts";
import type { DeepRankReport, DeepReport } from "../core/audit/deep_verify.ts";
import type { Comm } from "../mpi/mod.ts";

/** Pending files listed by name before the rest is summed up. */
const LIST_AT_MOST = 20;

const tally = (t: Tally) => `${t.files} (${formatBytes(t.bytes)})`;

function listSome(what: string, files: readonly PendingFile[]): void {
  for (const f of files.slice(0, LIST_AT_MOST)) {
    console.log(`${what}: ${f.srcPath} -> ${f.dstPath} (${formatBytes(f.sizeBytes)})`);
  }
  if (files.length > LIST_AT_MOST) {
    console.log(`${what}: ... and ${files.length - LIST_AT_MOST} more`);
  }
}

function printResult(r: VerifyTransferResult, deep: DeepReport | null): void {
  const s = r.state;
  for (const line of s.badLogLines) console.error(`note: unreadable log line ignored: ${line}`);
  for (const f of s.failures) console.error(`failed: ${f.srcPath} -> ${f.dstPath}: ${f.reason}`);
  listSome("left", s.leftFiles);
  listSome("unscheduled", s.unscheduledFiles);
  if (deep) {
    for (const p of deep.problems) console.error(`${p.kind}: ${p.path}: ${p.detail}`);
    for (const t of deep.temporaries) console.log(`note: temporary ${t}`);
    console.log(
      `verify --deep: ${deep.ranks} rank(s) re-read ${deep.files} files ` +
        `(${formatBytes(deep.bytes)}) and listed ${deep.folders} folders in ` +
        `${formatDuration(deep.elapsedMs / 1000)}: ${deep.problems.length} problem(s), ` +
        `${deep.temporaries.length} temporar${deep.temporaries.length === 1 ? "y" : "ies"}`,
    );
  }
  console.log(
    `verify: ${tally(s.scheduled)} scheduled, ${tally(s.verified)} verified, ` +
      `${tally(s.failed)} failed, ${tally(s.left)} left, ${tally(s.unscheduled)} not scheduled`,
  );
  console.log(`verify: manifest of ${s.published.length} published files in ${r.manifest}`);
  for (const p of r.md5sums) console.log(`verify: wrote ${p}`);
  if (r.code === ExitCode.Ok) {
    console.log("verify: complete; checkpoint says completed: true");
  } else if (r.code === ExitCode.Incomplete) {
    const todo = s.left.files + s.unscheduled.files;
    const hint = s.unscheduled.files > 0
      ? "run 'deno task schedule' then 'deno task run'"
      : "submit another run";
    console.log(`verify: ${todo} file(s) left: ${hint}`);
  } else if (deep && deep.problems.length > 0) {
    console.log(
      `verify: the destination differs from the logs in ${deep.problems.length} place(s) ` +
        "(listed above); restore or remove those files, then run 'deno task verify --deep' again",
    );
  } else {
    console.log(
      `verify: ${s.failed.files} file(s) failed (reasons above); fix the causes and run again`,
    );
  }
}

async function main(comm: Comm): Promise<number> {
  const cmd = parseCommand(
    "verify",
    "Compares schedule.csv with every verification log (no data file is read), prints what is\n" +
      "left and every failure, writes manifest.parquet and _MD5SUMS in each destination folder,\n" +
      "and sets completed: true in the checkpoint when everything is verified. With --deep\n" +
      "(under mpirun/srun or alone) every published file is re-read and its MD5 checked, and\n" +
      "files no log explains are listed. Exit codes: 0 complete, 5 files left, 3 failures or\n" +
      "differences found by --deep.",
    {
      ...CONFIG_OPTION,
      deep: { type: "boolean", help: "re-read every published file and look for strays" },
    },
  );
  const config = await configFromCommand(cmd, "verify");
  let code: ExitCodeValue = ExitCode.Ok;
  if (cmd.values.deep !== true) {
    if (comm.rank === 0) {
      const r = await verifyTransfer(config);
      printResult(r, null);
      code = r.code;
    }
    return comm.allreduce(code, "max");
  }
  const state = await readTransferState(config, { requireSchedule: true });
  const engine = openMd5Engine({
    prefer: config.transfer.md5Engine,
    log: (line) => console.error(`[rank ${comm.rank}] ${line}`),
  });
  if (comm.rank === 0) {
    console.log(
      `verify --deep: ${comm.size} rank(s), MPI ${comm.implementation}, md5 engine ${engine.name}, ` +
        `${state.published.length} published files`,
    );
  }
  let mine: DeepRankReport;
  try {
    mine = await deepCheckRank(config, state, { rank: comm.rank, size: comm.size, engine });
  } finally {
    engine.close();
  }
  const gathered = comm.gatherObject(mine, 0);
  if (comm.rank === 0 && gathered) {
    const deep = mergeDeepReports(gathered);
    const r = await verifyTransfer(config, { state, deepProblems: deep.problems.length > 0 });
    printResult(r, deep);
    code = r.code;
  }
  return comm.allreduce(code, "max");
}

if (import.meta.main) {
  await runMpiMain(main, { log: (line) => console.error(`note: ${line}`) });
}
