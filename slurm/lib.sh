# Shared code of the data-transfer job scripts (not a settings file: edit site.sh instead).
# Sourced by slurm/tools_*.slurm after they found the repository ($DT_HOME).

# Prints a line of the job's own messages.
dt_say() { echo "[dt $(date '+%F %T')] $*"; }

# What an exit code of a phase means.
dt_explain() {
  case "$1" in
    0) echo "done" ;;
    1) echo "internal error (see the stack trace above)" ;;
    2) echo "bad input or setup (see the error above)" ;;
    3) echo "finished with failures (listed above)" ;;
    4) echo "stopped for the time budget: the next worker job continues" ;;
    5) echo "files left: submit again (deno task submit)" ;;
    *) echo "ended abnormally (killed or a signal: exit $1)" ;;
  esac
}

# dt_run_phase PHASE_SCRIPT [mpi]: sources the site file, then starts the phase of
# phases/PHASE_SCRIPT (filter.ts, run.ts, ...) through phases/start.ts, from the Deno cache alone
# (compute nodes have no network: `deno task setup` fills DENO_DIR beforehand), with the packages
# pinned by deno.lock:
#   [DT_MPI_LAUNCH...] DT_DENO run -q --cached-only --lock=$DT_HOME/deno.lock --frozen -A \
#     $DT_HOME/phases/start.ts PHASE --config $CONFIG_PATH
# and exits with the phase's exit code (2, with one line, when the cache lacks a package).
# For run, DT_RUN_ENTRY of the site file (a script and its own arguments) replaces phases/run.ts
# when set.
dt_run_phase() {
  local phase=${1%.ts} mode=${2:-single}
  DT_SITE=${DT_SITE:-$DT_HOME/slurm/site.sh}
  if [[ ! -f "$DT_SITE" ]]; then
    echo "error: site settings $DT_SITE not found (set DT_SITE)" >&2
    exit 2
  fi
  DT_DENO=deno
  DT_MPI_LAUNCH=(srun --mpi=pmi2)
  DT_RUN_ENTRY=()
  # shellcheck source=site.sh
  source "$DT_SITE" || { echo "error: sourcing $DT_SITE failed" >&2; exit 2; }
  if declare -F dt_site_setup >/dev/null; then
    dt_site_setup || { echo "error: dt_site_setup of $DT_SITE failed" >&2; exit 2; }
  fi
  if [[ -z "${CONFIG_PATH:-}" ]]; then
    echo "error: CONFIG_PATH is not set; submit with 'deno task submit --config FILE' or" \
      "sbatch --export=ALL,CONFIG_PATH=/abs/config.yaml" >&2
    exit 2
  fi
  if ! command -v "$DT_DENO" >/dev/null 2>&1; then
    echo "error: Deno ('$DT_DENO') not found on $(hostname); set DT_DENO or load its module" \
      "in $DT_SITE" >&2
    exit 2
  fi
  local -a cmd=("$DT_DENO" run -q --cached-only --lock="$DT_HOME/deno.lock" --frozen -A
    "$DT_HOME/phases/start.ts" "$phase" --config "$CONFIG_PATH")
  if [[ "$phase" == run && ${#DT_RUN_ENTRY[@]} -gt 0 ]]; then
    cmd=("$DT_DENO" run -A "${DT_RUN_ENTRY[@]}" --config "$CONFIG_PATH")
  fi
  if [[ "$mode" == mpi ]]; then
    cmd=("${DT_MPI_LAUNCH[@]}" "${cmd[@]}")
    # Open MPI 4's default one-sided component (rdma) cannot make a window between nodes over
    # TCP, so the runner would copy without balancing at run time; its pt2pt component can
    # (sm within a node, as by default). Set only where the library has pt2pt (not Open MPI 5)
    # and the site has not chosen; MPICH ignores it.
    if [[ -z "${OMPI_MCA_osc+x}" ]] && command -v ompi_info >/dev/null 2>&1 &&
      ompi_info 2>/dev/null | grep -q "MCA osc: pt2pt"; then
      export OMPI_MCA_osc=sm,pt2pt
    fi
    # Slurm >= 22.05: srun no longer inherits --cpus-per-task from the allocation.
    if [[ -n "${SLURM_CPUS_PER_TASK:-}" ]]; then export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK; fi
  fi
  dt_say "job ${SLURM_JOB_ID:-none} (${SLURM_JOB_NAME:-?}) on ${SLURM_JOB_NODELIST:-$(hostname)}," \
    "${SLURM_NTASKS:-1} task(s); repository $DT_HOME; site $DT_SITE"
  dt_say "deno: $("$DT_DENO" --version 2>/dev/null | head -n 1);" \
    "DENO_DIR ${DENO_DIR:-unset (the default cache)}"
  dt_say "command: ${cmd[*]}"
  local code=0
  "${cmd[@]}" || code=$?
  dt_say "exit $code: $(dt_explain "$code")"
  exit "$code"
}
