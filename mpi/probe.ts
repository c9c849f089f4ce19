/**
 * Checking which MPI libraries load in this process, without starting MPI: for `deno task setup`,
 * which runs on a login node where no launcher is present.
 * @module
 */

import { implementationName } from "./abi.ts";
import { type LoadFailure, loadMpi } from "./binding.ts";
import { openDynamicLinker } from "./libc.ts";
import { GENERIC_LIBRARY, MPICH_LIBRARIES, OPENMPI_LIBRARIES } from "./locate.ts";

/** Every libmpi a launcher may make the tool load: Open MPI's, the MPICH family's, `libmpi.so`. */
export const KNOWN_LIBRARIES: readonly string[] = [
  ...OPENMPI_LIBRARIES,
  ...MPICH_LIBRARIES,
  GENERIC_LIBRARY,
];

/** A library that loads as MPI. */
export interface LoadedLibrary {
  /** The path or soname given. */
  readonly library: string;
  /** The implementation, such as `Open MPI` or `MPICH`. */
  readonly implementation: string;
  /** The first line of `MPI_Get_library_version`. */
  readonly version: string;
}

/**
 * Loads each of `libraries` (a path or a soname) as the runner would — `dlopen`, ABI detection,
 * binding of the MPI functions — and asks its version (`MPI_Get_library_version`, which MPI
 * allows before `MPI_Init`). MPI is not initialised. The libraries stay loaded.
 */
export function probeLibraries(libraries: readonly string[]): Array<LoadedLibrary | LoadFailure> {
  const linker = openDynamicLinker();
  try {
    return libraries.map((library) => {
      const mpi = loadMpi(linker, library);
      if ("reason" in mpi) return mpi;
      let version: string;
      try {
        version = mpi.libraryVersion();
      } catch (error) {
        return { library, reason: (error as Error).message };
      }
      return {
        library,
        implementation: implementationName(mpi.abi, version),
        version: version.split("\n")[0].replace(/\s+/g, " ").trim(),
      };
    });
  } finally {
    linker.close();
  }
}
