/**
 * `deno task verify --config FILE [--deep [--repair]]`: compares the plan with every
 * verification log, checks with one stat each that every published file is there with its
 * logged size, checks again the problems the filter recorded, prints what is left and every
 * failure, writes `manifest.parquet` and the `_MD5SUMS` of each destination folder, and sets
 * `completed: true` in the checkpoint when every planned file is verified and nothing stands
 * in the way. Without `--deep` it never starts MPI.
 *
 * With `--deep` (under `mpirun`/`srun`, or as one process) every rank also re-reads its share
 * of the published files (balanced by bytes) and lists its share of the server folders:
 * missing, truncated and altered files and files no log explains are reported by rank 0.
 * `--repair` then records the missing, truncated and altered ones as no longer verified,
 * moving the damaged ones into the tool's quarantine folder, so that the next run copies them
 * again.
 *
 * Exit codes: 0 complete; 5 files left (run again); 3 failures, damage, standing filter
 * problems or any difference found by `--deep`, with nothing left.
 * @module
 */

import {
  CONFIG_OPTION,
  configFromCommand,
  type OpenComm,
  parseCommand,
  runMpiMain,
  UsageError,
} from "../core/cli.ts";
import { verifyTransfer } from "../core/audit/verify.ts";
import { runDeepVerify } from "../core/audit/deep_verify.ts";
import { printVerifyReport } from "../core/audit/verify_report.ts";

async function main(openComm: OpenComm, args: string[]): Promise<number> {
  const cmd = parseCommand(
    "verify",
    "Compares schedule.csv with every verification log, checks with one stat each that every\n" +
      "published file is there with its logged size, prints what is left and every failure,\n" +
      "writes manifest.parquet and _MD5SUMS in each destination folder, and sets completed:\n" +
      "true in the checkpoint when everything is verified. With --deep (under mpirun/srun or\n" +
      "alone) every published file is re-read and its MD5 checked, and files no log explains\n" +
      "are listed; --repair then has missing, truncated and altered files copied again by the\n" +
      "next run (damaged ones are moved to the tool's quarantine folder, never deleted).\n" +
      "Exit codes: 0 complete, 5 files left, 3 failures, damage or filter problems.",
    {
      ...CONFIG_OPTION,
      deep: { type: "boolean", help: "re-read every published file and look for strays" },
      repair: {
        type: "boolean",
        help: "with --deep: record damaged files as not verified, quarantine them",
      },
    },
    args,
  );
  const deep = cmd.values.deep === true;
  if (cmd.values.repair === true && !deep) {
    throw new UsageError(
      "verify: --repair acts on what the deep check finds; run 'deno task verify --deep --repair'",
    );
  }
  const config = await configFromCommand(cmd, "verify");
  if (!deep) {
    const r = await verifyTransfer(config);
    printVerifyReport(r, null);
    return r.code;
  }
  const { code, result } = await runDeepVerify(config, openComm(), {
    repair: cmd.values.repair === true,
    announce: (line) => console.log(line),
    log: (line) => console.error(line),
  });
  if (result !== null) printVerifyReport(result.verify, result.deep);
  return code;
}

/** Runs this rank of verify on `args` (default: the command line); exits with the job's code. */
export function start(args: string[] = Deno.args): Promise<never> {
  return runMpiMain((openComm) => main(openComm, args), {
    log: (line) => console.error(`note: ${line}`),
  });
}

if (import.meta.main) await start();
