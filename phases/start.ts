/**
 * `deno task <phase>` and the Slurm jobs start every phase through this entry point:
 *
 * ```sh
 * deno run -q --lock=deno.lock --frozen -A phases/start.ts <phase> [options]   # deno task <phase>
 * deno run -q --cached-only --lock=... --frozen -A .../phases/start.ts <phase> ...  # Slurm jobs
 * ```
 *
 * It imports no npm package, so it runs even when the Deno cache is empty, then loads the phase.
 * When a dependency of the phase is neither cached nor downloadable (a compute node without
 * network access before `deno task setup`), it prints one line — what is missing, the
 * `DENO_DIR` searched, and `deno task setup` — on the rank a launcher numbers 0, and exits 2 on
 * every rank.
 * @module
 */

import { startPhase } from "../core/setup/start_phase.ts";
import { PHASES } from "./registry.ts";

if (import.meta.main) {
  const [name = "", ...args] = Deno.args;
  await startPhase(name, PHASES, args);
}
