/**
 * The MD5 engine interface every implementation of the tool provides, the RFC 1321 test
 * vectors and the self-test every engine passes before it is used.
 * @module
 */

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

/** Lowercase hex of a digest. */
export function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const b of bytes) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/**
 * Checks any engine against {@linkcode MD5_TEST_VECTORS}, feeding each vector whole and byte by
 * byte. Resolves to `null` when all pass, otherwise to a line describing the first failure.
 */
export async function selfTestMd5Engine(engine: Md5Engine): Promise<string | null> {
  for (const [input, expected] of MD5_TEST_VECTORS) {
    const bytes = new TextEncoder().encode(input);
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
