/**
 * Opening `MPI_COMM_WORLD` ({@linkcode openWorld}) and running an entry point on it so that an
 * error in one rank ends the whole job ({@linkcode runWorld}).
 * @module
 */

import { implementationName } from "./abi.ts";
import { type LoadFailure, loadMpi, type MpiBinding } from "./binding.ts";
import { type Comm, SelfComm, WorldComm } from "./comm.ts";
import { MpiCallError, MpiError } from "./errors.ts";
import { openDynamicLinker } from "./libc.ts";
import { describeLauncher, detectLauncher, libraryCandidates } from "./locate.ts";

/** Environment variable naming the libmpi to use (a path or a soname). */
export const LIBRARY_ENV = "DT_MPI_LIBRARY";

/** Options of {@linkcode openWorld}. */
export interface OpenWorldOptions {
  /** The libmpi to load (path or soname); overrides `DT_MPI_LIBRARY` and discovery. */
  libraryPath?: string;
  /** Environment to read (default: the process environment, `Deno.env.toObject()`). */
  env?: Record<string, string>;
  /** Receives one-line notes, such as running without MPI (default: discarded). */
  log?: (line: string) => void;
  /** Largest total of one `MPI_Gatherv` round, in bytes (default and maximum 2^31 - 1). */
  maxMessageBytes?: number;
}

function failures(list: readonly LoadFailure[]): string {
  return list.map(({ library, reason }) =>
    reason.startsWith(library) ? reason : `${library}: ${reason}`
  ).join("; ");
}

const HINT = `set ${LIBRARY_ENV} to the libmpi of the launcher in use ` +
  "(Open MPI's mpirun: libmpi.so.40; MPICH's mpirun/mpiexec.hydra: libmpich.so.12 or " +
  "libmpi.so.12), or run with the launcher that matches the installed MPI";

/**
 * Opens `MPI_COMM_WORLD`: finds the launcher from the environment, loads the matching libmpi
 * (the one named by `options.libraryPath` or `DT_MPI_LIBRARY` if set), calls `MPI_Init` and
 * checks that MPI sees as many processes as the launcher started. Without a launcher, returns a
 * one-process {@linkcode Comm} without loading MPI and says so through `options.log`.
 *
 * @throws {MpiError} when a launcher shows more than one process (or an unknown number) but
 * no library loads, `MPI_Init` fails, or MPI reports another size — otherwise every process
 * would run as rank 0 of 1.
 */
export function openWorld(options: OpenWorldOptions = {}): Comm {
  const env = options.env ?? Deno.env.toObject();
  const log = options.log ?? (() => {});
  const explicit = options.libraryPath ?? (env[LIBRARY_ENV] || undefined);
  const launcher = detectLauncher(env);
  if (launcher === null) {
    const ignored = explicit === undefined ? "" : ` (${LIBRARY_ENV}=${explicit} not used)`;
    log(
      "no MPI launcher detected (no OMPI_COMM_WORLD_*, PMI_*, PMIX_* or Slurm step variables): " +
        `running as a single process without MPI${ignored}`,
    );
    return new SelfComm();
  }
  const where = describeLauncher(launcher);
  const candidates = explicit === undefined ? libraryCandidates(launcher, env) : [explicit];
  const tried: LoadFailure[] = [];
  let mpi: MpiBinding | undefined;
  const linker = openDynamicLinker();
  try {
    for (const library of candidates) {
      const loaded = loadMpi(linker, library);
      if ("reason" in loaded) tried.push(loaded);
      else {
        mpi = loaded;
        break;
      }
    }
  } finally {
    linker.close();
  }
  if (mpi === undefined) {
    if (launcher.size === 1 && explicit === undefined) {
      log(`started by ${where} but no MPI library loads (${failures(tried)}): running without MPI`);
      return new SelfComm();
    }
    throw new MpiError(
      explicit === undefined
        ? `started by ${where} but no MPI library loads (${failures(tried)}). Install the MPI ` +
          `this launcher belongs to, or ${HINT}.`
        : `started by ${where} but the MPI library named by ${LIBRARY_ENV} (or libraryPath) ` +
          `cannot be loaded: ${failures(tried)}. Fix ${LIBRARY_ENV}, or unset it to let the ` +
          "launcher's environment choose the library.",
    );
  }
  return initWorld(mpi, launcher.size, where, options.maxMessageBytes);
}

function initWorld(
  mpi: MpiBinding,
  expected: number | null,
  where: string,
  maxMessageBytes: number | undefined,
): Comm {
  const what = `${mpi.library} (${mpi.abi === "openmpi" ? "Open MPI" : "MPICH"} ABI)`;
  let libraryVersion: string;
  let rank: number;
  let size: number;
  try {
    if (mpi.finalized()) throw new MpiError("MPI was already finalized in this process");
    if (mpi.initialized()) {
      throw new MpiError("MPI is already initialised in this process: call openWorld() once");
    }
    libraryVersion = mpi.libraryVersion();
    mpi.init();
    rank = mpi.rank();
    size = mpi.size();
  } catch (error) {
    if (error instanceof MpiCallError) {
      throw new MpiError(`started by ${where}, ${what}: ${error.message}. ${HINT}.`);
    }
    throw error;
  }
  const implementation = implementationName(mpi.abi, libraryVersion);
  if (expected !== null && size !== expected) {
    try {
      mpi.finalize();
    } catch {
      // Already failing; the mismatch is the error to report.
    }
    throw new MpiError(
      `started by ${where}, which means ${expected} processes, but ${implementation} ` +
        `from ${what} reports ${size}: the library does not match the launcher; ${HINT}.`,
    );
  }
  return new WorldComm(mpi, { rank, size, implementation, libraryVersion, maxMessageBytes });
}

/** How a failed entry point ends its process: the exit status and the text to print. */
export interface Failure {
  /** Exit status (given to `MPI_Abort` when the world is open). */
  code: number;
  /** What to print on stderr: one line for an error the user can fix, a stack otherwise. */
  message: string;
}

/** Options of {@linkcode runWorld}. */
export interface RunWorldOptions extends OpenWorldOptions {
  /**
   * Maps an error thrown by `openWorld` or `main` to its exit status and text. The default
   * gives every error status 1 and its stack; callers map their own error types (and
   * {@linkcode MpiError}) to their exit codes.
   */
  failure?: (error: unknown) => Failure;
}

function defaultFailure(error: unknown): Failure {
  return {
    code: 1,
    message: error instanceof Error ? (error.stack ?? error.message) : `error: ${String(error)}`,
  };
}

/**
 * Runs an entry point on `MPI_COMM_WORLD` and exits the process with its result, so an error in
 * one rank cannot leave the others waiting in a collective:
 * - `openWorld` fails: prints the failure's message on stderr, exits with its code;
 * - `main` throws: prints `[rank r/size] message` on stderr and calls
 *   `comm.abort(code, message)` (`MPI_Abort` ends every rank);
 * - `main` resolves to a code: `comm.finalize()` on every rank, then `Deno.exit(code)`.
 */
export async function runWorld(
  main: (comm: Comm) => Promise<number> | number,
  options: RunWorldOptions = {},
): Promise<never> {
  const failure = options.failure ?? defaultFailure;
  let comm: Comm;
  try {
    comm = openWorld(options);
  } catch (error) {
    const f = failure(error);
    console.error(f.message);
    Deno.exit(f.code);
  }
  let code: number;
  try {
    code = await main(comm);
  } catch (error) {
    const f = failure(error);
    comm.abort(f.code, f.message);
  }
  comm.finalize();
  Deno.exit(code);
}
