/**
 * Multi-buffer MD5 engine on WebAssembly SIMD128 (`wasm-simd`). Up to 16 streams are hashed at
 * once, one per lane, by the kernels of {@linkcode buildMd5Module}.
 *
 * Each stream that has data to hash holds a slot: a fixed input area in the engine's linear
 * memory. `update()` copies the caller's bytes into the slot and resolves as soon as they are
 * copied; hashing is lazy: it runs when some caller must wait (a slot is full, a digest is asked
 * for, a stream waits for a slot), and then hashes every whole block of every slot with the
 * narrowest kernel that covers the streams holding data. Streams beyond the number of slots wait
 * for one in arrival order. The memory is allocated once and never grows, so views into it stay
 * valid: {@linkcode SimdMd5Stream.reserve} lends such a view so that a file can be read straight
 * into the engine's memory.
 *
 * One concern despite its length: the streams and the engine are the two sides of one slot
 * scheduler (a stream's every call may wake the engine to hash all slots at once, and the
 * engine settles the streams' waits), so they share state no other module should see.
 * @module
 */

import type { Md5Engine, Md5Stream } from "./engine.ts";
import {
  buildMd5Module,
  buildSimdProbeModule,
  DATA_OFFSET,
  type KernelWidth,
  MD5_INIT,
  type Md5Kernel,
  type Md5KernelExports,
  PAGE_BYTES,
  POINTER_OFFSET,
  SCRATCH_OFFSET,
  stateWordOffset,
} from "./simd_wasm.ts";

/** Options of {@linkcode openSimdMd5Engine}. */
export interface SimdMd5Options {
  /** Bytes of one slot (a stream's input area), a multiple of 64 KiB; default 2 MiB. */
  readonly slotBytes?: number;
  /** Number of slots, 1 to 64; default 16. Memory used is about `slots × slotBytes`. */
  readonly slots?: number;
  /** Widest kernel used: 4, 8, 12 or 16 lanes; default 16. */
  readonly maxLanes?: KernelWidth;
}

/** A stream of the SIMD engine, which can also lend a view into the engine's memory. */
export interface SimdMd5Stream extends Md5Stream {
  /**
   * Resolves to a writable view into the engine's memory of 1 to `maxBytes` bytes (at least
   * `min(maxBytes, slotBytes - 63)`), to be filled by the caller (for example with
   * `file.read(view)`) and then handed back with {@linkcode SimdMd5Stream.commit}. No other call
   * on this stream is allowed between the two.
   */
  reserve(maxBytes: number): Promise<Uint8Array>;
  /** Appends the first `bytes` bytes of the reserved view to the stream (0 to give it back). */
  commit(bytes: number): void;
}

/** Counters of the work done, for judging how busy the lanes were. */
export interface SimdMd5Stats {
  /** Kernel calls, by width (1 = scalar kernel, 4, 8, 12, 16). */
  readonly calls: Readonly<Record<number, number>>;
  /** 64-byte blocks hashed for streams. */
  readonly blocks: number;
  /** Lane-blocks the kernels spent, busy or idle (`blocks / laneBlocks` is the lane utilisation). */
  readonly laneBlocks: number;
}

/** The SIMD engine: an {@linkcode Md5Engine} whose streams are {@linkcode SimdMd5Stream}s. */
export interface SimdMd5Engine extends Md5Engine {
  /** Starts a new, independent stream. */
  create(): SimdMd5Stream;
  /** Work done since the engine was opened. */
  stats(): SimdMd5Stats;
}

/** The engine cannot run here, or was used against its rules (closed, call out of order). */
export class SimdMd5Error extends Error {
  /** Creates the error with a message naming the misuse. */
  constructor(message: string) {
    super(message);
    this.name = "SimdMd5Error";
  }
}

/** True if this WebAssembly engine supports the SIMD128 opcodes the kernels use. */
export function simdSupported(): boolean {
  try {
    return WebAssembly.validate(buildSimdProbeModule() as BufferSource);
  } catch {
    return false;
  }
}

/** Opens a `wasm-simd` engine. Throws {@linkcode SimdMd5Error} if SIMD128 is unavailable. */
export function openSimdMd5Engine(options: SimdMd5Options = {}): SimdMd5Engine {
  const slotBytes = options.slotBytes ?? 2 * 1024 * 1024;
  const slots = options.slots ?? 16;
  const maxLanes = options.maxLanes ?? 16;
  if (!Number.isInteger(slotBytes) || slotBytes < PAGE_BYTES || slotBytes % PAGE_BYTES !== 0) {
    throw new RangeError(`slotBytes must be a positive multiple of ${PAGE_BYTES}: ${slotBytes}`);
  }
  if (!Number.isInteger(slots) || slots < 1 || slots > 64) {
    throw new RangeError(`slots must be an integer from 1 to 64: ${slots}`);
  }
  if (slots * slotBytes > 2 ** 31) {
    throw new RangeError(`slots × slotBytes must not exceed 2 GiB: ${slots * slotBytes}`);
  }
  if (![4, 8, 12, 16].includes(maxLanes)) {
    throw new RangeError(`maxLanes must be 4, 8, 12 or 16: ${maxLanes}`);
  }
  if (!simdSupported()) throw new SimdMd5Error("WebAssembly SIMD128 is not supported here");
  return new Engine(slotBytes, slots, maxLanes);
}

// ---- implementation ----------------------------------------------------------------------------

/** One unit of kernel work: `blocks` blocks at `ptr`, chaining state `h`. */
interface Job {
  ptr: number;
  blocks: number;
  readonly h: Uint32Array;
}

interface PendingUpdate {
  readonly data: Uint8Array;
  copied: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

interface Waiter<T> {
  readonly resolve: (v: T) => void;
  readonly reject: (e: Error) => void;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

class Stream implements SimdMd5Stream {
  readonly h = Uint32Array.from(MD5_INIT);
  /** Bytes committed so far. */
  length = 0;
  /** Slot index, or -1. */
  slot = -1;
  /** Unhashed bytes are `[pos, fill)` of the slot. */
  pos = 0;
  fill = 0;
  /** Unhashed bytes (< 64) while the stream holds no slot. */
  readonly tail = new Uint8Array(64);
  tailLen = 0;
  readonly queue: PendingUpdate[] = [];
  /** A reserve() not yet satisfied. */
  reserveWanted: (Waiter<Uint8Array> & { max: number }) | null = null;
  /** Length of the view lent by reserve() and not yet committed, or -1. */
  lent = -1;
  digestWaiter: Waiter<string> | null = null;
  waitingForSlot = false;
  finished = false;
  readonly #engine: Engine;

  constructor(engine: Engine) {
    this.#engine = engine;
  }

  update(chunk: Uint8Array): Promise<void> {
    this.#checkUsable("update");
    if (chunk.length === 0) return Promise.resolve();
    const e = this.#engine;
    if (this.queue.length === 0 && e.ensureSlotNow(this)) {
      const n = e.copyIn(this, chunk, 0);
      if (n === chunk.length) return Promise.resolve();
      return this.#enqueue(chunk, n);
    }
    return this.#enqueue(chunk, 0);
  }

  reserve(maxBytes: number): Promise<Uint8Array> {
    this.#checkUsable("reserve");
    if (!Number.isInteger(maxBytes) || maxBytes < 1) {
      return Promise.reject(new RangeError(`reserve: maxBytes must be a positive integer`));
    }
    return new Promise((resolve, reject) => {
      this.reserveWanted = { resolve, reject, max: maxBytes };
      this.#engine.wake(this);
    });
  }

  commit(bytes: number): void {
    if (this.lent < 0) throw new SimdMd5Error("commit without an outstanding reserve()");
    if (!Number.isInteger(bytes) || bytes < 0 || bytes > this.lent) {
      throw new RangeError(`commit: bytes must be an integer from 0 to ${this.lent}: ${bytes}`);
    }
    this.lent = -1;
    this.fill += bytes;
    this.length += bytes;
    this.#engine.wake(this);
  }

  digest(): Promise<string> {
    this.#checkUsable("digest");
    return new Promise((resolve, reject) => {
      this.digestWaiter = { resolve, reject };
      this.#engine.wake(this);
    });
  }

  #enqueue(data: Uint8Array, copied: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ data, copied, resolve, reject });
      this.#engine.wake(this);
    });
  }

  #checkUsable(what: string): void {
    this.#engine.checkOpen();
    if (this.finished || this.digestWaiter) {
      throw new SimdMd5Error(`${what}() after digest()`);
    }
    if (this.lent >= 0 || this.reserveWanted) {
      throw new SimdMd5Error(`${what}() while a reserve() is outstanding`);
    }
  }

  /** Whole blocks of unhashed data in the slot. */
  get pendingBlocks(): number {
    return (this.fill - this.pos) >>> 6;
  }
}

class Engine implements SimdMd5Engine {
  readonly name = "wasm-simd";
  readonly #slotBytes: number;
  readonly #maxLanes: number;
  #memory: WebAssembly.Memory | null;
  #u8: Uint8Array;
  #u32: Uint32Array;
  readonly #kernels: Map<number, Md5Kernel>;
  readonly #freeSlots: number[] = [];
  readonly #slotOwner: Array<Stream | null>;
  readonly #slotWaiters: Stream[] = [];
  readonly #live = new Set<Stream>();
  #scheduled = false;
  #closed = false;
  readonly #calls: Record<number, number> = { 1: 0, 4: 0, 8: 0, 12: 0, 16: 0 };
  #blocks = 0;
  #laneBlocks = 0;

  constructor(slotBytes: number, slots: number, maxLanes: number) {
    this.#slotBytes = slotBytes;
    this.#maxLanes = maxLanes;
    const pages = Math.ceil(DATA_OFFSET / PAGE_BYTES) + (slots * slotBytes) / PAGE_BYTES;
    this.#memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    const module = new WebAssembly.Module(
      buildMd5Module({ memoryPages: pages }) as BufferSource,
    );
    const exports = new WebAssembly.Instance(module, { env: { memory: this.#memory } })
      .exports as unknown as Md5KernelExports;
    this.#kernels = new Map([
      [1, exports.md5x1],
      [4, exports.md5x4],
      [8, exports.md5x8],
      [12, exports.md5x12],
      [16, exports.md5x16],
    ]);
    this.#u8 = new Uint8Array(this.#memory.buffer);
    this.#u32 = new Uint32Array(this.#memory.buffer);
    for (let i = slots - 1; i >= 0; i--) this.#freeSlots.push(i);
    this.#slotOwner = new Array(slots).fill(null);
  }

  create(): SimdMd5Stream {
    this.checkOpen();
    const s = new Stream(this);
    this.#live.add(s);
    return s;
  }

  stats(): SimdMd5Stats {
    return { calls: { ...this.#calls }, blocks: this.#blocks, laneBlocks: this.#laneBlocks };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const err = new SimdMd5Error("the MD5 engine was closed");
    for (const s of this.#live) {
      for (const u of s.queue.splice(0)) u.reject(err);
      s.reserveWanted?.reject(err);
      s.digestWaiter?.reject(err);
      s.reserveWanted = s.digestWaiter = null;
      s.finished = true;
    }
    this.#live.clear();
    this.#memory = null;
    this.#u8 = new Uint8Array(0);
    this.#u32 = new Uint32Array(0);
  }

  checkOpen(): void {
    if (this.#closed) throw new SimdMd5Error("the MD5 engine is closed");
  }

  /** Gives `s` a slot at once if it has none and one is free with nobody waiting. */
  ensureSlotNow(s: Stream): boolean {
    if (s.slot >= 0) return true;
    if (this.#slotWaiters.length > 0 || this.#freeSlots.length === 0) return false;
    this.#attach(s, this.#freeSlots.pop()!);
    return true;
  }

  /** Copies as much of `data[from..]` as fits into the slot of `s`; returns the new offset. */
  copyIn(s: Stream, data: Uint8Array, from: number): number {
    let room = this.#slotBytes - s.fill;
    if (room < data.length - from && s.pos > 0 && s.lent < 0) {
      this.#compact(s);
      room = this.#slotBytes - s.fill;
    }
    const n = Math.min(room, data.length - from);
    if (n > 0) {
      this.#u8.set(data.subarray(from, from + n), this.#slotBase(s.slot) + s.fill);
      s.fill += n;
      s.length += n;
    }
    return from + n;
  }

  /** Notes that `s` has something to do, and schedules the pump. */
  wake(s: Stream): void {
    if (s.slot < 0 && !s.waitingForSlot && (s.queue.length > 0 || s.reserveWanted)) {
      if (!this.ensureSlotNow(s)) {
        s.waitingForSlot = true;
        this.#slotWaiters.push(s);
      }
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.#pump());
    }
  }

  #slotBase(slot: number): number {
    return DATA_OFFSET + slot * this.#slotBytes;
  }

  #attach(s: Stream, slot: number): void {
    this.#slotOwner[slot] = s;
    s.slot = slot;
    s.pos = 0;
    s.fill = s.tailLen;
    this.#u8.set(s.tail.subarray(0, s.tailLen), this.#slotBase(slot));
    s.tailLen = 0;
  }

  #detach(s: Stream): void {
    const base = this.#slotBase(s.slot);
    s.tailLen = s.fill - s.pos;
    s.tail.set(this.#u8.subarray(base + s.pos, base + s.fill));
    this.#slotOwner[s.slot] = null;
    this.#freeSlots.push(s.slot);
    s.slot = -1;
    s.pos = s.fill = 0;
  }

  #compact(s: Stream): void {
    const base = this.#slotBase(s.slot);
    this.#u8.copyWithin(base, base + s.pos, base + s.fill);
    s.fill -= s.pos;
    s.pos = 0;
  }

  /** Moves queued data into slots, lends views, finishes digests. True if some caller waits. */
  #feed(): boolean {
    let blocked = false;
    const finals: Stream[] = [];
    for (const s of this.#live) {
      if (s.slot >= 0) {
        while (s.queue.length > 0) {
          const u = s.queue[0];
          u.copied = this.copyIn(s, u.data, u.copied);
          if (u.copied < u.data.length) break;
          s.queue.shift();
          u.resolve();
        }
        if (s.queue.length > 0) blocked = true;
        else if (s.reserveWanted) {
          const want = Math.min(s.reserveWanted.max, this.#slotBytes - 63);
          if (this.#slotBytes - s.fill < want && s.pos > 0) this.#compact(s);
          const room = this.#slotBytes - s.fill;
          if (room >= want) {
            const view = this.#u8.subarray(
              this.#slotBase(s.slot) + s.fill,
              this.#slotBase(s.slot) + s.fill + Math.min(room, s.reserveWanted.max),
            );
            s.lent = view.length;
            const w = s.reserveWanted;
            s.reserveWanted = null;
            w.resolve(view);
          } else blocked = true;
        }
      } else if (s.queue.length > 0 || s.reserveWanted) blocked = true;
      if (s.digestWaiter && s.queue.length === 0 && s.lent < 0 && !s.reserveWanted) {
        if (s.slot >= 0 && s.pendingBlocks > 0) blocked = true;
        else finals.push(s);
      }
    }
    for (let i = 0; i < finals.length; i += this.#maxLanes) {
      this.#finish(finals.slice(i, i + this.#maxLanes));
    }
    return blocked;
  }

  /** Pads and hashes the last blocks of up to `maxLanes` streams, resolves their digests. */
  #finish(streams: Stream[]): void {
    const jobs: Job[] = [];
    streams.forEach((s, i) => {
      if (s.slot >= 0) this.#detach(s);
      const at = SCRATCH_OFFSET + i * 128;
      const blocks = s.tailLen < 56 ? 1 : 2;
      const area = this.#u8.subarray(at, at + 64 * blocks);
      area.fill(0);
      area.set(s.tail.subarray(0, s.tailLen));
      area[s.tailLen] = 0x80;
      const end = at + 64 * blocks;
      this.#u32[(end - 8) >> 2] = (s.length % 0x20000000) * 8;
      this.#u32[(end - 4) >> 2] = Math.floor(s.length / 0x20000000);
      jobs.push({ ptr: at, blocks, h: s.h });
    });
    this.#run(jobs);
    for (const s of streams) {
      let hex = "";
      for (const word of s.h) {
        hex += HEX[word & 0xff] + HEX[(word >>> 8) & 0xff] + HEX[(word >>> 16) & 0xff] +
          HEX[word >>> 24];
      }
      const w = s.digestWaiter!;
      s.digestWaiter = null;
      s.finished = true;
      this.#live.delete(s);
      w.resolve(hex);
    }
  }

  /** Hashes every whole block in every slot. True if any block was hashed. */
  #drain(): boolean {
    const holders: Stream[] = [];
    for (const s of this.#slotOwner) if (s && s.pendingBlocks > 0) holders.push(s);
    for (let i = 0; i < holders.length; i += this.#maxLanes) {
      const group = holders.slice(i, i + this.#maxLanes);
      this.#run(
        group.map((s) => ({
          ptr: this.#slotBase(s.slot) + s.pos,
          blocks: s.pendingBlocks,
          h: s.h,
        })),
      );
      for (const s of group) {
        s.pos += s.pendingBlocks * 64;
        if (s.lent < 0) this.#compact(s);
      }
    }
    return holders.length > 0;
  }

  /** Runs jobs (at most `maxLanes`) with the narrowest kernels covering the unfinished ones. */
  #run(jobs: Job[]): void {
    let active = jobs.filter((j) => j.blocks > 0);
    while (active.length > 0) {
      const n = Math.min(...active.map((j) => j.blocks));
      const width = active.length === 1 ? 1 : Math.ceil(active.length / 4) * 4;
      const u32 = this.#u32;
      for (let lane = 0; lane < width; lane++) {
        const job = active[lane] ?? active[0];
        u32[(POINTER_OFFSET >> 2) + lane] = job.ptr;
        for (let w = 0; w < 4; w++) u32[stateWordOffset(lane, w) >> 2] = job.h[w];
      }
      this.#kernels.get(width)!(n);
      this.#calls[width]++;
      this.#blocks += n * active.length;
      this.#laneBlocks += n * width;
      active.forEach((job, lane) => {
        for (let w = 0; w < 4; w++) job.h[w] = u32[stateWordOffset(lane, w) >> 2];
        job.ptr += 64 * n;
        job.blocks -= n;
      });
      active = active.filter((j) => j.blocks > 0);
    }
  }

  /** Hands slots of streams with nothing left to do to streams waiting for one. */
  #release(): boolean {
    let moved = false;
    for (let slot = 0; slot < this.#slotOwner.length && this.#slotWaiters.length > 0; slot++) {
      const s = this.#slotOwner[slot];
      if (
        s && s.pendingBlocks === 0 && s.queue.length === 0 && s.lent < 0 && !s.reserveWanted
      ) {
        this.#detach(s);
      }
    }
    while (this.#freeSlots.length > 0 && this.#slotWaiters.length > 0) {
      const s = this.#slotWaiters.shift()!;
      s.waitingForSlot = false;
      if (this.#live.has(s)) {
        this.#attach(s, this.#freeSlots.pop()!);
        moved = true;
      }
    }
    return moved;
  }

  #pump(): void {
    this.#scheduled = false;
    if (this.#closed) return;
    this.#release();
    for (;;) {
      if (!this.#feed()) break;
      const hashed = this.#drain();
      const moved = this.#release();
      if (!hashed && !moved) break;
    }
  }
}
