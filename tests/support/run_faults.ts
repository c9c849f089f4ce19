/**
 * Runs of the run phase with a fault of the test driver (`tests/fixtures/run_driver.ts`): a
 * copy corrupted or cut short on storage, for the tests that check it is caught, retried and
 * never published; and the ranks' logs that name it.
 * @module
 */

import { join } from "node:path";
import type { RunResult, Workspace } from "./fixture.ts";
import { type MpiImpl, mpirun } from "./mpi_launch.ts";
import { RUN_DRIVER } from "./run_gate.ts";

/** The driver's faults: `--corrupt` flips the middle byte of the copy, `--truncate` cuts it. */
export type CopyFault = "--corrupt" | "--truncate";

/**
 * Runs the phase on `ws` with 2 ranks under `impl`, with `fault` on the copy of every file
 * whose source path holds `spec`'s text (`TEXT[:N]`: on the first N attempts, else on all).
 */
export function runWithFault(
  impl: MpiImpl,
  ws: Workspace,
  fault: CopyFault,
  spec: string,
): Promise<RunResult> {
  return mpirun(impl, 2, RUN_DRIVER, ["--config", ws.configPath, fault, spec]);
}

/** The text of every rank log (`<tool>/logs/*.log`) of `ws`, one after the other. */
export function rankLogText(ws: Workspace): string {
  const logs = join(ws.tool, "logs");
  return [...Deno.readDirSync(logs)]
    .filter((e) => e.name.endsWith(".log"))
    .map((e) => Deno.readTextFileSync(join(logs, e.name))).join("");
}
