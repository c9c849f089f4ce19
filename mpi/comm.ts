/**
 * Communicators: {@linkcode Comm}, the world of an MPI job, and its single-process stand-in.
 * @module
 */

import type { Abi } from "./abi.ts";
import type { MpiBinding, ReduceOp } from "./binding.ts";
import { MpiError } from "./errors.ts";
import { MAX_MPI_COUNT, planGather } from "./gather.ts";
// --- one-sided counters (begin) ---
import {
  type Counters,
  type CountersOptions,
  LocalCounters,
  progressInterval,
  WindowCounters,
} from "./counters.ts";
import { loadRma, type RmaBinding } from "./rma_binding.ts";
// --- one-sided counters (end) ---
import { PolledRequest, PolledValueRequest, type Request, type ValueRequest } from "./request.ts";

export type { ReduceOp } from "./binding.ts";

/**
 * `MPI_COMM_WORLD`, or a one-process stand-in when there is no MPI. Every call blocks except
 * `ibarrier`, whose request is waited on with timers (see `Request.wait`).
 */
export interface Comm {
  /** This process's rank, `0 <= rank < size`. */
  readonly rank: number;
  /** Number of processes. */
  readonly size: number;
  /** `"MPICH"`, `"Open MPI"`, `"Intel MPI"`, `"MVAPICH"`, ... or `"none"` without MPI. */
  readonly implementation: string;
  /** Text of `MPI_Get_library_version` (first line first), or `""` without MPI. */
  readonly libraryVersion: string;
  /** The libmpi in use (path or soname), or `null` without MPI. */
  readonly library: string | null;
  /** The ABI of that library, or `null` without MPI. */
  readonly abi: Abi | null;
  /** Waits until every rank has called it (`MPI_Barrier`). */
  barrier(): void;
  /**
   * Starts a barrier without waiting (`MPI_Ibarrier`); the request completes once every rank
   * has called it. `await comm.ibarrier().wait()` waits without spinning a core.
   */
  ibarrier(): Request;
  /**
   * Gathers one byte payload per rank at `root` (collective: every rank calls it with the same
   * `root`). Lengths may differ and may be 0. Returns the payloads in rank order at the root
   * (possibly views of one buffer) and `null` elsewhere. Lengths are exchanged first, then the
   * bytes move with `MPI_Gatherv`, in several rounds when the total exceeds the MPI count limit.
   */
  gather(bytes: Uint8Array, root?: number): Uint8Array[] | null;
  /**
   * Gathers one value per rank at `root` (mpi4py's `comm.gather(obj)`): each value travels as
   * JSON, so it must be plain data. Returns the values in rank order at the root, `null`
   * elsewhere. Collective, like {@linkcode Comm.gather}.
   */
  gatherObject<T>(value: T, root?: number): T[] | null;
  /** Combines one number from every rank (`MPI_Allreduce` on doubles); every rank gets it. */
  allreduce(value: number, op: ReduceOp): number;
  /**
   * Starts {@linkcode Comm.allreduce} without waiting (`MPI_Iallreduce`): the request's
   * `value()` is the result once every rank has called it. Collective like `allreduce`: every
   * rank calls it, in the same order as the other collectives.
   */
  iallreduce(value: number, op: ReduceOp): ValueRequest;
  /**
   * Prints `[rank r/size] message` on stderr and ends the whole job (`MPI_Abort` on
   * `MPI_COMM_WORLD`) with `code` (1 when `code` is not a positive integer).
   */
  abort(code: number, message: string): never;
  /** Ends MPI (`MPI_Finalize`). Call it on every rank before exiting; later calls do nothing. */
  finalize(): void;
  // --- one-sided counters (begin) ---
  /**
   * Collective: `length` atomic int64 counters on every rank, all 0, that any rank can read
   * and add to without the owner's help (a one-sided window under MPI, plain memory in one
   * process). Free them with `free()` on every rank before `finalize`.
   */
  allocateCounters(length: number, options?: CountersOptions): Counters;
  // --- one-sided counters (end) ---
}

function checkRoot(root: number, size: number): void {
  if (!Number.isInteger(root) || root < 0 || root >= size) {
    throw new RangeError(`gather root must be an integer in [0, ${size}), got ${root}`);
  }
}

function checkOp(op: string): asserts op is ReduceOp {
  if (op !== "sum" && op !== "max" && op !== "min") {
    throw new RangeError(`allreduce op must be "sum", "max" or "min", got "${op}"`);
  }
}

function exitCode(code: number): number {
  return Number.isInteger(code) && code > 0 && code < 256 ? code : 1;
}

/** `comm.gatherObject`, written once for every communicator on top of its `gather`. */
function gatherJson<T>(comm: Comm, value: T, root: number): T[] | null {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError("gatherObject: the value is not JSON data");
  const gathered = comm.gather(new TextEncoder().encode(text), root);
  if (gathered === null) return null;
  const decoder = new TextDecoder();
  return gathered.map((bytes) => JSON.parse(decoder.decode(bytes)) as T);
}

/** Copies `bytes` unless it is already a view of a plain `ArrayBuffer`. */
function plain(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : new Uint8Array(bytes);
}

/** A communicator of one process, used when no MPI launcher started this process. */
export class SelfComm implements Comm {
  /** Always 0. */
  readonly rank = 0;
  /** Always 1. */
  readonly size = 1;
  /** Always `"none"`. */
  readonly implementation = "none";
  /** Always `""`. */
  readonly libraryVersion = "";
  /** Always `null`. */
  readonly library = null;
  /** Always `null`. */
  readonly abi = null;
  /** Does nothing. */
  barrier(): void {}
  /** A request that is already complete. */
  ibarrier(): Request {
    return new PolledRequest(() => true);
  }
  /** Returns a copy of `bytes` as the only payload. */
  gather(bytes: Uint8Array, root = 0): Uint8Array[] {
    checkRoot(root, 1);
    return [bytes.slice()];
  }
  /** Returns a copy of `value` (through JSON) as the only value. */
  gatherObject<T>(value: T, root = 0): T[] {
    return gatherJson(this, value, root)!;
  }
  /** Returns `value`. */
  allreduce(value: number, op: ReduceOp): number {
    checkOp(op);
    return value;
  }
  /** A request already complete, whose value is `value`. */
  iallreduce(value: number, op: ReduceOp): ValueRequest {
    checkOp(op);
    return new PolledValueRequest(() => true, () => value);
  }
  /** Prints `[rank 0/1] message` on stderr and exits with `code`. */
  abort(code: number, message: string): never {
    console.error(`[rank 0/1] ${message}`);
    Deno.exit(exitCode(code));
  }
  /** Does nothing. */
  finalize(): void {}
  // --- one-sided counters (begin) ---
  /** Counters in memory (`options` is checked, nothing needs progress). */
  allocateCounters(length: number, options?: CountersOptions): Counters {
    progressInterval(options);
    return new LocalCounters(length);
  }
  // --- one-sided counters (end) ---
}

/** What {@linkcode WorldComm} needs besides the binding. */
export interface WorldCommInit {
  /** Rank from `MPI_Comm_rank`. */
  readonly rank: number;
  /** Size from `MPI_Comm_size`. */
  readonly size: number;
  /** Implementation name. */
  readonly implementation: string;
  /** Text of `MPI_Get_library_version`. */
  readonly libraryVersion: string;
  /** Largest total of one `MPI_Gatherv` round (default and maximum 2^31 - 1). */
  readonly maxMessageBytes?: number;
}

/** `MPI_COMM_WORLD` of an initialised MPI library. */
export class WorldComm implements Comm {
  /** This process's rank. */
  readonly rank: number;
  /** Number of processes. */
  readonly size: number;
  /** Implementation name. */
  readonly implementation: string;
  /** Text of `MPI_Get_library_version`. */
  readonly libraryVersion: string;
  #mpi: MpiBinding;
  #maxMessageBytes: number;
  #finalized = false;
  #rma: RmaBinding | null = null;

  /** Wraps a binding on which `MPI_Init` has succeeded. */
  constructor(mpi: MpiBinding, init: WorldCommInit) {
    this.#mpi = mpi;
    this.rank = init.rank;
    this.size = init.size;
    this.implementation = init.implementation;
    this.libraryVersion = init.libraryVersion;
    this.#maxMessageBytes = init.maxMessageBytes ?? MAX_MPI_COUNT;
    planGather([], this.#maxMessageBytes); // validates maxMessageBytes
  }

  /** The libmpi in use. */
  get library(): string {
    return this.#mpi.library;
  }

  /** Its ABI. */
  get abi(): Abi {
    return this.#mpi.abi;
  }

  #live(what: string): MpiBinding {
    if (this.#finalized) {
      throw new MpiError(`${what} called after finalize(): MPI is no longer usable`);
    }
    return this.#mpi;
  }

  /** `MPI_Barrier(MPI_COMM_WORLD)`. */
  barrier(): void {
    this.#live("barrier").barrier();
  }

  /** `MPI_Ibarrier(MPI_COMM_WORLD)`; its request is tested with `MPI_Test`. */
  ibarrier(): Request {
    const slot = this.#live("ibarrier").ibarrier();
    return new PolledRequest(() => this.#live("test of an ibarrier").test(slot));
  }

  /** Gathers one JSON value per rank through {@linkcode WorldComm.gather}. */
  gatherObject<T>(value: T, root = 0): T[] | null {
    return gatherJson(this, value, root);
  }

  /** Gathers the lengths (`MPI_Allgather`), then the bytes (`MPI_Gatherv` rounds). */
  gather(bytes: Uint8Array, root = 0): Uint8Array[] | null {
    const mpi = this.#live("gather");
    checkRoot(root, this.size);
    const send = plain(bytes);
    const lengths = new Float64Array(this.size);
    mpi.allgatherDouble(send.length, lengths);
    const rounds = planGather(Array.from(lengths), this.#maxMessageBytes);
    const isRoot = this.rank === root;
    if (rounds.length <= 1) {
      const total = rounds[0]?.total ?? 0;
      const recv = isRoot ? new Uint8Array(total) : null;
      if (rounds.length === 1) {
        const round = rounds[0];
        mpi.gatherv(send, recv, isRoot ? round.counts : null, isRoot ? round.displs : null, root);
      }
      if (recv === null) return null;
      let offset = 0;
      return Array.from(lengths, (length) => recv.subarray(offset, offset += length));
    }
    const out = isRoot ? Array.from(lengths, (length) => new Uint8Array(length)) : null;
    const staging = isRoot ? new Uint8Array(Math.max(...rounds.map((r) => r.total))) : null;
    for (const round of rounds) {
      const start = round.offsets[this.rank];
      const chunk = send.subarray(start, start + round.counts[this.rank]);
      mpi.gatherv(chunk, staging, isRoot ? round.counts : null, isRoot ? round.displs : null, root);
      if (out === null || staging === null) continue;
      for (let rank = 0; rank < this.size; rank++) {
        const from = round.displs[rank];
        out[rank].set(staging.subarray(from, from + round.counts[rank]), round.offsets[rank]);
      }
    }
    return out;
  }

  /** `MPI_Allreduce` of one double with `MPI_SUM`, `MPI_MAX` or `MPI_MIN`. */
  allreduce(value: number, op: ReduceOp): number {
    const mpi = this.#live("allreduce");
    checkOp(op);
    return mpi.allreduceDouble(value, op);
  }

  /**
   * `MPI_Iallreduce` of one double; its request is tested with `MPI_Test`. The send and receive
   * buffers stay referenced by the request (through `buffers`, which its reader holds).
   */
  iallreduce(value: number, op: ReduceOp): ValueRequest {
    const mpi = this.#live("iallreduce");
    checkOp(op);
    const buffers = { send: new Float64Array([value]), recv: new Float64Array(1) };
    const slot = mpi.iallreduceDouble(buffers.send, buffers.recv, op);
    return new PolledValueRequest(
      () => this.#live("test of an iallreduce").test(slot),
      () => buffers.recv[0],
    );
  }

  /** Prints `[rank r/size] message` on stderr, then `MPI_Abort(MPI_COMM_WORLD, code)`. */
  abort(code: number, message: string): never {
    const status = exitCode(code);
    console.error(`[rank ${this.rank}/${this.size}] ${message}`);
    if (!this.#finalized) this.#mpi.abort(status);
    Deno.exit(status);
  }

  // --- one-sided counters (begin) ---
  /** A window of `length` int64 per rank (`MPI_Win_allocate`), see {@linkcode WindowCounters}. */
  allocateCounters(length: number, options?: CountersOptions): Counters {
    const mpi = this.#live("allocateCounters");
    this.#rma ??= loadRma(mpi);
    return new WindowCounters(this.#rma, this.size, length, () => this.barrier(), options);
  }
  // --- one-sided counters (end) ---

  /** `MPI_Finalize`; later calls do nothing. */
  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    this.#mpi.finalize();
  }
}
