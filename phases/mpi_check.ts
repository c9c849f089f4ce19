/**
 * `deno task mpi-check`: checks that the MPI layer works under the launcher in use. Rank 0 prints
 * the implementation and its version, every rank prints `rank r/size`, then a gather of uneven
 * payloads and allreduces are checked. Exits 0 only when every result is right.
 *
 * ```sh
 * mpirun.mpich -n 3 deno run -A phases/mpi_check.ts
 * mpirun.openmpi -n 3 deno run -A phases/mpi_check.ts
 * deno run -A phases/mpi_check.ts        # one process, without MPI
 * ```
 * @module
 */

import { type Comm, LIBRARY_ENV } from "../mpi/mod.ts";
import { runMpiMain } from "../core/cli.ts";

/** Usage text printed by `--help`. */
const USAGE = `Usage: deno run -A phases/mpi_check.ts [--help]
       mpirun -n N deno run -A phases/mpi_check.ts

Checks the MPI layer: prints the MPI implementation and version (rank 0) and each
rank's "rank r/size" line, gathers a payload from every rank at rank 0 and checks it
byte for byte, checks allreduce sum and max of the ranks. Exits 0 when all is right,
1 when a result is wrong, 2 on bad arguments, 3 when MPI cannot be used.

Without a launcher it runs as one process without MPI. ${LIBRARY_ENV}=<path or soname>
selects the libmpi (default: chosen from the launcher's environment).`;

/** The payload rank `rank` sends: uneven lengths (rank 0 sends none), rank-dependent bytes. */
function payloadFor(rank: number): Uint8Array {
  const bytes = new Uint8Array(rank * 1000 + (rank % 2) * 17);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + rank * 13 + 1) & 0xff;
  return bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

/** Runs the checks on `comm`; returns the exit code, the same on every rank. */
export function check(comm: Comm, print: (line: string) => void = console.log): number {
  if (comm.rank === 0) {
    print(`implementation: ${comm.implementation}`);
    print(`library: ${comm.library ?? "(none: single process without MPI)"}`);
    const firstLine = comm.libraryVersion.split("\n")[0].trim();
    print(`library version: ${firstLine || "(none)"}`);
  }
  comm.barrier();
  print(`rank ${comm.rank}/${comm.size}`);

  const problems: string[] = [];
  const gathered = comm.gather(payloadFor(comm.rank), 0);
  if (comm.rank === 0) {
    if (gathered === null || gathered.length !== comm.size) {
      problems.push(`gather: expected ${comm.size} payloads, got ${gathered?.length ?? "null"}`);
    } else {
      gathered.forEach((bytes, rank) => {
        if (!sameBytes(bytes, payloadFor(rank))) {
          problems.push(`gather: payload of rank ${rank} is wrong (${bytes.length} bytes)`);
        }
      });
    }
  } else if (gathered !== null) {
    problems.push(`gather: rank ${comm.rank} is not the root but received payloads`);
  }
  const sum = comm.allreduce(comm.rank, "sum");
  const max = comm.allreduce(comm.rank, "max");
  const min = comm.allreduce(comm.rank, "min");
  const n = comm.size;
  if (sum !== n * (n - 1) / 2) {
    problems.push(`allreduce sum: expected ${n * (n - 1) / 2}, got ${sum}`);
  }
  if (max !== n - 1) problems.push(`allreduce max: expected ${n - 1}, got ${max}`);
  if (min !== 0) problems.push(`allreduce min: expected 0, got ${min}`);
  for (const problem of problems) print(`[rank ${comm.rank}/${comm.size}] ${problem}`);

  const failed = comm.allreduce(problems.length > 0 ? 1 : 0, "max") > 0;
  if (comm.rank === 0) {
    const bytes = gathered?.reduce((total, b) => total + b.length, 0) ?? 0;
    print(`gather: ${comm.size} payloads, ${bytes} bytes`);
    print(`allreduce: sum=${sum} max=${max} min=${min}`);
    print(failed ? "mpi-check: FAILED" : "mpi-check: OK");
  }
  return failed ? 1 : 0;
}

if (import.meta.main) {
  const args = Deno.args;
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (args.length > 0) {
    console.error(`error: unknown argument "${args[0]}"\n\n${USAGE}`);
    Deno.exit(2);
  }
  await runMpiMain((openComm) => check(openComm()), {
    log: (line) => console.error(`mpi-check: ${line}`),
  });
}
