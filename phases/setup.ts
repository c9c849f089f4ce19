/**
 * `deno task setup`: run once on a node with network access (a login node). Caches everything
 * the phases need into `DENO_DIR`, checks that each phase starts from that cache alone and that
 * an MPI library loads, and prints the `DENO_DIR` to export in `slurm/site.sh`.
 * @module
 */

import { parseCommand, runMain } from "../core/cli.ts";
import { ExitCode } from "../core/exit_codes.ts";
import { runSetup } from "../core/setup/setup.ts";
import { repositoryRoot } from "../core/repository_root.ts";
import { PHASES } from "./registry.ts";

/** Runs the setup on `args` (default: the command line) and exits with its code. */
export function start(args: string[] = Deno.args): Promise<never> {
  return runMain(async () => {
    parseCommand(
      "setup",
      "Caches every npm package the phases need (pinned by deno.lock; nothing only the tests\n" +
        "use) into DENO_DIR (default: Deno's cache), starts each phase from that cache alone,\n" +
        "checks that an MPI library loads (DT_MPI_LIBRARY, else every known libmpi), and prints\n" +
        "the lines to put in slurm/site.sh. Run it where the npm registry is reachable; it is\n" +
        "safe to run again. Exit codes: 0 ready, 2 something to fix (named).",
      {},
      args,
    );
    const phases = Object.keys(PHASES).filter((name) => name !== "setup");
    await runSetup({ home: repositoryRoot(), phases, log: console.log });
    return ExitCode.Ok;
  });
}

if (import.meta.main) await start();
