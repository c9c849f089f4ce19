/**
 * The `libcrypto` MD5 engine: OpenSSL's EVP_md5 through Deno FFI, large updates hashed on
 * Deno's blocking thread pool.
 * @module
 */

import {
  MD5_TEST_VECTORS,
  type Md5Engine,
  Md5EngineError,
  Md5EngineUnavailableError,
  type Md5Stream,
  toHex,
} from "./engine.ts";
import { errorMessage } from "../errors.ts";

/** Library names tried, in order, when no explicit libcrypto path is given. */
const LIBCRYPTO_CANDIDATES: readonly string[] = [
  "libcrypto.so.3",
  "libcrypto.so.1.1",
  "libcrypto.so",
];

/** Environment variable naming an explicit libcrypto shared object to load. */
export const LIBCRYPTO_ENV = "DT_LIBCRYPTO";

const ENCODER = new TextEncoder();

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
      failures.push(`${path}: ${errorMessage(err)}`);
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
