/**
 * The four jobs of the tool's Slurm chain and their batch scripts in `<repo>/slurm/`.
 * @module
 */

/** The four jobs of a chain. */
export type SlurmPhase = "filter" | "scheduler" | "worker" | "verifier";

/** Batch script of each phase, in `<repo>/slurm/`. */
export const SLURM_SCRIPTS: Readonly<Record<SlurmPhase, string>> = {
  filter: "tools_filter.slurm",
  scheduler: "tools_scheduler.slurm",
  worker: "tools_worker.slurm",
  verifier: "tools_verifier.slurm",
};
