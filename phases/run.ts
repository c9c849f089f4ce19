/**
 * `deno task run --config FILE` (under `mpirun`/`srun`, or as one process): copies this
 * rank's share of the schedule, verified, and gathers every rank's results at rank 0
 * (`runTransfer` in core/transfer/run_transfer.ts).
 * @module
 */

import {
  CONFIG_OPTION,
  configFromCommand,
  type OptionSpec,
  parseCommand,
  runMpiMain,
} from "../core/cli.ts";
import { runTransfer, type RunTransferOptions } from "../core/transfer/run_transfer.ts";

/** The options of `run`. */
const RUN_OPTIONS: Record<string, OptionSpec> = {
  ...CONFIG_OPTION,
  "dry-run": { type: "boolean", help: "list what this rank would copy, copy nothing" },
  "time-limit": {
    type: "string",
    value: "DURATION",
    help: "stop taking files this long after start ([D-]HH:MM:SS, MM:SS or 90s)",
  },
};

/** Parses the command line of `run` into the options of `runTransfer`. */
export async function parseRunCommand(args: string[]): Promise<RunTransferOptions> {
  const cmd = parseCommand(
    "run",
    "Copies this rank's share of schedule.csv into the dataset: each file is read once while\n" +
      "hashed and written, read back from storage and compared with the source, then published\n" +
      "under its final name without ever overwriting. Start it under mpirun/srun for several\n" +
      "ranks. Exit codes: 0 all done, 2 bad input or another run on the same tool folder, 3 some\n" +
      "files failed, 4 stopped for the time budget (submit another job).",
    RUN_OPTIONS,
    args,
  );
  return {
    config: await configFromCommand(cmd, "run"),
    dryRun: cmd.values["dry-run"] === true,
    timeLimit: cmd.values["time-limit"] as string | undefined,
  };
}

/** Runs this rank of the copy on `args` (default: the command line); exits with the job's code. */
export function start(args: string[] = Deno.args): Promise<never> {
  return runMpiMain(
    async (openComm) => await runTransfer(openComm, await parseRunCommand(args)),
    { log: (line) => console.error(`note: ${line}`) },
  );
}

if (import.meta.main) await start();
