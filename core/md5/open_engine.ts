/**
 * Opens the MD5 engine a configuration asks for, with its fallbacks.
 * @module
 */

import type { Md5Engine } from "./engine.ts";
import { LIBCRYPTO_ENV, openLibcryptoMd5Engine } from "./libcrypto_engine.ts";
import { openNodeMd5Engine } from "./node_engine.ts";
import { openSimdMd5Engine, simdSupported } from "./simd_engine.ts";
import { errorMessage } from "../errors.ts";

/** The engines a user can choose (`data_transfer.md5_engine`). */
export type Md5EngineChoice = "auto" | "wasm-simd" | "libcrypto" | "node:crypto";

/**
 * The engine `auto` stands for: with several files in flight per rank the SIMD engine hashes
 * several streams side by side (the bench's sweep: 3.65 s against 4.57 s for libcrypto with 2
 * in flight, same tree). It falls back to libcrypto where SIMD is missing.
 */
export const AUTO_MD5_ENGINE: Exclude<Md5EngineChoice, "auto"> = "wasm-simd";

/** Options of {@linkcode openMd5Engine}. */
export interface OpenMd5EngineOptions {
  /**
   * Engine to try first (default `auto`, see {@linkcode AUTO_MD5_ENGINE}). `wasm-simd` falls
   * back to libcrypto where WebAssembly SIMD is missing; `node:crypto` never falls back.
   */
  prefer?: Md5EngineChoice;
  /**
   * Explicit libcrypto shared object. Defaults to the `DT_LIBCRYPTO` environment variable
   * when it is set and readable, else the usual sonames are tried.
   */
  libcryptoPath?: string;
  /** Receives one line when the preferred engine is unusable and another is used instead. */
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
 * not permitted, or the self-test fails. Throws `Md5EngineUnavailableError` only if
 * node:crypto itself fails its self-test.
 */
export function openMd5Engine(options: OpenMd5EngineOptions = {}): Md5Engine {
  let prefer = options.prefer ?? "auto";
  if (prefer === "auto") prefer = AUTO_MD5_ENGINE;
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
        `md5: libcrypto engine not used, falling back to node:crypto: ${errorMessage(err)}`,
      );
    }
  }
  return openNodeMd5Engine();
}

/**
 * The engine for a file that is most of a rank's work, beside `engine`: with `md5_engine:
 * auto` and the SIMD engine, libcrypto, since one stream gains nothing from SIMD lanes and
 * libcrypto hashes it off the rank's thread, beside the reads, writes and comparisons.
 * `undefined` (use `engine` for every file) for any other choice, or without libcrypto.
 */
export function openLoneEngine(choice: Md5EngineChoice, engine: Md5Engine): Md5Engine | undefined {
  if (choice !== "auto" || engine.name !== "wasm-simd") return undefined;
  const lone = openMd5Engine({ prefer: "libcrypto" });
  if (lone.name === "libcrypto") return lone;
  lone.close();
  return undefined;
}
