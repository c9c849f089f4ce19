/**
 * The two MPI ABIs: per-ABI FFI symbol tables and predefined handles.
 *
 * - MPICH family (MPICH, MVAPICH, Intel MPI, Cray MPICH): handles are `int` constants from
 *   `mpi.h` (checked against MPICH 4.0.2's `/usr/include/x86_64-linux-gnu/mpich/mpi.h`).
 * - Open MPI: handles are the addresses of global structs such as `ompi_mpi_comm_world`.
 *
 * @module
 */

import type { DynamicLinker } from "./libc.ts";

/** Which binary interface a libmpi follows. */
export type Abi = "mpich" | "openmpi";

/** The predefined MPI handles the layer uses, as values of the ABI's handle type `H`. */
export interface Handles<H> {
  /** `MPI_COMM_WORLD` */
  readonly commWorld: H;
  /** `MPI_BYTE` */
  readonly byte: H;
  /** `MPI_INT` */
  readonly int: H;
  /** `MPI_DOUBLE` */
  readonly double: H;
  /** `MPI_SUM` */
  readonly sum: H;
  /** `MPI_MAX` */
  readonly max: H;
  /** `MPI_MIN` */
  readonly min: H;
}

/** MPICH's predefined handles (`int` constants of its `mpi.h`). */
export const MPICH_HANDLES: Handles<number> = {
  commWorld: 0x44000000,
  byte: 0x4c00010d,
  int: 0x4c000405,
  double: 0x4c00080b,
  sum: 0x58000003,
  max: 0x58000001,
  min: 0x58000002,
};

/** Open MPI's predefined handles: the global symbols whose addresses are the handles. */
const OPENMPI_HANDLE_SYMBOLS: Handles<string> = {
  commWorld: "ompi_mpi_comm_world",
  byte: "ompi_mpi_byte",
  int: "ompi_mpi_int",
  double: "ompi_mpi_double",
  sum: "ompi_mpi_op_sum",
  max: "ompi_mpi_op_max",
  min: "ompi_mpi_op_min",
};

/**
 * `MPI_STATUS_IGNORE` of each ABI: `(MPI_Status *)1` in MPICH's `mpi.h`, `NULL` in Open MPI's.
 */
export const STATUS_IGNORE: Readonly<Record<Abi, bigint>> = { mpich: 1n, openmpi: 0n };

/**
 * Bytes of caller memory that hold one `MPI_Request`: an `int` under MPICH, a pointer under
 * Open MPI; 8 bytes hold either.
 */
export const REQUEST_BYTES = 8;

/** Size of the buffer given to `MPI_Get_library_version` (MPICH's maximum, the larger one). */
export const MAX_LIBRARY_VERSION_STRING = 8192;
/** Size of the buffer given to `MPI_Error_string` (covers both ABIs' maximum). */
export const MAX_ERROR_STRING = 1024;

/** The FFI symbol table of the MPI functions used, with `handle` as the handle type. */
function symbolTable<const H extends "i32" | "pointer">(handle: H) {
  return {
    MPI_Init: { parameters: ["pointer", "pointer"], result: "i32" },
    MPI_Initialized: { parameters: ["buffer"], result: "i32" },
    MPI_Finalized: { parameters: ["buffer"], result: "i32" },
    MPI_Finalize: { parameters: [], result: "i32" },
    MPI_Comm_rank: { parameters: [handle, "buffer"], result: "i32" },
    MPI_Comm_size: { parameters: [handle, "buffer"], result: "i32" },
    MPI_Barrier: { parameters: [handle], result: "i32" },
    MPI_Allgather: {
      parameters: ["buffer", "i32", handle, "buffer", "i32", handle, handle],
      result: "i32",
    },
    MPI_Gatherv: {
      parameters: ["buffer", "i32", handle, "buffer", "buffer", "buffer", handle, "i32", handle],
      result: "i32",
    },
    MPI_Allreduce: {
      parameters: ["buffer", "buffer", "i32", handle, handle, handle],
      result: "i32",
    },
    MPI_Abort: { parameters: [handle, "i32"], result: "i32" },
    // Nonblocking collectives: the request is written to (and read from) caller memory, an
    // `int` under MPICH and a pointer under Open MPI; `status` is MPI_STATUS_IGNORE.
    MPI_Ibarrier: { parameters: [handle, "buffer"], result: "i32" },
    MPI_Iallreduce: {
      parameters: ["buffer", "buffer", "i32", handle, handle, handle, "buffer"],
      result: "i32",
    },
    MPI_Test: { parameters: ["buffer", "buffer", "pointer"], result: "i32" },
    MPI_Get_library_version: { parameters: ["buffer", "buffer"], result: "i32" },
    MPI_Error_string: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  } as const;
}

/** The FFI symbol table of the MPI functions used, for handles of FFI type `H`. */
export type MpiSymbolTable<H extends "i32" | "pointer"> = ReturnType<typeof symbolTable<H>>;
/** FFI symbols for the MPICH ABI (`int` handles). */
export const MPICH_SYMBOLS: MpiSymbolTable<"i32"> = symbolTable("i32");
/** FFI symbols for the Open MPI ABI (pointer handles). */
export const OPENMPI_SYMBOLS: MpiSymbolTable<"pointer"> = symbolTable("pointer");

/** A buffer argument of an FFI call (`"buffer"` parameter). */
export type Buf = BufferSource | null;

/** The MPI functions as Deno FFI exposes them, with handles of type `H`. */
export interface RawMpi<H> {
  /** `MPI_Init(argc, argv)` */
  MPI_Init(argc: Deno.PointerValue, argv: Deno.PointerValue): number;
  /** `MPI_Initialized(flag)` */
  MPI_Initialized(flag: Buf): number;
  /** `MPI_Finalized(flag)` */
  MPI_Finalized(flag: Buf): number;
  /** `MPI_Finalize()` */
  MPI_Finalize(): number;
  /** `MPI_Comm_rank(comm, rank)` */
  MPI_Comm_rank(comm: H, rank: Buf): number;
  /** `MPI_Comm_size(comm, size)` */
  MPI_Comm_size(comm: H, size: Buf): number;
  /** `MPI_Barrier(comm)` */
  MPI_Barrier(comm: H): number;
  /** `MPI_Allgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm)` */
  MPI_Allgather(
    sendbuf: Buf,
    sendcount: number,
    sendtype: H,
    recvbuf: Buf,
    recvcount: number,
    recvtype: H,
    comm: H,
  ): number;
  /** `MPI_Gatherv(sendbuf, sendcount, sendtype, recvbuf, recvcounts, displs, recvtype, root, comm)` */
  MPI_Gatherv(
    sendbuf: Buf,
    sendcount: number,
    sendtype: H,
    recvbuf: Buf,
    recvcounts: Buf,
    displs: Buf,
    recvtype: H,
    root: number,
    comm: H,
  ): number;
  /** `MPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm)` */
  MPI_Allreduce(sendbuf: Buf, recvbuf: Buf, count: number, datatype: H, op: H, comm: H): number;
  /** `MPI_Abort(comm, errorcode)` */
  MPI_Abort(comm: H, code: number): number;
  /** `MPI_Ibarrier(comm, request)` */
  MPI_Ibarrier(comm: H, request: Buf): number;
  /** `MPI_Iallreduce(sendbuf, recvbuf, count, datatype, op, comm, request)` */
  MPI_Iallreduce(
    sendbuf: Buf,
    recvbuf: Buf,
    count: number,
    datatype: H,
    op: H,
    comm: H,
    request: Buf,
  ): number;
  /** `MPI_Test(request, flag, status)` */
  MPI_Test(request: Buf, flag: Buf, status: Deno.PointerValue): number;
  /** `MPI_Get_library_version(version, resultlen)` */
  MPI_Get_library_version(version: Buf, length: Buf): number;
  /** `MPI_Error_string(errorcode, string, resultlen)` */
  MPI_Error_string(code: number, text: Buf, length: Buf): number;
}

/**
 * Tells the ABI of a library already opened with `dlopen`: Open MPI defines
 * `ompi_mpi_comm_world`; any other library defining `MPI_Comm_rank` is taken to be of the
 * MPICH family. Returns `null` when the library defines no MPI at all.
 */
export function detectAbi(linker: DynamicLinker, handle: Deno.PointerObject): Abi | null {
  if (linker.symbol(handle, OPENMPI_HANDLE_SYMBOLS.commWorld) !== null) return "openmpi";
  if (linker.symbol(handle, "MPI_Comm_rank") !== null) return "mpich";
  return null;
}

/**
 * Resolves Open MPI's predefined handles to their addresses. Returns the handles, or the name of
 * the first symbol that is missing.
 */
export function openMpiHandles(
  linker: DynamicLinker,
  handle: Deno.PointerObject,
): Handles<Deno.PointerObject> | string {
  const out: Record<string, Deno.PointerObject> = {};
  for (const [key, name] of Object.entries(OPENMPI_HANDLE_SYMBOLS)) {
    const address = linker.symbol(handle, name);
    if (address === null) return name;
    out[key] = address;
  }
  return out as unknown as Handles<Deno.PointerObject>;
}

/** Names the implementation from the text of `MPI_Get_library_version`. */
export function implementationName(abi: Abi, libraryVersion: string): string {
  const known: [RegExp, string][] = [
    [/Open MPI/i, "Open MPI"],
    [/Intel\(R\) MPI/i, "Intel MPI"],
    [/MVAPICH/i, "MVAPICH"],
    [/CRAY MPICH/i, "Cray MPICH"],
    [/MPICH/i, "MPICH"],
  ];
  for (const [pattern, name] of known) if (pattern.test(libraryVersion)) return name;
  return abi === "openmpi" ? "Open MPI" : "MPICH-compatible";
}
