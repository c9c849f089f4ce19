# Site settings of the data-transfer Slurm jobs: the only file to edit for a cluster.
#
# Sourced (bash) by every job script before its phase runs, and by `deno task submit` to read
# the DT_SBATCH_ARGS* arrays and DT_WORKER_TIME. To keep your edits out of the repository,
# copy this file anywhere and point DT_SITE at it (or pass `deno task submit --site FILE`);
# the jobs are told where it is.

# Extra sbatch arguments of every job: account, partition, qos, memory, mail...
# Arguments on sbatch's command line override the #SBATCH lines of the scripts.
DT_SBATCH_ARGS=()
# DT_SBATCH_ARGS=(--account=myproject --partition=cpu --qos=normal)

# Extra sbatch arguments of one phase, after the ones above (e.g. a longer filter job).
DT_SBATCH_ARGS_FILTER=()
DT_SBATCH_ARGS_SCHEDULER=()
DT_SBATCH_ARGS_WORKER=()
DT_SBATCH_ARGS_VERIFIER=()
# DT_SBATCH_ARGS_FILTER=(--time=04:00:00)
# DT_SBATCH_ARGS_WORKER=(--partition=io --exclusive)

# Time limit of each worker job (sbatch form: MM, HH:MM:SS, D-HH:MM:SS). The runner stops
# taking files data_transfer.time_margin_seconds (default 300) before the end and the next
# worker job continues. `deno task submit --worker-time` overrides it.
DT_WORKER_TIME=03:00:00

# The Deno executable on the compute nodes (`deno task setup` prints the one it ran with).
DT_DENO=deno
# DT_DENO=$HOME/.local/bin/deno
# Deno's cache. The jobs run the phases from it alone (--cached-only: compute nodes usually have
# no network access), so fill it once with `deno task setup` on a login node and keep it on a
# file system the compute nodes mount; setup prints this line with its folder. Unset, Deno uses
# $XDG_CACHE_HOME/deno or ~/.cache/deno, which is fine when the home folder is shared.
# export DENO_DIR=/shared/cache/deno

# How the worker job starts its ranks (one per task of the allocation). The array is expanded
# inside the job, so $SLURM_NTASKS is known there.
#   MPICH (and MVAPICH, Intel MPI):  DT_MPI_LAUNCH=(srun --mpi=pmi2)
#   Open MPI:                        DT_MPI_LAUNCH=(srun --mpi=pmix)
#   MPICH's own launcher:            DT_MPI_LAUNCH=(mpirun -n "$SLURM_NTASKS")
#   Open MPI's own launcher:         DT_MPI_LAUNCH=(mpirun -n "$SLURM_NTASKS")
#                                    (as root add --allow-run-as-root)
# `srun --mpi=list` shows the plugins of your Slurm. A wrong plugin makes every rank refuse to
# start (rank count mismatch) rather than copy as a lone rank.
DT_MPI_LAUNCH=(srun --mpi=pmi2)

# The runner the worker job starts, with its first arguments (default: the repository's
# phases/run.ts). Point it at a script of your own that calls runTransfer() of
# core/transfer/run_transfer.ts, e.g. to wrap the run; it is started as
# "$DT_DENO run -A ${DT_RUN_ENTRY[@]} --config $CONFIG_PATH" under DT_MPI_LAUNCH.
DT_RUN_ENTRY=()
# DT_RUN_ENTRY=(/shared/tools/my_run.ts)

# The libmpi the ranks load, when the launcher's environment does not choose the right one
# (path or soname), e.g. Open MPI's libmpi.so.40 or MPICH's libmpich.so.12.
# export DT_MPI_LIBRARY=libmpich.so.12

# Runs at the start of every job, before the phase: module loads and the like. Load the MPI
# library here (the runner loads libmpi itself); run the same module loads on the login node
# before `deno task setup`, which checks that the library loads.
dt_site_setup() {
  # module purge
  # module load mpich/4.0 deno/2
  :
}
