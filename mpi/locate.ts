/**
 * Launcher detection and the choice of libmpi, from the process environment only.
 *
 * A process counts as started by an MPI launcher when one of these is set:
 * - `OMPI_COMM_WORLD_SIZE` / `OMPI_COMM_WORLD_RANK`: Open MPI's `mpirun`;
 * - `PMI_SIZE` / `PMI_RANK` / `PMI_FD` / `PMI_PORT` / `HYDI_CONTROL_FD`: MPICH's Hydra
 *   (`mpirun.mpich`, Intel MPI) or `srun --mpi=pmi2`; `MV2_COMM_WORLD_SIZE`: MVAPICH;
 * - `PMIX_RANK` / `PMIX_NAMESPACE`: a PMIx server (`srun --mpi=pmix`, `prterun`);
 * - `SLURM_STEP_ID` with `SLURM_STEP_NUM_TASKS` (or `SLURM_NTASKS` / `SLURM_NPROCS`): a task
 *   of an `srun` step. A batch script alone (`SLURM_NTASKS` without a step) is not a launcher.
 *
 * `MPIR_CVAR_*`, `HYDRA_*` (MPICH) and `OMPI_MCA_*` (Open MPI) are user settings as much as
 * launcher output, so they only change which library is tried first.
 * @module
 */

/** The kind of launcher the environment shows. */
export type LauncherKind = "openmpi" | "pmi" | "pmix" | "slurm";

/** What the environment says about the launcher that started this process. */
export interface Launcher {
  /** The kind of launcher. */
  readonly kind: LauncherKind;
  /** Processes the launcher started, or `null` when the environment does not say. */
  readonly size: number | null;
  /** The variables that showed the launcher, as `NAME=value`, for messages. */
  readonly evidence: string;
}

/** Open MPI's sonames, most specific first. */
export const OPENMPI_LIBRARIES: readonly string[] = ["libmpi.so.40"];
/** MPICH-family sonames (MPICH, MVAPICH, Intel MPI, Cray MPICH), most specific first. */
export const MPICH_LIBRARIES: readonly string[] = ["libmpich.so.12", "libmpi.so.12"];
/** The unversioned name, which on Debian is an alternatives link to either family. */
export const GENERIC_LIBRARY = "libmpi.so";

/** Environment variables, as from `Deno.env.toObject()`. */
export type Env = Readonly<Record<string, string | undefined>>;

function count(env: Env, name: string): number | null {
  const text = env[name];
  if (text === undefined || !/^\d+$/.test(text.trim())) return null;
  return Number(text.trim());
}

function firstSet(env: Env, names: readonly string[]): string | null {
  for (const name of names) if (env[name] !== undefined) return name;
  return null;
}

function evidence(env: Env, names: readonly string[]): string {
  return names.filter((name) => env[name] !== undefined).map((name) => `${name}=${env[name]}`)
    .join(", ");
}

function slurmStepSize(env: Env): { size: number | null; names: string[] } | null {
  const step = firstSet(env, ["SLURM_STEP_ID", "SLURM_STEPID"]);
  if (step === null) return null;
  const sizeVar = firstSet(env, ["SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS"]);
  return {
    size: sizeVar === null ? null : count(env, sizeVar),
    names: sizeVar === null ? [step] : [sizeVar, step],
  };
}

/** Detects the launcher that started this process, or `null` when there is none. */
export function detectLauncher(env: Env): Launcher | null {
  const ompi = ["OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"];
  if (firstSet(env, ompi) !== null) {
    return {
      kind: "openmpi",
      size: count(env, "OMPI_COMM_WORLD_SIZE"),
      evidence: evidence(env, ompi),
    };
  }
  const pmi = ["PMI_SIZE", "PMI_RANK", "PMI_FD", "PMI_PORT", "HYDI_CONTROL_FD"];
  const mv2 = ["MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"];
  if (firstSet(env, [...pmi, ...mv2]) !== null) {
    const size = count(env, "PMI_SIZE") ?? count(env, "MV2_COMM_WORLD_SIZE") ??
      slurmStepSize(env)?.size ?? null;
    return { kind: "pmi", size, evidence: evidence(env, [...pmi, ...mv2]) };
  }
  const slurm = slurmStepSize(env);
  const pmix = ["PMIX_RANK", "PMIX_NAMESPACE"];
  if (firstSet(env, pmix) !== null) {
    return {
      kind: "pmix",
      size: count(env, "PMIX_SIZE") ?? slurm?.size ?? null,
      evidence: evidence(env, [...pmix, "PMIX_SIZE", ...(slurm?.names ?? [])]),
    };
  }
  if (slurm !== null) {
    return { kind: "slurm", size: slurm.size, evidence: evidence(env, slurm.names) };
  }
  return null;
}

/**
 * This process's rank as its launcher numbers it, read from the environment before any MPI
 * library is loaded (`OMPI_COMM_WORLD_RANK`, `PMI_RANK`, `PMIX_RANK`, `MV2_COMM_WORLD_RANK`,
 * `SLURM_PROCID`), or `null` when none is set.
 */
export function launcherRank(env: Env): number | null {
  const names = [
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
    "PMIX_RANK",
    "MV2_COMM_WORLD_RANK",
    "SLURM_PROCID",
  ];
  for (const name of names) {
    const rank = count(env, name);
    if (rank !== null) return rank;
  }
  return null;
}

function hasPrefix(env: Env, prefixes: readonly string[]): boolean {
  return Object.keys(env).some((name) => prefixes.some((prefix) => name.startsWith(prefix)));
}

/**
 * The libraries to try, in order, for a launcher: Open MPI's for `mpirun.openmpi`, the MPICH
 * family's for Hydra; for PMIx and Slurm both families (Open MPI first, unless `MPIR_CVAR_*` /
 * `HYDRA_*` / `I_MPI_*` show an MPICH setup); `libmpi.so` last in every case.
 */
export function libraryCandidates(launcher: Launcher, env: Env): string[] {
  const mpichHint = hasPrefix(env, ["MPIR_CVAR_", "HYDRA_", "I_MPI_", "MV2_"]);
  let families: readonly string[][];
  switch (launcher.kind) {
    case "openmpi":
      families = [[...OPENMPI_LIBRARIES]];
      break;
    case "pmi":
      // srun --mpi=pmi2 serves Open MPI too (its s2 component); Hydra serves MPICH only.
      families = slurmStepSize(env) === null
        ? [[...MPICH_LIBRARIES]]
        : [[...MPICH_LIBRARIES], [...OPENMPI_LIBRARIES]];
      break;
    default:
      families = mpichHint
        ? [[...MPICH_LIBRARIES], [...OPENMPI_LIBRARIES]]
        : [[...OPENMPI_LIBRARIES], [...MPICH_LIBRARIES]];
  }
  return [...families.flat(), GENERIC_LIBRARY];
}

/** Describes a launcher for messages, such as `Open MPI's mpirun (OMPI_COMM_WORLD_SIZE=3)`. */
export function describeLauncher(launcher: Launcher): string {
  const names: Record<LauncherKind, string> = {
    openmpi: "Open MPI's mpirun",
    pmi: "a PMI launcher (MPICH Hydra / srun --mpi=pmi2)",
    pmix: "a PMIx launcher (srun --mpi=pmix / prterun)",
    slurm: "a Slurm step",
  };
  return `${names[launcher.kind]} (${launcher.evidence})`;
}
