/**
 * Loads a libmpi of either ABI and exposes the calls the layer needs with the ABI hidden.
 * @module
 */

import {
  type Abi,
  detectAbi,
  type Handles,
  MAX_ERROR_STRING,
  MAX_LIBRARY_VERSION_STRING,
  MPICH_HANDLES,
  MPICH_SYMBOLS,
  OPENMPI_SYMBOLS,
  openMpiHandles,
  type RawMpi,
  REQUEST_BYTES,
  STATUS_IGNORE,
} from "./abi.ts";
import { MpiCallError } from "./errors.ts";
import { type DynamicLinker, RTLD_GLOBAL, RTLD_NOW } from "./libc.ts";

/** A reduction operation of `allreduce`. */
export type ReduceOp = "sum" | "max" | "min";

/**
 * Caller memory holding one `MPI_Request` of either ABI ({@linkcode REQUEST_BYTES} bytes):
 * written by a nonblocking call, read and reset by `MPI_Test`.
 */
export type RequestSlot = Uint8Array<ArrayBuffer>;

/**
 * The MPI calls of one loaded libmpi, independent of its ABI. All block except `ibarrier`,
 * `iallreduceDouble` and `test`.
 */
export interface MpiBinding {
  /** The library's ABI. */
  readonly abi: Abi;
  /** The path or soname the library was opened by. */
  readonly library: string;
  /** Text of `MPI_Get_library_version` (callable before `MPI_Init`). */
  libraryVersion(): string;
  /** `MPI_Initialized` */
  initialized(): boolean;
  /** `MPI_Finalized` */
  finalized(): boolean;
  /** `MPI_Init(NULL, NULL)` */
  init(): void;
  /** `MPI_Finalize` */
  finalize(): void;
  /** `MPI_Comm_rank(MPI_COMM_WORLD)` */
  rank(): number;
  /** `MPI_Comm_size(MPI_COMM_WORLD)` */
  size(): number;
  /** `MPI_Barrier(MPI_COMM_WORLD)` */
  barrier(): void;
  /** `MPI_Allgather` of one double per rank into `out` (length = size). */
  allgatherDouble(value: number, out: Float64Array<ArrayBuffer>): void;
  /** `MPI_Gatherv` of bytes; `recv`, `counts` and `displs` matter at the root only. */
  gatherv(
    send: Uint8Array<ArrayBuffer>,
    recv: Uint8Array<ArrayBuffer> | null,
    counts: Int32Array<ArrayBuffer> | null,
    displs: Int32Array<ArrayBuffer> | null,
    root: number,
  ): void;
  /** `MPI_Allreduce` of one double. */
  allreduceDouble(value: number, op: ReduceOp): number;
  /** `MPI_Abort(MPI_COMM_WORLD, code)`; normally does not return. */
  abort(code: number): void;
  /** Text of `MPI_Error_string(code)`, or `""` when the library has none. */
  errorString(code: number): string;
  /** `MPI_Ibarrier(MPI_COMM_WORLD)`: starts a barrier and returns its request at once. */
  ibarrier(): RequestSlot;
  /**
   * `MPI_Iallreduce` of one double: starts the reduction and returns its request at once; the
   * result lands in `recv[0]` once the request completed. `send` and `recv` must stay alive
   * (referenced) until then.
   */
  iallreduceDouble(
    send: Float64Array<ArrayBuffer>,
    recv: Float64Array<ArrayBuffer>,
    op: ReduceOp,
  ): RequestSlot;
  /** `MPI_Test` with `MPI_STATUS_IGNORE`: true once the request completed (MPI freed it). */
  test(request: RequestSlot): boolean;
}

/** Why a library could not be loaded as MPI. */
export interface LoadFailure {
  /** The path or soname tried. */
  readonly library: string;
  /** The `dlopen` error or the missing symbol. */
  readonly reason: string;
}

function bind<H>(
  abi: Abi,
  library: string,
  raw: RawMpi<H>,
  handles: Handles<H>,
): MpiBinding {
  const errorText = (code: number): string => {
    const text = new Uint8Array(MAX_ERROR_STRING);
    const length = new Int32Array(1);
    if (raw.MPI_Error_string(code, text, length) !== 0) return "";
    return new TextDecoder().decode(text.subarray(0, Math.max(0, length[0])));
  };
  const check = (fn: string, code: number): void => {
    if (code !== 0) throw new MpiCallError(fn, code, errorText(code));
  };
  const flag = (fn: string, call: (out: Int32Array<ArrayBuffer>) => number): boolean => {
    const out = new Int32Array(1);
    check(fn, call(out));
    return out[0] !== 0;
  };
  const ops: Record<ReduceOp, H> = { sum: handles.sum, max: handles.max, min: handles.min };
  const statusIgnore = Deno.UnsafePointer.create(STATUS_IGNORE[abi]);
  return {
    abi,
    library,
    libraryVersion() {
      const text = new Uint8Array(MAX_LIBRARY_VERSION_STRING);
      const length = new Int32Array(1);
      check("MPI_Get_library_version", raw.MPI_Get_library_version(text, length));
      const end = text.indexOf(0);
      const used = Math.min(length[0], end < 0 ? text.length : end);
      return new TextDecoder().decode(text.subarray(0, Math.max(0, used))).trim();
    },
    initialized: () => flag("MPI_Initialized", (out) => raw.MPI_Initialized(out)),
    finalized: () => flag("MPI_Finalized", (out) => raw.MPI_Finalized(out)),
    init: () => check("MPI_Init", raw.MPI_Init(null, null)),
    finalize: () => check("MPI_Finalize", raw.MPI_Finalize()),
    rank() {
      const out = new Int32Array(1);
      check("MPI_Comm_rank", raw.MPI_Comm_rank(handles.commWorld, out));
      return out[0];
    },
    size() {
      const out = new Int32Array(1);
      check("MPI_Comm_size", raw.MPI_Comm_size(handles.commWorld, out));
      return out[0];
    },
    barrier: () => check("MPI_Barrier", raw.MPI_Barrier(handles.commWorld)),
    allgatherDouble(value, out) {
      const send = new Float64Array([value]);
      const code = raw.MPI_Allgather(
        send,
        1,
        handles.double,
        out,
        1,
        handles.double,
        handles.commWorld,
      );
      check("MPI_Allgather", code);
    },
    gatherv(send, recv, counts, displs, root) {
      const code = raw.MPI_Gatherv(
        send,
        send.length,
        handles.byte,
        recv,
        counts,
        displs,
        handles.byte,
        root,
        handles.commWorld,
      );
      check("MPI_Gatherv", code);
    },
    allreduceDouble(value, op) {
      const send = new Float64Array([value]);
      const recv = new Float64Array(1);
      const code = raw.MPI_Allreduce(send, recv, 1, handles.double, ops[op], handles.commWorld);
      check("MPI_Allreduce", code);
      return recv[0];
    },
    abort(code) {
      raw.MPI_Abort(handles.commWorld, code);
    },
    errorString: errorText,
    ibarrier() {
      const request = new Uint8Array(REQUEST_BYTES);
      check("MPI_Ibarrier", raw.MPI_Ibarrier(handles.commWorld, request));
      return request;
    },
    iallreduceDouble(send, recv, op) {
      const request = new Uint8Array(REQUEST_BYTES);
      const code = raw.MPI_Iallreduce(
        send,
        recv,
        1,
        handles.double,
        ops[op],
        handles.commWorld,
        request,
      );
      check("MPI_Iallreduce", code);
      return request;
    },
    test(request) {
      const done = new Int32Array(1);
      check("MPI_Test", raw.MPI_Test(request, done, statusIgnore));
      return done[0] !== 0;
    },
  };
}

/**
 * Opens `library` (a path or a soname) with `RTLD_NOW | RTLD_GLOBAL` — Open MPI's plugins
 * resolve symbols from libmpi — detects its ABI and binds the MPI functions. Returns a
 * {@linkcode LoadFailure} when it cannot be opened or is not an MPI library. The library stays
 * loaded for the life of the process (MPI cannot be unloaded safely).
 */
export function loadMpi(linker: DynamicLinker, library: string): MpiBinding | LoadFailure {
  const handle = linker.open(library, RTLD_NOW | RTLD_GLOBAL);
  if (typeof handle === "string") return { library, reason: handle };
  const abi = detectAbi(linker, handle);
  if (abi === null) return { library, reason: "it does not define MPI_Comm_rank" };
  try {
    if (abi === "mpich") {
      const lib = Deno.dlopen(library, MPICH_SYMBOLS);
      return bind<number>(abi, library, lib.symbols, MPICH_HANDLES);
    }
    const handles = openMpiHandles(linker, handle);
    if (typeof handles === "string") {
      return { library, reason: `it looks like Open MPI but does not define ${handles}` };
    }
    const lib = Deno.dlopen(library, OPENMPI_SYMBOLS);
    return bind<Deno.PointerValue>(abi, library, lib.symbols, handles);
  } catch (error) {
    return { library, reason: error instanceof Error ? error.message : String(error) };
  }
}
