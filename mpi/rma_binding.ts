/**
 * Binds the one-sided (RMA) calls of an already loaded libmpi, with the ABI hidden: windows of
 * int64 allocated with `MPI_Win_allocate`, opened for passive-target access by every rank at
 * once (`MPI_Win_lock_all` with `MPI_MODE_NOCHECK`), atomic request-based fetch-and-ops
 * (`MPI_Rget_accumulate` with `MPI_SUM` or `MPI_NO_OP`, tested with `MPI_Testall`), and
 * `MPI_Iprobe` as a cheap progress poke. Loaded on first use, from the library of the
 * collectives' binding, so a program that never opens a window never needs these symbols.
 * @module
 */

import type { Abi } from "./abi.ts";
import type { MpiBinding } from "./binding.ts";
import { MpiCallError, MpiError } from "./errors.ts";
import { openDynamicLinker, RTLD_GLOBAL, RTLD_NOW } from "./libc.ts";
import {
  MPICH_RMA_CONSTANTS,
  MPICH_RMA_HANDLES,
  MPICH_RMA_SYMBOLS,
  OPENMPI_RMA_CONSTANTS,
  OPENMPI_RMA_HANDLE_SYMBOLS,
  OPENMPI_RMA_SYMBOLS,
  type RawRma,
  type RmaConstants,
  type RmaHandles,
} from "./rma_abi.ts";

/** The operation of one accumulate: add (`MPI_SUM`) or read atomically (`MPI_NO_OP`). */
export type AccumulateOp = "sum" | "noOp";

/** A set of `MPI_Request` handles of one window's operations, tested together. */
export interface Requests {
  /** Number of handles. */
  readonly count: number;
}

/**
 * One window of `length` int64 per rank, in a passive-target epoch on every rank. Operations
 * are request-based, so the caller can await them; their buffers must stay alive until their
 * requests complete. Not collective unless said.
 */
export interface Int64Window {
  /** Number of int64 in each rank's part of the window. */
  readonly length: number;
  /** A set of `count` request handles, for {@linkcode Int64Window.accumulate}. */
  requests(count: number): Requests;
  /**
   * Starts `MPI_Rget_accumulate` of `origin[0]` with `op` on element `index` of `rank`'s part,
   * atomic with every other accumulate on it; the old value lands in `result[0]` once request
   * `slot` of `requests` is complete.
   */
  accumulate(
    origin: BigInt64Array<ArrayBuffer>,
    result: BigInt64Array<ArrayBuffer>,
    rank: number,
    index: number,
    op: AccumulateOp,
    requests: Requests,
    slot: number,
  ): void;
  /** `MPI_Testall`: true once every request of `requests` is complete (never blocks). */
  testAll(requests: Requests): boolean;
  /** Collective: `MPI_Win_unlock_all` then `MPI_Win_free`. */
  free(): void;
}

/** The one-sided calls of one libmpi, independent of its ABI. */
export interface RmaBinding {
  /**
   * Collective: `MPI_Win_allocate` of `length` int64 per rank on `MPI_COMM_WORLD` (each part
   * rounded up to {@linkcode WINDOW_PART_ALIGNMENT} bytes), each rank's part set to 0, then
   * `MPI_Win_lock_all(MPI_MODE_NOCHECK)` and `MPI_Win_sync`. The caller must pass a barrier
   * before any rank touches another's part. A window the library refuses throws
   * `MpiCallError` (`MPI_ERRORS_RETURN` is set on `MPI_COMM_WORLD` around the call only).
   */
  allocateInt64(length: number): Int64Window;
  /**
   * `MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD)`, result ignored: enters the
   * progress engine so that operations other ranks aim at this one complete.
   */
  poke(): void;
}

/**
 * Bytes of each rank's part of a window are rounded up to this: MPICH 4.0.2 (ch4) misplaces
 * atomics on a window whose per-rank size is not a multiple of 16 bytes (with 8 bytes per rank,
 * the counters of ranks 0 and 1 were one location; a C program shows the same), and a cache
 * line per rank also keeps ranks' counters off each other's lines.
 */
const WINDOW_PART_ALIGNMENT = 64;

function bindRma<H>(
  abi: Abi,
  mpi: MpiBinding,
  raw: RawRma<H>,
  handles: RmaHandles<H>,
  constants: RmaConstants,
): RmaBinding {
  const check = (fn: string, code: number): void => {
    if (code !== 0) throw new MpiCallError(fn, code, mpi.errorString(code));
  };
  const ops: Record<AccumulateOp, H> = { sum: handles.sum, noOp: handles.noOp };
  const statusIgnore = Deno.UnsafePointer.create(constants.statusIgnore);
  const statusesIgnore = Deno.UnsafePointer.create(constants.statusesIgnore);
  const flag = new Int32Array(1);
  // MPI_Win and MPI_Request are ints in MPICH and pointers in Open MPI.
  const readWin = (out: BigUint64Array<ArrayBuffer>): H =>
    (abi === "mpich"
      ? new Int32Array(out.buffer, 0, 1)[0]
      : Deno.UnsafePointer.create(out[0])) as H;
  class RequestSet implements Requests {
    readonly handles: Uint8Array<ArrayBuffer>;
    constructor(readonly count: number) {
      this.handles = new Uint8Array(count * constants.requestBytes);
    }
    slot(slot: number): Uint8Array<ArrayBuffer> {
      const at = slot * constants.requestBytes;
      return this.handles.subarray(at, at + constants.requestBytes);
    }
  }
  const own = (requests: Requests): RequestSet => {
    if (!(requests instanceof RequestSet)) throw new TypeError("requests of another binding");
    return requests;
  };
  return {
    allocateInt64(length) {
      const base = new BigUint64Array(1);
      const handle = new BigUint64Array(1);
      const bytes = Math.ceil((length * 8) / WINDOW_PART_ALIGNMENT) * WINDOW_PART_ALIGNMENT;
      // A window the library cannot make (Open MPI over TCP between nodes with its default
      // window component) is an error the caller can recover from, not an abort of the job.
      check(
        "MPI_Comm_set_errhandler",
        raw.MPI_Comm_set_errhandler(handles.commWorld, handles.errorsReturn),
      );
      let code: number;
      try {
        code = raw.MPI_Win_allocate(
          BigInt(bytes),
          8,
          handles.infoNull,
          handles.commWorld,
          base,
          handle,
        );
      } finally {
        check(
          "MPI_Comm_set_errhandler",
          raw.MPI_Comm_set_errhandler(handles.commWorld, handles.errorsAreFatal),
        );
      }
      check("MPI_Win_allocate", code);
      const win = readWin(handle);
      const local = Deno.UnsafePointer.create(base[0]);
      if (local !== null) {
        new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(local, bytes)).fill(0);
      }
      check("MPI_Win_lock_all", raw.MPI_Win_lock_all(constants.modeNocheck, win));
      check("MPI_Win_sync", raw.MPI_Win_sync(win));
      return {
        length,
        requests: (count) => new RequestSet(count),
        accumulate(origin, result, rank, index, op, requests, slot) {
          const { int64 } = handles;
          const request = own(requests).slot(slot);
          check(
            "MPI_Rget_accumulate",
            raw.MPI_Rget_accumulate(
              origin,
              1,
              int64,
              result,
              1,
              int64,
              rank,
              index,
              1,
              int64,
              ops[op],
              win,
              request,
            ),
          );
        },
        testAll(requests) {
          const set = own(requests);
          check("MPI_Testall", raw.MPI_Testall(set.count, set.handles, flag, statusesIgnore));
          return flag[0] !== 0;
        },
        free() {
          check("MPI_Win_unlock_all", raw.MPI_Win_unlock_all(win));
          check("MPI_Win_free", raw.MPI_Win_free(handle));
        },
      };
    },
    poke() {
      check(
        "MPI_Iprobe",
        raw.MPI_Iprobe(
          constants.anySource,
          constants.anyTag,
          handles.commWorld,
          flag,
          statusIgnore,
        ),
      );
    },
  };
}

/**
 * Binds the one-sided calls of the library `mpi` was loaded from (same ABI).
 * @throws {MpiError} when the library lacks one of them (an MPI older than MPI-3).
 */
export function loadRma(mpi: MpiBinding): RmaBinding {
  const where = `${mpi.library} has no one-sided MPI-3 calls (window counters need MPI-3)`;
  try {
    if (mpi.abi === "mpich") {
      const lib = Deno.dlopen(mpi.library, MPICH_RMA_SYMBOLS);
      return bindRma<number>("mpich", mpi, lib.symbols, MPICH_RMA_HANDLES, MPICH_RMA_CONSTANTS);
    }
    const linker = openDynamicLinker();
    const handles: Record<string, Deno.PointerObject> = {};
    try {
      const library = linker.open(mpi.library, RTLD_NOW | RTLD_GLOBAL);
      if (typeof library === "string") throw new MpiError(`${mpi.library}: ${library}`);
      for (const [key, name] of Object.entries(OPENMPI_RMA_HANDLE_SYMBOLS)) {
        const address = linker.symbol(library, name);
        if (address === null) throw new MpiError(`${where}: ${name} is not defined`);
        handles[key] = address;
      }
    } finally {
      linker.close();
    }
    const lib = Deno.dlopen(mpi.library, OPENMPI_RMA_SYMBOLS);
    return bindRma<Deno.PointerValue>(
      "openmpi",
      mpi,
      lib.symbols,
      handles as unknown as RmaHandles<Deno.PointerValue>,
      OPENMPI_RMA_CONSTANTS,
    );
  } catch (error) {
    if (error instanceof MpiError) throw error;
    throw new MpiError(`${where}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
