import { prng } from "./support/random.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "./support/assert.ts";
import { createHash } from "node:crypto";
import { createNodeMd5Engine } from "../core/md5/node_engine.ts";
import {
  MD5_TEST_VECTORS,
  type Md5Engine,
  Md5EngineUnavailableError,
  selfTestMd5Engine,
} from "../core/md5/engine.ts";
import { openLibcryptoMd5Engine } from "../core/md5/libcrypto_engine.ts";
import { openMd5Engine } from "../core/md5/open_engine.ts";

function randomBytes(rand: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (rand() * 256) | 0;
  return out;
}

function oneShot(data: Uint8Array): string {
  return createHash("md5").update(data).digest("hex");
}

/** Splits `data` at random points: empty chunks, tiny ones, and chunks above 64 KiB. */
function randomChunks(rand: () => number, data: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let o = 0;
  while (o < data.length) {
    const kind = rand();
    const max = kind < 0.1 ? 0 : kind < 0.5 ? 70 : kind < 0.8 ? 5000 : 300_000;
    const n = Math.min(data.length - o, Math.floor(rand() * (max + 1)));
    chunks.push(data.subarray(o, o + n));
    o += n;
  }
  return chunks;
}

const LENGTHS: number[] = [
  ...Array.from({ length: 131 }, (_, i) => i), // every residue mod 64, twice
  1000,
  4095,
  4096,
  4097,
  65535,
  65536,
  65537,
  1_000_003,
  3 * 1024 * 1024 + 29,
];

function engines(): Md5Engine[] {
  return [openLibcryptoMd5Engine(), createNodeMd5Engine()];
}

Deno.test("md5: RFC 1321 vectors, both engines", async () => {
  for (const engine of engines()) {
    try {
      assertEquals(await selfTestMd5Engine(engine), null, engine.name);
      for (const [input, expected] of MD5_TEST_VECTORS) {
        const s = engine.create();
        await s.update(new TextEncoder().encode(input));
        assertEquals(await s.digest(), expected, `${engine.name} "${input}"`);
      }
    } finally {
      engine.close();
    }
  }
});

Deno.test("md5: random lengths and chunkings equal node:crypto one-shot", async () => {
  const rand = prng(20240601);
  for (const engine of engines()) {
    try {
      for (const len of LENGTHS) {
        const data = randomBytes(rand, len);
        const expected = oneShot(data);
        for (let round = 0; round < (len < 200 ? 2 : 3); round++) {
          const s = engine.create();
          for (const c of randomChunks(rand, data)) await s.update(c);
          assertEquals(await s.digest(), expected, `${engine.name} len=${len} round=${round}`);
        }
        const whole = engine.create();
        await whole.update(data);
        assertEquals(await whole.digest(), expected, `${engine.name} len=${len} whole`);
      }
    } finally {
      engine.close();
    }
  }
});

Deno.test("md5: concurrent interleaved streams, updates not awaited one by one", async () => {
  const rand = prng(7);
  for (const engine of engines()) {
    try {
      const inputs = Array.from(
        { length: 6 },
        (_, i) => randomBytes(rand, 200_000 * (i + 1) + i * 13),
      );
      const streams = inputs.map(() => engine.create());
      const plans = inputs.map((d) => randomChunks(rand, d));
      const pending: Promise<void>[] = [];
      for (let step = 0; plans.some((p) => step < p.length); step++) {
        plans.forEach((p, i) => {
          if (step < p.length) pending.push(streams[i].update(p[step]));
        });
      }
      const digests = await Promise.all(streams.map((s) => s.digest()));
      await Promise.all(pending);
      assertEquals(digests, inputs.map(oneShot), engine.name);
    } finally {
      engine.close();
    }
  }
});

Deno.test("md5: misuse is rejected, not undefined behaviour", async () => {
  for (const engine of engines()) {
    const s = engine.create();
    await s.update(new Uint8Array(10));
    await s.digest();
    await assertRejects(() => s.update(new Uint8Array(1)), Error);
    await assertRejects(() => s.digest(), Error);
    engine.close();
  }
});

Deno.test("md5: libcrypto close() waits for live streams before unloading", async () => {
  const engine = openLibcryptoMd5Engine();
  const data = randomBytes(prng(3), 4 * 1024 * 1024);
  const s = engine.create();
  const p = s.update(data);
  engine.close();
  await p;
  assertEquals(await s.digest(), oneShot(data));
  assertThrows(() => engine.create(), Error);
});

Deno.test("md5: openMd5Engine chooses and falls back with one log line", () => {
  const lines: string[] = [];
  const auto = openMd5Engine({ log: (l) => lines.push(l) });
  assertEquals(auto.name, "wasm-simd");
  auto.close();
  const lib = openMd5Engine({ prefer: "libcrypto", log: (l) => lines.push(l) });
  assertEquals(lib.name, "libcrypto");
  lib.close();
  const node = openMd5Engine({ prefer: "node:crypto", log: (l) => lines.push(l) });
  assertEquals(node.name, "node:crypto");
  assertEquals(lines, []);
  const fallback = openMd5Engine({
    prefer: "libcrypto",
    libcryptoPath: "/nonexistent/libcrypto.so.9",
    log: (l) => lines.push(l),
  });
  assertEquals(fallback.name, "node:crypto");
  assertEquals(lines.length, 1);
  assert(lines[0].includes("/nonexistent/libcrypto.so.9"), lines[0]);
});

Deno.test("md5: a missing library gives Md5EngineUnavailableError", () => {
  const err = assertThrows(
    () => openLibcryptoMd5Engine({ path: "/nonexistent/libcrypto.so.9" }),
    Md5EngineUnavailableError,
  );
  assertEquals(err.engine, "libcrypto");
});

Deno.test("md5: MD5 disabled by OpenSSL FIPS properties falls back to node:crypto", async () => {
  // OpenSSL 3 config that only allows fips=yes implementations: EVP_DigestInit_ex(md5) fails,
  // as on a FIPS-enabled host. Run in a child so the setting cannot leak into this process.
  const dir = await Deno.makeTempDir();
  try {
    const conf = `${dir}/fips.cnf`;
    await Deno.writeTextFile(
      conf,
      "openssl_conf = openssl_init\n[openssl_init]\nalg_section = evp\n" +
        "[evp]\ndefault_properties = fips=yes\n",
    );
    const md5Url = new URL("../core/md5/open_engine.ts", import.meta.url).href;
    const script = `import { openMd5Engine } from "${md5Url}";
      const lines = [];
      const e = openMd5Engine({ prefer: "libcrypto", log: (l) => lines.push(l) });
      const s = e.create(); await s.update(new TextEncoder().encode("abc"));
      console.log(JSON.stringify({ name: e.name, lines, abc: await s.digest() }));`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      env: { OPENSSL_CONF: conf },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert(out.success, stderr);
    const got = JSON.parse(new TextDecoder().decode(out.stdout));
    assertEquals(got.name, "node:crypto");
    assertEquals(got.abc, "900150983cd24fb0d6963f7d28e17f72");
    assertEquals(got.lines.length, 1);
    assert(got.lines[0].includes("FIPS"), got.lines[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
