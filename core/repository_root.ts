/**
 * Where this repository is on disk: the Slurm jobs and the setup phase need it to find
 * `phases/`, `slurm/` and the lock file.
 * @module
 */

/** Root of this repository: the folder holding `core/`. */
export function repositoryRoot(): string {
  return new URL("../", import.meta.url).pathname.replace(/\/$/, "");
}
