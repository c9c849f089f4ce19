/**
 * The `node:crypto` MD5 engine: works wherever Deno runs, FIPS or not.
 * @module
 */

import { createHash } from "node:crypto";
import {
  MD5_TEST_VECTORS,
  type Md5Engine,
  Md5EngineUnavailableError,
  type Md5Stream,
} from "./engine.ts";

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

/**
 * Checks node:crypto against the RFC 1321 vectors and returns its engine; throws
 * {@linkcode Md5EngineUnavailableError} if it fails (the last engine to fall back to).
 */
export function openNodeMd5Engine(): Md5Engine {
  for (const [input, expected] of MD5_TEST_VECTORS) {
    const got = createHash("md5").update(input).digest("hex");
    if (got !== expected) {
      throw new Md5EngineUnavailableError(
        "node:crypto",
        `self-test failed: MD5("${input}") = ${got}, expected ${expected}`,
      );
    }
  }
  return createNodeMd5Engine();
}
