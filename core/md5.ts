/**
 * MD5 engines: the interface every MD5 implementation of the tool provides.
 * @module
 */

/** One MD5 computation in progress. */
export interface Md5Stream {
  /** Feeds bytes in order. The caller may reuse `chunk` once the promise resolves. */
  update(chunk: Uint8Array): Promise<void>;
  /** Ends the stream and resolves to the 32-character lowercase hex digest. */
  digest(): Promise<string>;
  /**
   * Optional, for engines that hash from their own memory: lends a writable view of 1 to
   * `maxBytes` bytes to be filled by the caller (e.g. `file.read(view)`, so the bytes are
   * read straight into place) and handed back with `commit`. Nothing else may be called on the
   * stream in between.
   */
  reserve?(maxBytes: number): Promise<Uint8Array>;
  /** Appends the first `bytes` bytes of the view lent by `reserve` (0 gives it back). */
  commit?(bytes: number): void;
}

/** A source of MD5 streams (libcrypto through FFI, node:crypto, WebAssembly SIMD). */
export interface Md5Engine {
  /** Short name shown to users, such as `libcrypto`, `node:crypto` or `wasm-simd`. */
  readonly name: string;
  /** Starts a new, independent MD5 stream. */
  create(): Md5Stream;
  /** Releases native resources. The engine is unusable afterwards. */
  close(): void;
}

import { createHash } from "node:crypto";
import { openSimdMd5Engine, simdSupported } from "./md5_simd.ts";

/** RFC 1321 appendix A.5 test suite: `[input, lowercase hex digest]` pairs. */
export const MD5_TEST_VECTORS: ReadonlyArray<readonly [string, string]> = [
  ["", "d41d8cd98f00b204e9800998ecf8427e"],
  ["a", "0cc175b9c0f1b6a831c399e269772661"],
  ["abc", "900150983cd24fb0d6963f7d28e17f72"],
  ["message digest", "f96b697d7cb7938d525a2f31aaf161d0"],
  ["abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"],
  [
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "d174ab98d277d9f5a5611c2c9f419d9f",
  ],
  [
    "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
    "57edf4a22be3c955ac49da2e2107b67a",
  ],
];

/** Library names tried, in order, when no explicit libcrypto path is given. */
export const LIBCRYPTO_CANDIDATES: readonly string[] = [
  "libcrypto.so.3",
  "libcrypto.so.1.1",
  "libcrypto.so",
];

/** Environment variable naming an explicit libcrypto shared object to load. */
export const LIBCRYPTO_ENV = "DT_LIBCRYPTO";

/** An MD5 engine cannot be used here (library missing, MD5 disabled by FIPS, failed self-test). */
export class Md5EngineUnavailableError extends Error {
  /** Engine that was requested, such as `libcrypto`. */
  readonly engine: string;
  /** Creates the error; `reason` says what failed and what to do. */
  constructor(engine: string, reason: string, options?: ErrorOptions) {
    super(`MD5 engine ${engine} unavailable: ${reason}`, options);
    this.name = new.target.name;
    this.engine = engine;
  }
}

/** A native call of libcrypto failed in the middle of hashing. */
export class Md5EngineError extends Error {
  /** Creates the error for the failed `call`. */
  constructor(engine: string, call: string) {
    super(`MD5 engine ${engine}: ${call} failed; the digest of this stream is unusable`);
    this.name = new.target.name;
  }
}

const ENCODER = new TextEncoder();

function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

// ---------------------------------------------------------------------------------------------
// node:crypto

class NodeMd5Stream implements Md5Stream {
  #hash = createHash("md5");
  #done = false;

  update(chunk: Uint8Array): Promise<void> {
    if (this.#done) return Promise.reject(new Error("Md5Stream.update after digest"));
    // Synchronous: `chunk` is consumed before this returns, the promise only keeps the interface.
    this.#hash.update(chunk);
    return Promise.resolve();
  }

  digest(): Promise<string> {
    if (this.#done) return Promise.reject(new Error("Md5Stream.digest called twice"));
    this.#done = true;
    return Promise.resolve(this.#hash.digest("hex"));
  }
}

/**
 * Creates the `node:crypto` engine (`createHash("md5")`). Hashing is synchronous on the calling
 * thread; it works wherever Deno runs, FIPS or not, since Deno implements it without OpenSSL.
 */
export function createNodeMd5Engine(): Md5Engine {
  return {
    name: "node:crypto",
    create: () => new NodeMd5Stream(),
    close: () => {},
  };
}

// ---------------------------------------------------------------------------------------------
// libcrypto through FFI

const LIBCRYPTO_SYMBOLS = {
  EVP_MD_CTX_new: { parameters: [], result: "pointer" },
  EVP_MD_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_md5: { parameters: [], result: "pointer" },
  EVP_DigestInit_ex: { parameters: ["pointer", "pointer", "pointer"], result: "i32" },
  // Runs on Deno's blocking thread pool and returns a Promise.
  EVP_DigestUpdate: {
    parameters: ["pointer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  // Same symbol, called on the JS thread: self-test and small chunks.
  EVP_DigestUpdate_sync: {
    name: "EVP_DigestUpdate",
    parameters: ["pointer", "buffer", "usize"],
    result: "i32",
  },
  EVP_DigestFinal_ex: { parameters: ["pointer", "buffer", "pointer"], result: "i32" },
} as const;

type Libcrypto = Deno.DynamicLibrary<typeof LIBCRYPTO_SYMBOLS>;

/** Chunks shorter than this are hashed on the JS thread: a thread hop would cost more. */
const SYNC_UPDATE_MAX = 64 * 1024;

/** Options of {@linkcode openLibcryptoMd5Engine}. */
export interface LibcryptoMd5Options {
  /**
   * Explicit shared object to load. When set, only this path is tried; when absent,
   * {@linkcode LIBCRYPTO_CANDIDATES} are tried in order.
   */
  path?: string;
}

/**
 * One loaded libcrypto. It is unloaded once the engine is closed and every native context is
 * freed (by `digest()`, or by the garbage collector for a stream dropped without it), so a
 * stream still in use never calls into an unloaded library.
 */
class LibcryptoHandle {
  readonly lib: Libcrypto;
  readonly md: Deno.PointerObject;
  readonly loadedFrom: string;
  #live = 0;
  #closed = false;
  readonly #registry: FinalizationRegistry<Deno.PointerObject>;

  constructor(lib: Libcrypto, md: Deno.PointerObject, loadedFrom: string) {
    this.lib = lib;
    this.md = md;
    this.loadedFrom = loadedFrom;
    this.#registry = new FinalizationRegistry((ctx) => this.free(ctx));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Counts a new context and frees it if `owner` is collected without `release`. */
  adopt(owner: object, ctx: Deno.PointerObject): void {
    this.#live++;
    this.#registry.register(owner, ctx, owner);
  }

  /** Frees the context of `owner`. */
  release(owner: object, ctx: Deno.PointerObject): void {
    this.#registry.unregister(owner);
    this.free(ctx);
  }

  free(ctx: Deno.PointerObject): void {
    this.lib.symbols.EVP_MD_CTX_free(ctx);
    this.#live--;
    this.#maybeUnload();
  }

  close(): void {
    this.#closed = true;
    this.#maybeUnload();
  }

  #maybeUnload(): void {
    if (this.#closed && this.#live === 0) {
      this.#live = -1; // unload once
      this.lib.close();
    }
  }
}

class LibcryptoMd5Stream implements Md5Stream {
  readonly #h: LibcryptoHandle;
  #ctx: Deno.PointerObject | null;
  /** Serialises updates: a caller that does not await still gets them in order. */
  #tail: Promise<void> = Promise.resolve();
  /** Set when a native update failed: the digest would be of partial data. */
  #broken = false;

  constructor(h: LibcryptoHandle) {
    if (h.closed) throw new Error("Md5Engine libcrypto is closed");
    const ctx = h.lib.symbols.EVP_MD_CTX_new();
    if (ctx === null) throw new Md5EngineError("libcrypto", "EVP_MD_CTX_new (out of memory?)");
    if (h.lib.symbols.EVP_DigestInit_ex(ctx, h.md, null) !== 1) {
      h.lib.symbols.EVP_MD_CTX_free(ctx);
      throw new Md5EngineError("libcrypto", "EVP_DigestInit_ex(EVP_md5())");
    }
    this.#h = h;
    this.#ctx = ctx;
    h.adopt(this, ctx);
  }

  /**
   * Hashes `chunk` on a libcrypto worker thread. The native call reads `chunk` directly,
   * without a copy: its bytes must stay alive and unchanged (not written, not transferred
   * or detached) until the returned promise resolves.
   */
  update(chunk: Uint8Array): Promise<void> {
    const run = async (): Promise<void> => {
      const ctx = this.#ctx;
      if (ctx === null) throw new Error("Md5Stream.update after digest");
      if (chunk.byteLength === 0) return;
      const sym = this.#h.lib.symbols;
      let rc: number;
      if (chunk.byteLength < SYNC_UPDATE_MAX) {
        rc = sym.EVP_DigestUpdate_sync(ctx, chunk, BigInt(chunk.byteLength));
      } else {
        rc = await sym.EVP_DigestUpdate(ctx, chunk, BigInt(chunk.byteLength));
      }
      if (rc !== 1) {
        this.#broken = true;
        throw new Md5EngineError("libcrypto", "EVP_DigestUpdate");
      }
    };
    const p = this.#tail.then(run);
    this.#tail = p.catch(() => {});
    return p;
  }

  /** Waits for pending updates, returns the digest and frees the native context. */
  async digest(): Promise<string> {
    await this.#tail;
    const ctx = this.#ctx;
    if (ctx === null) throw new Error("Md5Stream.digest called twice");
    this.#ctx = null;
    const out = new Uint8Array(16);
    const rc = this.#h.lib.symbols.EVP_DigestFinal_ex(ctx, out, null);
    this.#h.release(this, ctx);
    if (this.#broken) throw new Md5EngineError("libcrypto", "an earlier EVP_DigestUpdate");
    if (rc !== 1) throw new Md5EngineError("libcrypto", "EVP_DigestFinal_ex");
    return toHex(out);
  }
}

/** One-shot MD5 through the blocking symbols, for the self-test. `null` when a call fails. */
function libcryptoOneShot(lib: Libcrypto, md: Deno.PointerObject, data: Uint8Array): string | null {
  const s = lib.symbols;
  const ctx = s.EVP_MD_CTX_new();
  if (ctx === null) return null;
  try {
    const out = new Uint8Array(16);
    if (s.EVP_DigestInit_ex(ctx, md, null) !== 1) return null;
    if (s.EVP_DigestUpdate_sync(ctx, data, BigInt(data.byteLength)) !== 1) return null;
    if (s.EVP_DigestFinal_ex(ctx, out, null) !== 1) return null;
    return toHex(out);
  } finally {
    s.EVP_MD_CTX_free(ctx);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Loads libcrypto (OpenSSL 3 or 1.1) and returns an engine using EVP_md5. Updates of 64 KiB or
 * more run on Deno's blocking thread pool (`nonblocking` FFI), so several streams hash in
 * parallel and the JS thread stays free; the chunk is read in place, so it must stay alive and
 * unchanged until its `update` promise resolves.
 * Needs `--allow-ffi`. Throws {@linkcode Md5EngineUnavailableError} when the library cannot be
 * loaded, when MD5 is disabled (FIPS mode makes `EVP_DigestInit_ex` fail), or when the RFC 1321
 * self-test fails.
 */
export function openLibcryptoMd5Engine(options: LibcryptoMd5Options = {}): Md5Engine {
  const candidates = options.path !== undefined ? [options.path] : LIBCRYPTO_CANDIDATES;
  let lib: Libcrypto | undefined;
  let loadedFrom = "";
  const failures: string[] = [];
  for (const path of candidates) {
    try {
      lib = Deno.dlopen(path, LIBCRYPTO_SYMBOLS);
      loadedFrom = path;
      break;
    } catch (err) {
      failures.push(`${path}: ${errorText(err)}`);
    }
  }
  if (lib === undefined) {
    throw new Md5EngineUnavailableError(
      "libcrypto",
      `cannot load libcrypto (${failures.join("; ")}); install OpenSSL or set ${LIBCRYPTO_ENV}`,
    );
  }
  const md = lib.symbols.EVP_md5();
  if (md === null) {
    lib.close();
    throw new Md5EngineUnavailableError("libcrypto", `EVP_md5() returned NULL in ${loadedFrom}`);
  }
  const probe = libcryptoOneShot(lib, md, new Uint8Array(0));
  if (probe === null) {
    lib.close();
    throw new Md5EngineUnavailableError(
      "libcrypto",
      `EVP_DigestInit_ex(EVP_md5()) failed in ${loadedFrom}: MD5 is disabled ` +
        `(FIPS mode or OPENSSL_CONF default_properties)`,
    );
  }
  for (const [input, expected] of MD5_TEST_VECTORS) {
    const got = libcryptoOneShot(lib, md, ENCODER.encode(input));
    if (got !== expected) {
      lib.close();
      throw new Md5EngineUnavailableError(
        "libcrypto",
        `self-test failed in ${loadedFrom}: MD5("${input}") = ${got}, expected ${expected}`,
      );
    }
  }
  const handle = new LibcryptoHandle(lib, md, loadedFrom);
  return {
    name: "libcrypto",
    create: () => new LibcryptoMd5Stream(handle),
    close: () => handle.close(),
  };
}

/**
 * Checks any engine against {@linkcode MD5_TEST_VECTORS}, feeding each vector whole and byte by
 * byte. Resolves to `null` when all pass, otherwise to a line describing the first failure.
 */
export async function selfTestMd5Engine(engine: Md5Engine): Promise<string | null> {
  for (const [input, expected] of MD5_TEST_VECTORS) {
    const bytes = ENCODER.encode(input);
    const whole = engine.create();
    await whole.update(bytes);
    const got = await whole.digest();
    if (got !== expected) return `MD5("${input}") = ${got}, expected ${expected}`;
    const split = engine.create();
    for (let i = 0; i < bytes.length; i++) await split.update(bytes.subarray(i, i + 1));
    const gotSplit = await split.digest();
    if (gotSplit !== expected) {
      return `MD5("${input}") fed byte by byte = ${gotSplit}, expected ${expected}`;
    }
  }
  return null;
}

function selfTestNode(): string | null {
  for (const [input, expected] of MD5_TEST_VECTORS) {
    const got = createHash("md5").update(input).digest("hex");
    if (got !== expected) return `MD5("${input}") = ${got}, expected ${expected}`;
  }
  return null;
}

/** Options of {@linkcode openMd5Engine}. */
export interface OpenMd5EngineOptions {
  /**
   * Engine to try first (default `libcrypto`). `wasm-simd` falls back to libcrypto where
   * WebAssembly SIMD is missing; `node:crypto` never falls back.
   */
  prefer?: "wasm-simd" | "libcrypto" | "node:crypto";
  /**
   * Explicit libcrypto shared object. Defaults to the `DT_LIBCRYPTO` environment variable
   * when it is set and readable, else {@linkcode LIBCRYPTO_CANDIDATES} are tried.
   */
  libcryptoPath?: string;
  /** Receives one line when the preferred engine is unusable and node:crypto is used instead. */
  log?: (line: string) => void;
}

function envLibcryptoPath(): string | undefined {
  try {
    const value = Deno.env.get(LIBCRYPTO_ENV);
    return value === undefined || value === "" ? undefined : value;
  } catch {
    return undefined; // no --allow-env: behave as if unset
  }
}

/**
 * Opens the preferred MD5 engine after its RFC 1321 self-test and falls back to node:crypto,
 * logging one line with the reason, when libcrypto is missing, MD5 is disabled (FIPS), FFI is
 * not permitted, or the self-test fails. Throws {@linkcode Md5EngineUnavailableError} only if
 * node:crypto itself fails its self-test.
 */
export function openMd5Engine(options: OpenMd5EngineOptions = {}): Md5Engine {
  let prefer = options.prefer ?? "libcrypto";
  if (prefer === "wasm-simd") {
    if (simdSupported()) return openSimdMd5Engine();
    options.log?.("md5: WebAssembly SIMD is not supported by this runtime, using libcrypto");
    prefer = "libcrypto";
  }
  if (prefer === "libcrypto") {
    try {
      return openLibcryptoMd5Engine({ path: options.libcryptoPath ?? envLibcryptoPath() });
    } catch (err) {
      options.log?.(
        `md5: libcrypto engine not used, falling back to node:crypto: ${errorText(err)}`,
      );
    }
  }
  const failure = selfTestNode();
  if (failure !== null) {
    throw new Md5EngineUnavailableError("node:crypto", `self-test failed: ${failure}`);
  }
  return createNodeMd5Engine();
}
