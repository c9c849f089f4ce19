/**
 * `deno task status --config FILE [--json]`: where the tool stands, from its files on disk
 * (checkpoint, filter tables, schedule, verification logs, last run summary). A table for
 * people; `--json` prints a {@linkcode StatusReport} (a stable shape, see `core/status.ts`).
 * @module
 */

import { CONFIG_OPTION, configFromCommand, parseCommand, runMain } from "../core/cli.ts";
import { ExitCode } from "../core/exit_codes.ts";
import { formatStatus, readStatus } from "../core/audit/status.ts";
import type { StatusReport } from "../core/audit/status.ts";

/** Prints the status for `args` (default: the command line) and exits with its code. */
export function start(args: string[] = Deno.args): Promise<never> {
  return runMain(async () => {
    const cmd = parseCommand(
      "status",
      "Shows where the transfer stands: phases done, files and bytes planned, scheduled,\n" +
        "verified, failed and left, the last run's rate and the time left at that rate.\n" +
        "Reads the tool's own files (and checks again the filter's problems with a stat each).\n" +
        "Exit code 0 whatever the state; 2 when the config is wrong.",
      {
        ...CONFIG_OPTION,
        json: { type: "boolean", help: "print one JSON object (stable shape) instead" },
      },
      args,
    );
    const config = await configFromCommand(cmd, "status");
    const status: StatusReport = await readStatus(config);
    console.log(cmd.values.json ? JSON.stringify(status, null, 2) : formatStatus(status));
    return ExitCode.Ok;
  });
}

if (import.meta.main) await start();
