/**
 * The MPI layer: a thin, typed, synchronous wrapper of libmpi (MPICH or Open MPI ABI) loaded with
 * `Deno.dlopen`, read like mpi4py. It is the only code of the tool that touches libmpi.
 *
 * ```ts
 * import { runWorld } from "./mpi/mod.ts";
 * await runWorld((comm) => {
 *   const all = comm.gather(new TextEncoder().encode(`hello from ${comm.rank}`));
 *   if (all !== null) console.log(all.length);
 *   return comm.allreduce(1, "sum") === comm.size ? 0 : 1;
 * });
 * ```
 *
 * Library choice:
 * - `DT_MPI_LIBRARY`: path or soname of the libmpi to load (for example
 *   `/opt/openmpi/lib/libmpi.so.40`); nothing else is tried when it is set.
 * - Otherwise the launcher's environment chooses: `OMPI_COMM_WORLD_*` → Open MPI
 *   (`libmpi.so.40`); `PMI_*` / `HYDI_CONTROL_FD` → MPICH family (`libmpich.so.12`,
 *   `libmpi.so.12`); `PMIX_*` or a Slurm step → both families; `libmpi.so` last.
 * - Without a launcher the tool runs as one process and does not load MPI. With a launcher
 *   that started more than one process, failing to use MPI is an {@linkcode MpiError}.
 *
 * Errors: an entry point should run under {@linkcode runWorld}, which turns an exception in
 * any rank into `comm.abort(code, message)` (`[rank r/size] message` on stderr, then
 * `MPI_Abort` on `MPI_COMM_WORLD`), so no rank is left waiting in a collective; or catch errors
 * itself and call `comm.abort`. Every rank must call `comm.finalize()` before exiting.
 *
 * All calls but `ibarrier` block the calling thread (and so Deno's event loop) until MPI returns:
 * settle the rank's own pending async work before entering a collective. A rank that may have
 * to wait long for the others (it finished its share first) should meet them with
 * `await comm.ibarrier().wait()` first: the blocking collectives of MPICH and Open MPI spin a
 * core while they wait, `wait` sleeps on timers.
 *
 * The ABI is detected from the library (`ompi_mpi_comm_world` means Open MPI); Open MPI's handles
 * are the addresses of its global symbols, found with libc's `dlsym`, and the library is opened
 * with `RTLD_GLOBAL` so its plugins load. Requires `--allow-ffi` and `--allow-env`.
 *
 * Shared counters (`comm.allocateCounters(n)`, see {@linkcode Counters}): atomic int64 that any
 * rank reads or adds to without the owner's help, through one-sided MPI (`MPI_Win_allocate`,
 * `MPI_Rget_accumulate`). Unlike the rest, their operations are awaited (polled between
 * sleeps); each rank pokes MPI's progress engine from a timer while they exist, so a rank
 * awaiting I/O still serves the others.
 * @module
 */

export type { Abi } from "./abi.ts";
export type { Comm, ReduceOp } from "./comm.ts";
// --- one-sided counters (begin) ---
export { type Counters, type CountersOptions, DEFAULT_PROGRESS_INTERVAL_MS } from "./counters.ts";
// --- one-sided counters (end) ---
export type { Request, ValueRequest, WaitOptions } from "./request.ts";
export { MpiCallError, MpiError } from "./errors.ts";
export {
  detectLauncher,
  type Env,
  type Launcher,
  type LauncherKind,
  launcherRank,
  libraryCandidates,
} from "./locate.ts";
export {
  type Failure,
  LIBRARY_ENV,
  openWorld,
  type OpenWorldOptions,
  runWorld,
  type RunWorldOptions,
} from "./world.ts";
export type { LoadFailure } from "./binding.ts";
export { KNOWN_LIBRARIES, type LoadedLibrary, probeLibraries } from "./probe.ts";
