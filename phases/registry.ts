/**
 * The phases `phases/start.ts` starts, by name (not an entry point). Each module is imported only
 * when its phase starts, so that `phases/start.ts` itself imports no npm package.
 * @module
 */

import type { PhaseLoader } from "../core/setup/start_phase.ts";

/** Every phase `deno task <phase>` and the Slurm jobs start, with the loader of its module. */
export const PHASES: Readonly<Record<string, PhaseLoader>> = {
  setup: () => import("./setup.ts"),
  filter: () => import("./filter.ts"),
  schedule: () => import("./schedule.ts"),
  run: () => import("./run.ts"),
  verify: () => import("./verify.ts"),
  status: () => import("./status.ts"),
  submit: () => import("./submit.ts"),
};
