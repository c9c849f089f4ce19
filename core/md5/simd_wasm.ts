/**
 * Generates the WebAssembly module of the multi-buffer MD5 engine. The binary is produced by a
 * small direct encoder (no assembler, no native toolchain, no runtime dependency): the module
 * only needs a handful of opcodes, and writing them out is shorter than depending on one.
 *
 * Kernels `md5x4`, `md5x8`, `md5x12` and `md5x16` hash 4, 8, 12 or 16 independent streams (lanes)
 * with WebAssembly SIMD128: one `v128` holds the same 32-bit word of 4 lanes (a "chain"), and the
 * 64 MD5 steps of the 1 to 4 chains are interleaved step by step so that independent dependency
 * chains overlap in the CPU. `md5x1` is a scalar kernel for a single lane.
 *
 * Every kernel takes one argument, the number `n` of 64-byte blocks to hash in every lane, reads
 * the lanes' input pointers from the pointer table, and updates the lanes' states in place.
 * @module
 */

/** Byte offset of the lane states. Lane `l`, word `j` (A, B, C, D) is at {@linkcode stateWordOffset}. */
const STATE_OFFSET = 0;
/** Byte offset of the pointer table: lane `l` reads its blocks from the i32 at `POINTER_OFFSET + 4 * l`. */
export const POINTER_OFFSET = 256;
/** Byte offset of a free 2 KiB scratch area (16 lanes × 128 bytes), used for final padded blocks. */
export const SCRATCH_OFFSET = 1024;
/** Byte offset of the 64 round constants, each repeated in the 4 lanes of a `v128` (data segment). */
const CONSTANT_OFFSET = 4096;
/** First byte available for input data; everything below is reserved for the kernels. */
export const DATA_OFFSET = 8192;
/** Lane counts of the SIMD kernels, narrowest first. */
const KERNEL_WIDTHS: readonly KernelWidth[] = [4, 8, 12, 16];
/** Bytes in a WebAssembly memory page. */
export const PAGE_BYTES = 65536;

/** Number of lanes of one SIMD kernel. */
export type KernelWidth = 4 | 8 | 12 | 16;

/** A kernel: hashes `blocks` 64-byte blocks in each of its lanes. */
export type Md5Kernel = (blocks: number) => void;

/** Exports of the instantiated module. */
export interface Md5KernelExports {
  /** Scalar kernel for lane 0 alone. */
  readonly md5x1: Md5Kernel;
  /** SIMD kernel for lanes 0..3. */
  readonly md5x4: Md5Kernel;
  /** SIMD kernel for lanes 0..7. */
  readonly md5x8: Md5Kernel;
  /** SIMD kernel for lanes 0..11. */
  readonly md5x12: Md5Kernel;
  /** SIMD kernel for lanes 0..15. */
  readonly md5x16: Md5Kernel;
}

/** Options of {@linkcode buildMd5Module}. */
export interface Md5ModuleOptions {
  /** Pages (64 KiB) of the imported memory `env.memory`; it must have exactly this many and never grow. */
  readonly memoryPages: number;
}

/** Byte offset of word `word` (0 = A .. 3 = D) of the state of lane `lane`. */
export function stateWordOffset(lane: number, word: number): number {
  return STATE_OFFSET + (lane >> 2) * 64 + word * 16 + (lane & 3) * 4;
}

/** The MD5 initial state A, B, C, D. */
export const MD5_INIT: readonly number[] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/** MD5 sine constants K[0..63]. */
const K: readonly number[] = Array.from(
  { length: 64 },
  (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0,
);
/** Left-rotation amounts per step. */
const S: readonly number[] = [
  [7, 12, 17, 22],
  [5, 9, 14, 20],
  [4, 11, 16, 23],
  [6, 10, 15, 21],
].flatMap((r) => [...r, ...r, ...r, ...r]);
/** Message word used by step `i`. */
function messageIndex(i: number): number {
  if (i < 16) return i;
  if (i < 32) return (5 * i + 1) & 15;
  if (i < 48) return (3 * i + 5) & 15;
  return (7 * i) & 15;
}

// ---- binary encoding ---------------------------------------------------------------------------

const I32 = 0x7f;
const V128 = 0x7b;

/**
 * Growable byte buffer with the LEB128 encodings wasm uses. It writes into a typed array that
 * doubles when full: the kernels are tens of thousands of instructions, assembled at every
 * start of the run phase.
 */
class ByteWriter {
  #buf = new Uint8Array(256);
  #length = 0;

  /** Makes room for `n` more bytes, doubling the buffer as often as needed. */
  #reserve(n: number): void {
    if (this.#length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (this.#length + n > size) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#buf.subarray(0, this.#length));
    this.#buf = grown;
  }

  #push(byte: number): void {
    this.#reserve(1);
    this.#buf[this.#length++] = byte;
  }
  /** Appends raw bytes. */
  u8(...values: number[]): this {
    for (const v of values) this.#push(v & 0xff);
    return this;
  }
  /** Appends the bytes of `bytes`. */
  raw(bytes: Uint8Array): this {
    this.#reserve(bytes.length);
    this.#buf.set(bytes, this.#length);
    this.#length += bytes.length;
    return this;
  }
  /** Appends an unsigned LEB128 integer. */
  uleb(value: number): this {
    let v = value >>> 0;
    do {
      const byte = v & 0x7f;
      v >>>= 7;
      this.#push(v !== 0 ? byte | 0x80 : byte);
    } while (v !== 0);
    return this;
  }
  /** Appends a signed LEB128 32-bit integer. */
  sleb(value: number): this {
    let v = value | 0;
    for (;;) {
      const byte = v & 0x7f;
      v >>= 7;
      const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
      this.#push(done ? byte : byte | 0x80);
      if (done) return this;
    }
  }
  /** Appends a length-prefixed UTF-8 name. */
  name(text: string): this {
    const b = new TextEncoder().encode(text);
    return this.uleb(b.length).raw(b);
  }
  /** Appends another writer's bytes prefixed by their length. */
  sized(inner: ByteWriter): this {
    const b = inner.bytes();
    return this.uleb(b.length).raw(b);
  }
  /** The bytes written so far (a view, valid until the next write). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#length);
  }
}

/** Instruction emitter for one function body (only the opcodes the kernels use). */
class Code extends ByteWriter {
  localGet(i: number): this {
    return this.u8(0x20).uleb(i);
  }
  localSet(i: number): this {
    return this.u8(0x21).uleb(i);
  }
  localTee(i: number): this {
    return this.u8(0x22).uleb(i);
  }
  i32Const(v: number): this {
    return this.u8(0x41).sleb(v);
  }
  i32Load(offset: number): this {
    return this.u8(0x28, 2).uleb(offset);
  }
  i32Store(offset: number): this {
    return this.u8(0x36, 2).uleb(offset);
  }
  /** Plain one-byte opcode. */
  op(code: number): this {
    return this.u8(code);
  }
  /** SIMD-prefixed opcode. */
  simd(code: number): this {
    return this.u8(0xfd).uleb(code);
  }
  v128Load(offset: number): this {
    return this.simd(0x00).u8(4).uleb(offset);
  }
  v128Store(offset: number): this {
    return this.simd(0x0b).u8(4).uleb(offset);
  }
  /** `v128.const` with the same 32-bit value in the 4 lanes. */
  v128Splat32(v: number): this {
    this.simd(0x0c);
    for (let i = 0; i < 4; i++) this.u8(v, v >>> 8, v >>> 16, v >>> 24);
    return this;
  }
  i8x16Shuffle(lanes: readonly number[]): this {
    return this.simd(0x0d).u8(...lanes);
  }
}

const OP = {
  block: 0x02,
  loop: 0x03,
  br: 0x0c,
  brIf: 0x0d,
  end: 0x0b,
  i32Eqz: 0x45,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  i32And: 0x71,
  i32Or: 0x72,
  i32Xor: 0x73,
  i32Rotl: 0x77,
} as const;

const SIMD = {
  not: 0x4d,
  and: 0x4e,
  or: 0x50,
  xor: 0x51,
  bitselect: 0x52,
  i32x4Splat: 0x11,
  i32x4Shl: 0xab,
  i32x4ShrU: 0xad,
  i32x4Add: 0xae,
} as const;

/** Byte indexes of an `i8x16.shuffle` picking 32-bit words `w` (0..3 first input, 4..7 second). */
function words(...w: number[]): number[] {
  return w.flatMap((x) => [4 * x, 4 * x + 1, 4 * x + 2, 4 * x + 3]);
}
const ROTL16 = [2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13];

/** Local-variable allocator for one function. */
class Locals {
  #next: number;
  readonly groups: Array<[number, number]> = [];
  constructor(params: number) {
    this.#next = params;
  }
  /** Allocates `count` locals of `type`, returns the first index. */
  take(count: number, type: number): number {
    const first = this.#next;
    this.#next += count;
    const last = this.groups.at(-1);
    if (last && last[1] === type) last[0] += count;
    else this.groups.push([count, type]);
    return first;
  }
}

/** Emits the loop `while (n != 0) { body; n-- }` with `n` in local 0. */
function counted(code: Code, body: () => void): void {
  code.op(OP.block).u8(0x40).op(OP.loop).u8(0x40);
  code.localGet(0).op(OP.i32Eqz).op(OP.brIf).uleb(1);
  body();
  code.localGet(0).i32Const(1).op(OP.i32Sub).localSet(0);
  code.op(OP.br).uleb(0).op(OP.end).op(OP.end);
}

/** Body of the SIMD kernel for `chains` chains of 4 lanes. */
function simdKernel(chains: number): { locals: Array<[number, number]>; code: Code } {
  const L = new Locals(1);
  const lanes = chains * 4;
  const ptr = L.take(lanes, I32);
  const st = L.take(chains * 4, V128); // a, b, c, d per chain
  const msg = L.take(chains * 16, V128);
  const tmp = L.take(chains, V128);
  const r = L.take(4, V128);
  const t = L.take(4, V128);
  const code = new Code();

  for (let l = 0; l < lanes; l++) {
    code.i32Const(0).i32Load(POINTER_OFFSET + 4 * l).localSet(ptr + l);
  }
  for (let c = 0; c < chains; c++) {
    for (let j = 0; j < 4; j++) {
      code.i32Const(0).v128Load(STATE_OFFSET + c * 64 + j * 16).localSet(st + c * 4 + j);
    }
  }
  counted(code, () => {
    // Load and transpose: msg[c*16 + w] = word w of the chain's 4 lanes.
    for (let c = 0; c < chains; c++) {
      for (let g = 0; g < 4; g++) {
        for (let i = 0; i < 4; i++) code.localGet(ptr + c * 4 + i).v128Load(16 * g).localSet(r + i);
        code.localGet(r).localGet(r + 1).i8x16Shuffle(words(0, 4, 1, 5)).localSet(t);
        code.localGet(r).localGet(r + 1).i8x16Shuffle(words(2, 6, 3, 7)).localSet(t + 1);
        code.localGet(r + 2).localGet(r + 3).i8x16Shuffle(words(0, 4, 1, 5)).localSet(t + 2);
        code.localGet(r + 2).localGet(r + 3).i8x16Shuffle(words(2, 6, 3, 7)).localSet(t + 3);
        const m = msg + c * 16 + 4 * g;
        const sel = [[0, 2, 0, 1, 4, 5], [0, 2, 2, 3, 6, 7], [1, 3, 0, 1, 4, 5], [
          1,
          3,
          2,
          3,
          6,
          7,
        ]];
        for (let k = 0; k < 4; k++) {
          const [x, y, ...w] = sel[k];
          code.localGet(t + x).localGet(t + y).i8x16Shuffle(words(...w)).localSet(m + k);
        }
      }
    }
    // 64 steps, chains interleaved step by step. Roles rotate: (a, b, c, d) <- (d, a, b, c).
    for (let i = 0; i < 64; i++) {
      const role = (k: number) => (k - i + 64 * 4) & 3; // register holding role k (0=a) at step i
      for (let c = 0; c < chains; c++) {
        const [a, b, cc, d] = [0, 1, 2, 3].map((k) => st + c * 4 + role(k));
        code.localGet(a).localGet(msg + c * 16 + messageIndex(i)).simd(SIMD.i32x4Add);
        code.i32Const(0).v128Load(CONSTANT_OFFSET + 16 * i).simd(SIMD.i32x4Add);
        if (i < 16) {
          code.localGet(cc).localGet(d).localGet(b).simd(SIMD.bitselect);
        } else if (i < 32) {
          code.localGet(b).localGet(cc).localGet(d).simd(SIMD.bitselect);
        } else if (i < 48) {
          code.localGet(b).localGet(cc).simd(SIMD.xor).localGet(d).simd(SIMD.xor);
        } else {
          code.localGet(cc).localGet(b).localGet(d).simd(SIMD.not).simd(SIMD.or).simd(SIMD.xor);
        }
        code.simd(SIMD.i32x4Add);
        const s = S[i];
        if (s === 16) {
          code.localTee(tmp + c).localGet(tmp + c).i8x16Shuffle(ROTL16);
        } else {
          code.localTee(tmp + c).i32Const(s).simd(SIMD.i32x4Shl);
          code.localGet(tmp + c).i32Const(32 - s).simd(SIMD.i32x4ShrU).simd(SIMD.or);
        }
        code.localGet(b).simd(SIMD.i32x4Add).localSet(a);
      }
    }
    for (let c = 0; c < chains; c++) {
      for (let j = 0; j < 4; j++) {
        const x = st + c * 4 + j;
        const at = STATE_OFFSET + c * 64 + j * 16;
        code.i32Const(0).localGet(x).i32Const(0).v128Load(at).simd(SIMD.i32x4Add).localTee(x);
        code.v128Store(at);
      }
    }
    for (let l = 0; l < lanes; l++) {
      code.localGet(ptr + l).i32Const(64).op(OP.i32Add).localSet(ptr + l);
    }
  });
  code.op(OP.end);
  return { locals: L.groups, code };
}

/** Body of the scalar kernel for lane 0. */
function scalarKernel(): { locals: Array<[number, number]>; code: Code } {
  const L = new Locals(1);
  const p = L.take(1, I32);
  const st = L.take(4, I32);
  const saved = L.take(4, I32);
  const code = new Code();
  code.i32Const(0).i32Load(POINTER_OFFSET).localSet(p);
  for (let j = 0; j < 4; j++) code.i32Const(0).i32Load(stateWordOffset(0, j)).localSet(st + j);
  counted(code, () => {
    for (let j = 0; j < 4; j++) code.localGet(st + j).localSet(saved + j);
    for (let i = 0; i < 64; i++) {
      const [a, b, c, d] = [0, 1, 2, 3].map((k) => st + ((k - i + 256) & 3));
      code.localGet(a).localGet(p).i32Load(4 * messageIndex(i)).op(OP.i32Add);
      code.i32Const(K[i]).op(OP.i32Add);
      if (i < 16) { // d ^ (b & (c ^ d))
        code.localGet(d).localGet(b).localGet(c).localGet(d).op(OP.i32Xor).op(OP.i32And);
        code.op(OP.i32Xor);
      } else if (i < 32) { // c ^ (d & (b ^ c))
        code.localGet(c).localGet(d).localGet(b).localGet(c).op(OP.i32Xor).op(OP.i32And);
        code.op(OP.i32Xor);
      } else if (i < 48) {
        code.localGet(b).localGet(c).op(OP.i32Xor).localGet(d).op(OP.i32Xor);
      } else { // c ^ (b | ~d)
        code.localGet(c).localGet(b).localGet(d).i32Const(-1).op(OP.i32Xor).op(OP.i32Or);
        code.op(OP.i32Xor);
      }
      code.op(OP.i32Add).i32Const(S[i]).op(OP.i32Rotl).localGet(b).op(OP.i32Add).localSet(a);
    }
    for (let j = 0; j < 4; j++) {
      code.localGet(st + j).localGet(saved + j).op(OP.i32Add).localSet(st + j);
    }
    code.localGet(p).i32Const(64).op(OP.i32Add).localSet(p);
  });
  for (let j = 0; j < 4; j++) code.i32Const(0).localGet(st + j).i32Store(stateWordOffset(0, j));
  code.op(OP.end);
  return { locals: L.groups, code };
}

/** A function of a module being assembled. */
interface FunctionDef {
  readonly name: string;
  readonly type: number;
  readonly locals: Array<[number, number]>;
  readonly code: Code;
}

/** Assembles a module from function types, an optional memory import, and exported functions. */
function assemble(
  types: Array<{ params: number[]; results: number[] }>,
  memoryPages: number | null,
  functions: FunctionDef[],
): Uint8Array {
  const out = new ByteWriter().u8(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);
  const section = (id: number, body: ByteWriter) => out.u8(id).sized(body);

  const typeSec = new ByteWriter().uleb(types.length);
  for (const t of types) {
    typeSec.u8(0x60).uleb(t.params.length).u8(...t.params).uleb(t.results.length).u8(...t.results);
  }
  section(1, typeSec);
  if (memoryPages !== null) {
    section(
      2,
      new ByteWriter().uleb(1).name("env").name("memory").u8(0x02, 0x01).uleb(memoryPages)
        .uleb(memoryPages),
    );
  }
  const funcSec = new ByteWriter().uleb(functions.length);
  for (const f of functions) funcSec.uleb(f.type);
  section(3, funcSec);
  const exportSec = new ByteWriter().uleb(functions.length);
  functions.forEach((f, i) => exportSec.name(f.name).u8(0x00).uleb(i));
  section(7, exportSec);
  const codeSec = new ByteWriter().uleb(functions.length);
  for (const f of functions) {
    const body = new ByteWriter().uleb(f.locals.length);
    for (const [count, type] of f.locals) body.uleb(count).u8(type);
    body.raw(f.code.bytes());
    codeSec.sized(body);
  }
  section(10, codeSec);
  if (memoryPages !== null) {
    const data = new ByteWriter().uleb(1).u8(0x00).u8(0x41).sleb(CONSTANT_OFFSET).u8(0x0b);
    data.uleb(64 * 16);
    for (const k of K) for (let r = 0; r < 4; r++) data.u8(k, k >>> 8, k >>> 16, k >>> 24);
    section(11, data);
  }
  return out.bytes().slice();
}

/** Builds the binary of the MD5 kernel module (imports `env.memory`, exports {@linkcode Md5KernelExports}). */
export function buildMd5Module(options: Md5ModuleOptions): Uint8Array {
  const fns: FunctionDef[] = [{ name: "md5x1", type: 0, ...scalarKernel() }];
  for (const width of KERNEL_WIDTHS) {
    fns.push({ name: `md5x${width}`, type: 0, ...simdKernel(width / 4) });
  }
  return assemble([{ params: [I32], results: [] }], options.memoryPages, fns);
}

/** Builds a tiny module that validates only if the engine supports the SIMD opcodes the kernels use. */
export function buildSimdProbeModule(): Uint8Array {
  const code = new Code().i32Const(7).simd(SIMD.i32x4Splat).i32Const(3).simd(SIMD.i32x4Shl);
  code.v128Splat32(1).localGet(0).simd(SIMD.bitselect).localGet(0).i8x16Shuffle(ROTL16);
  code.op(OP.end);
  // (param v128) (result v128)
  return assemble([{ params: [V128], results: [V128] }], null, [
    { name: "probe", type: 0, locals: [], code },
  ]);
}
