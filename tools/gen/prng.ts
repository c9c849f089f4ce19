/**
 * The generator's deterministic PRNG: the same key always gives the same bytes.
 * @module
 */

/** xoshiro128** seeded from a string key through cyrb128; fast and reproducible. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  private constructor(a: number, b: number, c: number, d: number) {
    this.#a = a | 0;
    this.#b = b | 0;
    this.#c = c | 0;
    this.#d = d | 0;
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  /** A generator seeded from `key` (through cyrb128). */
  static fromKey(key: string): Prng {
    let h1 = 1779033703, h2 = 3144134277, h3 = 1013904242, h4 = 2773480762;
    for (let i = 0; i < key.length; i++) {
      const k = key.charCodeAt(i);
      h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
      h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
      h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
      h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
    }
    h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
    h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
    h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
    h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
    return new Prng(h1 ^ h2 ^ h3 ^ h4, h2 ^ h1, h3 ^ h1, h4 ^ h1);
  }

  /** Next 32-bit unsigned integer. */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9);
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result >>> 0;
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  /** `chars` random lowercase hex digits. */
  hex(chars: number): string {
    let s = "";
    while (s.length < chars) s += this.u32().toString(16).padStart(8, "0");
    return s.slice(0, chars);
  }

  /** A random version-4 UUID. */
  uuid(): string {
    const h = this.hex(32).split("");
    h[12] = "4";
    h[16] = "89ab"[parseInt(h[16], 16) & 3];
    const s = h.join("");
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${
      s.slice(20)
    }`;
  }

  /** `count` words drawn from `list`, joined by spaces. */
  words(list: readonly string[], count: number): string {
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(list[this.int(0, list.length - 1)]);
    return out.join(" ");
  }

  /** `n` random bytes (a fresh buffer). */
  bytes(n: number): Uint8Array {
    const words = new Uint32Array(Math.ceil(n / 4));
    let a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    for (let i = 0; i < words.length; i++) {
      words[i] = Math.imul(rotl(Math.imul(b, 5), 7), 9);
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = rotl(d, 11);
    }
    this.#a = a;
    this.#b = b;
    this.#c = c;
    this.#d = d;
    // Byte order of the words follows the platform; all supported platforms are little-endian.
    return new Uint8Array(words.buffer, 0, n);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
