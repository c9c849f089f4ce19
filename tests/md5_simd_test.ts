import { MD5_TEST_VECTORS } from "../core/md5/engine.ts";
import { createHash } from "node:crypto";
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  openSimdMd5Engine,
  type SimdMd5Engine,
  SimdMd5Error,
  type SimdMd5Options,
  simdSupported,
} from "../core/md5/simd_engine.ts";

/** Deterministic xorshift32 generator. */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

/** Pseudo-random bytes, cheap to make. */
function bytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  const w = new Uint32Array(out.buffer, 0, length >>> 2);
  let x = seed >>> 0 || 7;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x;
  }
  for (let i = w.length * 4; i < length; i++) out[i] = i * 31 + seed;
  return out;
}

function md5(data: Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** Hashes `data` through `engine` in random chunks, yielding at random. */
async function hashChunked(
  engine: SimdMd5Engine,
  data: Uint8Array,
  rand: (n: number) => number,
  maxChunk: number,
): Promise<string> {
  const s = engine.create();
  const reused = new Uint8Array(maxChunk + 100);
  let at = 0;
  while (at < data.length) {
    const n = Math.min(data.length - at, 1 + rand(rand(4) === 0 ? 100 : maxChunk));
    if (rand(3) === 0) {
      // The caller may reuse its buffer once update() resolves.
      reused.set(data.subarray(at, at + n));
      await s.update(reused.subarray(0, n));
      reused.fill(0xaa);
    } else {
      void s.update(data.slice(at, at + n));
    }
    at += n;
  }
  if (rand(2) === 0) await new Promise((r) => setTimeout(r, rand(3)));
  return await s.digest();
}

function withEngine(
  options: SimdMd5Options,
  fn: (engine: SimdMd5Engine) => Promise<void>,
): () => Promise<void> {
  return async () => {
    const engine = openSimdMd5Engine(options);
    try {
      await fn(engine);
    } finally {
      engine.close();
    }
  };
}

Deno.test("simdSupported is true on this runtime", () => {
  ok(simdSupported());
});

Deno.test(
  "RFC 1321 test suite",
  withEngine({}, async (engine) => {
    const vectors = MD5_TEST_VECTORS;
    const got = await Promise.all(vectors.map(async ([text]) => {
      const s = engine.create();
      await s.update(new TextEncoder().encode(text));
      return s.digest();
    }));
    deepStrictEqual(got, vectors.map(([, hex]) => hex));
  }),
);

Deno.test(
  "every length 0..300 and around slot boundaries, one update each",
  withEngine({ slotBytes: 65536, slots: 4 }, async (engine) => {
    const lengths = [...Array(301).keys()];
    for (const k of [1, 2, 3]) for (let d = -65; d <= 65; d++) lengths.push(k * 65536 + d);
    const data = bytes(3 * 65536 + 100, 11);
    const got = await Promise.all(lengths.map(async (n) => {
      const s = engine.create();
      await s.update(data.subarray(0, n));
      return s.digest();
    }));
    deepStrictEqual(got, lengths.map((n) => md5(data.subarray(0, n))));
  }),
);

for (const count of [1, 3, 4, 5, 8, 13, 16, 17, 40]) {
  Deno.test(
    `${count} concurrent streams, random lengths and chunkings`,
    withEngine({ slotBytes: 256 * 1024 }, async (engine) => {
      const rand = rng(1000 + count);
      const inputs = Array.from(
        { length: count },
        (_, i) => bytes(rand(count > 16 ? 5000 : 40_000) * 64 + rand(64), i + count),
      );
      const got = await Promise.all(inputs.map((d) => hashChunked(engine, d, rand, 200_000)));
      deepStrictEqual(got, inputs.map(md5));
    }),
  );
}

Deno.test(
  "streams join and leave at random, every residue modulo 64",
  withEngine({ slotBytes: 512 * 1024, slots: 12 }, async (engine) => {
    const rand = rng(42);
    const pool = bytes(4 * 1024 * 1024 + 64, 5);
    const jobs: Array<Promise<void>> = [];
    for (let i = 0; i < 96; i++) {
      const length = rand(3) === 0 ? rand(4 * 1024 * 1024) : rand(64) * 64 * rand(64);
      const len = length - (length % 64) + (i % 64);
      const off = rand(64);
      const data = pool.subarray(off, off + Math.min(len, pool.length - off));
      const delay = rand(40);
      jobs.push((async () => {
        await new Promise((r) => setTimeout(r, delay));
        strictEqual(await hashChunked(engine, data, rand, 1 << 20), md5(data), `stream ${i}`);
      })());
    }
    await Promise.all(jobs);
    const st = engine.stats();
    ok(st.blocks > 0 && st.laneBlocks >= st.blocks);
  }),
);

Deno.test(
  "reserve/commit reads files straight into engine memory",
  withEngine({ slotBytes: 128 * 1024, slots: 3 }, async (engine) => {
    const dir = await Deno.makeTempDir();
    try {
      const sizes = [0, 1, 63, 64, 65, 128 * 1024 - 1, 128 * 1024 + 1, 700_001];
      const datas = sizes.map((n, i) => bytes(n, 77 + i));
      await Promise.all(datas.map((d, i) => Deno.writeFile(`${dir}/f${i}`, d)));
      const got = await Promise.all(datas.map(async (_, i) => {
        using file = await Deno.open(`${dir}/f${i}`);
        const s = engine.create();
        for (;;) {
          const view = await s.reserve(50_000 + i * 1000);
          const n = await file.read(view);
          s.commit(n ?? 0);
          if (n === null) break;
        }
        return s.digest();
      }));
      deepStrictEqual(got, datas.map(md5));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }),
);

Deno.test(
  "full lanes are used when 16 streams are fed together",
  withEngine({ slotBytes: 1 << 20 }, async (engine) => {
    const data = bytes(8 << 20, 3);
    const streams = Array.from({ length: 16 }, () => engine.create());
    for (let at = 0; at < data.length; at += 1 << 19) {
      await Promise.all(streams.map((s) => s.update(data.subarray(at, at + (1 << 19)))));
    }
    const want = md5(data);
    for (const hex of await Promise.all(streams.map((s) => s.digest()))) strictEqual(hex, want);
    const st = engine.stats();
    ok(st.blocks / st.laneBlocks > 0.99, `utilisation ${st.blocks / st.laneBlocks}`);
    ok(st.calls[16] > 0);
  }),
);

Deno.test("misuse raises SimdMd5Error; close rejects pending work", async () => {
  const engine = openSimdMd5Engine({ slotBytes: 65536, slots: 1 });
  const a = engine.create();
  await a.update(new Uint8Array(10));
  const digest = a.digest();
  throws(() => a.update(new Uint8Array(1)), SimdMd5Error);
  strictEqual(await digest, md5(new Uint8Array(10)));
  const b = engine.create();
  const view = await b.reserve(100);
  throws(() => b.update(new Uint8Array(1)), SimdMd5Error);
  b.commit(view.length);
  const c = engine.create();
  const pending = c.update(new Uint8Array(1000)); // waits: the only slot is b's
  engine.close();
  await rejects(pending, SimdMd5Error);
  throws(() => engine.create(), SimdMd5Error);
  throws(() => openSimdMd5Engine({ slotBytes: 1000 }), RangeError);
});
