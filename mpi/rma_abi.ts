/**
 * The one-sided (RMA) part of the two MPI ABIs: the FFI symbol table of the calls a window of
 * atomic int64 counters needs (request-based, so that a rank can await them), and the handles
 * and constants that differ between the ABIs
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
  /** `MPI_ERRORS_RETURN` (set around `MPI_Win_allocate`, so that a failure is an error). */
  readonly errorsReturn: H;
  /** `MPI_ERRORS_ARE_FATAL` (the default, set back after `MPI_Win_allocate`). */
  readonly errorsAreFatal: H;
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
  /** `MPI_STATUSES_IGNORE`, as a pointer value. */
  readonly statusesIgnore: bigint;
  /** Bytes of one `MPI_Request` handle. */
  readonly requestBytes: 4 | 8;
}

/** MPICH's predefined handles (`int` constants of its `mpi.h`). */
export const MPICH_RMA_HANDLES: RmaHandles<number> = {
  commWorld: 0x44000000,
  int64: 0x4c00083a,
  sum: 0x58000003,
  noOp: 0x5800000e,
  infoNull: 0x1c000000,
  errorsReturn: 0x54000001,
  errorsAreFatal: 0x54000000,
};

/** MPICH's constants. */
export const MPICH_RMA_CONSTANTS: RmaConstants = {
  modeNocheck: 1024,
  anySource: -2,
  anyTag: -1,
  statusIgnore: 1n,
  statusesIgnore: 1n,
  requestBytes: 4,
};

/** Open MPI's predefined handles: the global symbols whose addresses are the handles. */
export const OPENMPI_RMA_HANDLE_SYMBOLS: RmaHandles<string> = {
  commWorld: "ompi_mpi_comm_world",
  int64: "ompi_mpi_int64_t",
  sum: "ompi_mpi_op_sum",
  noOp: "ompi_mpi_op_no_op",
  infoNull: "ompi_mpi_info_null",
  errorsReturn: "ompi_mpi_errors_return",
  errorsAreFatal: "ompi_mpi_errors_are_fatal",
};

/** Open MPI's constants. */
export const OPENMPI_RMA_CONSTANTS: RmaConstants = {
  modeNocheck: 1,
  anySource: -1,
  anyTag: -1,
  statusIgnore: 0n,
  statusesIgnore: 0n,
  requestBytes: 8,
};

/** The FFI symbol table of the one-sided calls, with `handle` as the handle type. */
function rmaSymbolTable<const H extends "i32" | "pointer">(handle: H) {
  return {
    MPI_Win_allocate: {
      parameters: ["i64", "i32", handle, handle, "buffer", "buffer"],
      result: "i32",
    },
    MPI_Comm_set_errhandler: { parameters: [handle, handle], result: "i32" },
    MPI_Win_lock_all: { parameters: ["i32", handle], result: "i32" },
    MPI_Win_unlock_all: { parameters: [handle], result: "i32" },
    MPI_Win_sync: { parameters: [handle], result: "i32" },
    MPI_Rget_accumulate: {
      parameters: [
        "buffer",
        "i32",
        handle,
        "buffer",
        "i32",
        handle,
        "i32",
        "i64",
        "i32",
        handle,
        handle,
        handle,
        "buffer",
      ],
      result: "i32",
    },
    MPI_Testall: { parameters: ["i32", "buffer", "buffer", "pointer"], result: "i32" },
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
  /** `MPI_Comm_set_errhandler(comm, errhandler)` */
  MPI_Comm_set_errhandler(comm: H, errhandler: H): number;
  /** `MPI_Win_lock_all(assert, win)` */
  MPI_Win_lock_all(assert: number, win: H): number;
  /** `MPI_Win_unlock_all(win)` */
  MPI_Win_unlock_all(win: H): number;
  /** `MPI_Win_sync(win)` */
  MPI_Win_sync(win: H): number;
  /**
   * `MPI_Rget_accumulate(origin, origin_count, origin_type, result, result_count, result_type,
   * target_rank, target_disp, target_count, target_type, op, win, request)`
   */
  MPI_Rget_accumulate(
    origin: Buf,
    originCount: number,
    originType: H,
    result: Buf,
    resultCount: number,
    resultType: H,
    targetRank: number,
    targetDisp: number | bigint,
    targetCount: number,
    targetType: H,
    op: H,
    win: H,
    request: Buf,
  ): number;
  /** `MPI_Testall(count, requests, flag, statuses)` */
  MPI_Testall(count: number, requests: Buf, flag: Buf, statuses: Deno.PointerValue): number;
  /** `MPI_Win_free(win *)` */
  MPI_Win_free(win: Buf): number;
  /** `MPI_Iprobe(source, tag, comm, flag, status)` */
  MPI_Iprobe(source: number, tag: number, comm: H, flag: Buf, status: Deno.PointerValue): number;
}
