/**
 * Binds the one-sided (RMA) calls of an already loaded libmpi, with the ABI hidden: windows of
 * int64 allocated with `MPI_Win_allocate`, opened for passive-target access by every rank at
 * once (`MPI_Win_lock_all` with `MPI_MODE_NOCHECK`), atomic `MPI_Fetch_and_op`, flushes, and
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

/** The operation of one `MPI_Fetch_and_op`: add (`MPI_SUM`) or read atomically (`MPI_NO_OP`). */
export type FetchOp = "sum" | "noOp";

/**
 * One window of `length` int64 per rank, in a passive-target epoch on every rank. Operations
 * complete at the next flush; their buffers must stay alive until then. Not collective unless
 * said.
 */
export interface Int64Window {
  /** Number of int64 in each rank's part of the window. */
  readonly length: number;
  /**
   * Starts `MPI_Fetch_and_op` of `origin[0]` on element `index` of `rank`'s part; the old
   * value lands in `result[0]` once {@linkcode Int64Window.flush} or `flushAll` returns.
   */
  fetchAndOp(
    origin: BigInt64Array<ArrayBuffer>,
    result: BigInt64Array<ArrayBuffer>,
    rank: number,
    index: number,
    op: FetchOp,
  ): void;
  /** `MPI_Win_flush(rank)`: completes this rank's operations on `rank`. */
  flush(rank: number): void;
  /** `MPI_Win_flush_all`: completes this rank's operations on every rank. */
  flushAll(): void;
  /** Collective: `MPI_Win_unlock_all` then `MPI_Win_free`. */
  free(): void;
}

/** The one-sided calls of one libmpi, independent of its ABI. */
export interface RmaBinding {
  /**
   * Collective: `MPI_Win_allocate` of `length` int64 per rank on `MPI_COMM_WORLD` (the part
   * rounded up to {@linkcode WINDOW_PART_ALIGNMENT} bytes), each rank's
   * part set to 0, then `MPI_Win_lock_all(MPI_MODE_NOCHECK)` and `MPI_Win_sync`. The caller
   * must pass a barrier before any rank touches another's part.
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
 * atomics on a window allocated with a per-rank size that is not a multiple of 16 bytes (with
 * 8 bytes per rank, every rank's `MPI_Fetch_and_op` hit one location; a C program shows the
 * same), and a cache line per rank also keeps ranks' counters off each other's lines.
 */
export const WINDOW_PART_ALIGNMENT = 64;

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
  const ops: Record<FetchOp, H> = { sum: handles.sum, noOp: handles.noOp };
  const statusIgnore = Deno.UnsafePointer.create(constants.statusIgnore);
  const flag = new Int32Array(1);
  // MPI_Win is an int in MPICH and a pointer in Open MPI; MPI_Win_free takes its address.
  const readWin = (out: BigUint64Array<ArrayBuffer>): H =>
    (abi === "mpich"
      ? new Int32Array(out.buffer, 0, 1)[0]
      : Deno.UnsafePointer.create(out[0])) as H;
  return {
    allocateInt64(length) {
      const base = new BigUint64Array(1);
      const handle = new BigUint64Array(1);
      const bytes = Math.ceil((length * 8) / WINDOW_PART_ALIGNMENT) * WINDOW_PART_ALIGNMENT;
      check(
        "MPI_Win_allocate",
        raw.MPI_Win_allocate(
          BigInt(bytes),
          8,
          handles.infoNull,
          handles.commWorld,
          base,
          handle,
        ),
      );
      const win = readWin(handle);
      const local = Deno.UnsafePointer.create(base[0]);
      if (local !== null) {
        new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(local, bytes)).fill(0);
      }
      check("MPI_Win_lock_all", raw.MPI_Win_lock_all(constants.modeNocheck, win));
      check("MPI_Win_sync", raw.MPI_Win_sync(win));
      return {
        length,
        fetchAndOp(origin, result, rank, index, op) {
          check(
            "MPI_Fetch_and_op",
            raw.MPI_Fetch_and_op(origin, result, handles.int64, rank, index, ops[op], win),
          );
        },
        flush: (rank) => check("MPI_Win_flush", raw.MPI_Win_flush(rank, win)),
        flushAll: () => check("MPI_Win_flush_all", raw.MPI_Win_flush_all(win)),
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
