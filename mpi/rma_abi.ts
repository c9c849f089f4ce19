/**
 * The one-sided (RMA) part of the two MPI ABIs: the FFI symbol table of the calls a window of
 * atomic int64 counters needs, and the handles and constants that differ between the ABIs
 * (checked against MPICH 4.0.2's `/usr/include/x86_64-linux-gnu/mpich/mpi.h` and Open MPI
 * 4.1's `/usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h`). `MPI_Aint` is 64-bit in both.
 * Kept apart from `abi.ts` so that the collectives and the windows evolve separately.
 * @module
 */

/** The predefined handles one-sided counters use, as values of the ABI's handle type `H`. */
export interface RmaHandles<H> {
  /** `MPI_COMM_WORLD` */
  readonly commWorld: H;
  /** `MPI_INT64_T` */
  readonly int64: H;
  /** `MPI_SUM` */
  readonly sum: H;
  /** `MPI_NO_OP` */
  readonly noOp: H;
  /** `MPI_INFO_NULL` */
  readonly infoNull: H;
}

/** Integer and pointer constants of one ABI. */
export interface RmaConstants {
  /** `MPI_MODE_NOCHECK` (an assertion of `MPI_Win_lock_all`). */
  readonly modeNocheck: number;
  /** `MPI_ANY_SOURCE` */
  readonly anySource: number;
  /** `MPI_ANY_TAG` */
  readonly anyTag: number;
  /** `MPI_STATUS_IGNORE`, as a pointer value. */
  readonly statusIgnore: bigint;
}

/** MPICH's predefined handles (`int` constants of its `mpi.h`). */
export const MPICH_RMA_HANDLES: RmaHandles<number> = {
  commWorld: 0x44000000,
  int64: 0x4c00083a,
  sum: 0x58000003,
  noOp: 0x5800000e,
  infoNull: 0x1c000000,
};

/** MPICH's constants. */
export const MPICH_RMA_CONSTANTS: RmaConstants = {
  modeNocheck: 1024,
  anySource: -2,
  anyTag: -1,
  statusIgnore: 1n,
};

/** Open MPI's predefined handles: the global symbols whose addresses are the handles. */
export const OPENMPI_RMA_HANDLE_SYMBOLS: RmaHandles<string> = {
  commWorld: "ompi_mpi_comm_world",
  int64: "ompi_mpi_int64_t",
  sum: "ompi_mpi_op_sum",
  noOp: "ompi_mpi_op_no_op",
  infoNull: "ompi_mpi_info_null",
};

/** Open MPI's constants. */
export const OPENMPI_RMA_CONSTANTS: RmaConstants = {
  modeNocheck: 1,
  anySource: -1,
  anyTag: -1,
  statusIgnore: 0n,
};

/** The FFI symbol table of the one-sided calls, with `handle` as the handle type. */
function rmaSymbolTable<const H extends "i32" | "pointer">(handle: H) {
  return {
    MPI_Win_allocate: {
      parameters: ["i64", "i32", handle, handle, "buffer", "buffer"],
      result: "i32",
    },
    MPI_Win_lock_all: { parameters: ["i32", handle], result: "i32" },
    MPI_Win_unlock_all: { parameters: [handle], result: "i32" },
    MPI_Win_sync: { parameters: [handle], result: "i32" },
    MPI_Fetch_and_op: {
      parameters: ["buffer", "buffer", handle, "i32", "i64", handle, handle],
      result: "i32",
    },
    MPI_Win_flush: { parameters: ["i32", handle], result: "i32" },
    MPI_Win_flush_all: { parameters: [handle], result: "i32" },
    MPI_Win_free: { parameters: ["buffer"], result: "i32" },
    MPI_Iprobe: { parameters: ["i32", "i32", handle, "buffer", "pointer"], result: "i32" },
  } as const;
}

/** The FFI symbol table of the one-sided calls, for handles of FFI type `H`. */
export type RmaSymbolTable<H extends "i32" | "pointer"> = ReturnType<typeof rmaSymbolTable<H>>;
/** One-sided FFI symbols for the MPICH ABI (`int` handles). */
export const MPICH_RMA_SYMBOLS: RmaSymbolTable<"i32"> = rmaSymbolTable("i32");
/** One-sided FFI symbols for the Open MPI ABI (pointer handles). */
export const OPENMPI_RMA_SYMBOLS: RmaSymbolTable<"pointer"> = rmaSymbolTable("pointer");

/** A buffer argument of an FFI call (`"buffer"` parameter). */
type Buf = BufferSource | null;

/** The one-sided MPI functions as Deno FFI exposes them, with handles of type `H`. */
export interface RawRma<H> {
  /** `MPI_Win_allocate(size, disp_unit, info, comm, baseptr, win)` */
  MPI_Win_allocate(
    size: number | bigint,
    dispUnit: number,
    info: H,
    comm: H,
    basePtr: Buf,
    win: Buf,
  ): number;
  /** `MPI_Win_lock_all(assert, win)` */
  MPI_Win_lock_all(assert: number, win: H): number;
  /** `MPI_Win_unlock_all(win)` */
  MPI_Win_unlock_all(win: H): number;
  /** `MPI_Win_sync(win)` */
  MPI_Win_sync(win: H): number;
  /** `MPI_Fetch_and_op(origin, result, datatype, target_rank, target_disp, op, win)` */
  MPI_Fetch_and_op(
    origin: Buf,
    result: Buf,
    datatype: H,
    targetRank: number,
    targetDisp: number | bigint,
    op: H,
    win: H,
  ): number;
  /** `MPI_Win_flush(rank, win)` */
  MPI_Win_flush(rank: number, win: H): number;
  /** `MPI_Win_flush_all(win)` */
  MPI_Win_flush_all(win: H): number;
  /** `MPI_Win_free(win *)` */
  MPI_Win_free(win: Buf): number;
  /** `MPI_Iprobe(source, tag, comm, flag, status)` */
  MPI_Iprobe(source: number, tag: number, comm: H, flag: Buf, status: Deno.PointerValue): number;
}
