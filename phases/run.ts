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
      "hashed, synced, verified (md5 or bytes), then published under its final name without\n" +
      "ever overwriting. Start it under mpirun/srun for several ranks. Exit codes: 0 all done,\n" +
      "2 bad input or another run on the same tool folder, 3 some files failed, 4 stopped for\n" +
      "the time budget (submit another job).",
    RUN_OPTIONS,
    args,
  );
  return {
    config: await configFromCommand(cmd, "run"),
    dryRun: cmd.values["dry-run"] === true,
    timeLimit: cmd.values["time-limit"] as string | undefined,
  };
}

if (import.meta.main) {
  await runMpiMain(
    async (comm) => await runTransfer(comm, await parseRunCommand(Deno.args)),
    { log: (line) => console.error(`note: ${line}`) },
  );
}
