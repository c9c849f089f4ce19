/**
 * Micro-benchmark of the MD5 engines on one core: the `wasm-simd` kernels alone (1 = scalar
 * kernel, 4, 8, 12, 16 lanes), the `wasm-simd` engine through its stream API with as many
 * concurrent streams, and node:crypto's single stream for comparison.
 *
 * Usage: `deno task bench-md5 [--seconds 2] [--chunk-mib 1] [--help]` (seconds per row).
 * @module
 */

import { createHash } from "node:crypto";
import { parseCommand, runMain, UsageError } from "../core/cli.ts";
import { openSimdMd5Engine } from "../core/md5/simd_engine.ts";
import {
  buildMd5Module,
  DATA_OFFSET,
  type Md5KernelExports,
  PAGE_BYTES,
  POINTER_OFFSET,
} from "../core/md5/simd_wasm.ts";

/** One row of the result table. */
interface Row {
  readonly what: string;
  readonly lanes: number;
  readonly gibPerSecond: number;
}

const GIB = 2 ** 30;
const TRIES = 5;

/** The command line: `--seconds N` per row, `--chunk-mib N` per update; `--help`. */
function options(): { seconds: number; chunkMib: number } {
  const cmd = parseCommand(
    "bench-md5",
    "Measures MD5 throughput on one core: node:crypto, the wasm-simd kernels with 1 to 16\n" +
      "lanes, and the wasm-simd engine with as many concurrent streams.",
    {
      seconds: { type: "string", value: "N", help: "seconds per row (default 2)" },
      "chunk-mib": { type: "string", value: "N", help: "MiB per update (default 1)" },
    },
  );
  const number = (key: string, fallback: number): number => {
    const text = cmd.values[key];
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!(n > 0)) throw new UsageError(`bench-md5: --${key}: expected a number > 0, got "${text}"`);
    return n;
  };
  return { seconds: number("seconds", 2), chunkMib: number("chunk-mib", 1) };
}

/**
 * Runs `round` (which returns the bytes it hashed) for about `seconds` in 5 tries and keeps the
 * best one: on a shared node other processes only ever slow a try down.
 */
function measure(seconds: number, round: () => number): number {
  const speeds: number[] = [];
  round(); // warm-up (tier-up to the optimising compiler)
  for (let t = 0; t < TRIES; t++) {
    let bytes = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < (seconds * 1000) / TRIES) {
      bytes += round();
      elapsed = performance.now() - start;
    }
    speeds.push(bytes / (elapsed / 1000) / GIB);
  }
  return Math.max(...speeds);
}

/** Like {@linkcode measure} for a round that awaits. */
async function measureAsync(seconds: number, round: () => Promise<number>): Promise<number> {
  const speeds: number[] = [];
  await round();
  for (let t = 0; t < TRIES; t++) {
    let bytes = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < (seconds * 1000) / TRIES) {
      bytes += await round();
      elapsed = performance.now() - start;
    }
    speeds.push(bytes / (elapsed / 1000) / GIB);
  }
  return Math.max(...speeds);
}

function kernelRows(seconds: number): Row[] {
  const laneBytes = 1 << 20;
  const pages = 1 + (16 * laneBytes) / PAGE_BYTES;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  const module = new WebAssembly.Module(buildMd5Module({ memoryPages: pages }) as BufferSource);
  const k = new WebAssembly.Instance(module, { env: { memory } })
    .exports as unknown as Md5KernelExports;
  crypto.getRandomValues(new Uint8Array(memory.buffer, DATA_OFFSET, 65536));
  const blocks = laneBytes / 64;
  const rows: Row[] = [];
  for (
    const [lanes, kernel] of [[1, k.md5x1], [4, k.md5x4], [8, k.md5x8], [12, k.md5x12], [
      16,
      k.md5x16,
    ]] as const
  ) {
    const ptr = new Uint32Array(memory.buffer, POINTER_OFFSET, 16);
    for (let l = 0; l < 16; l++) ptr[l] = DATA_OFFSET + l * laneBytes;
    const g = measure(seconds, () => {
      kernel(blocks);
      return lanes * laneBytes;
    });
    rows.push({ what: "wasm-simd kernel", lanes, gibPerSecond: g });
  }
  return rows;
}

async function engineRows(seconds: number, chunkBytes: number): Promise<Row[]> {
  const rows: Row[] = [];
  const data = new Uint8Array(chunkBytes);
  crypto.getRandomValues(data.subarray(0, 65536));
  const perStream = 16 * chunkBytes;
  for (const lanes of [1, 4, 8, 12, 16]) {
    const engine = openSimdMd5Engine();
    try {
      const g = await measureAsync(seconds, async () => {
        await Promise.all(Array.from({ length: lanes }, async () => {
          const s = engine.create();
          for (let at = 0; at < perStream; at += chunkBytes) await s.update(data);
          await s.digest();
        }));
        return lanes * perStream;
      });
      const st = engine.stats();
      rows.push({
        what: `wasm-simd engine (util ${(100 * st.blocks / st.laneBlocks).toFixed(0)}%)`,
        lanes,
        gibPerSecond: g,
      });
    } finally {
      engine.close();
    }
  }
  return rows;
}

function nodeRow(seconds: number, chunkBytes: number): Row {
  const data = new Uint8Array(chunkBytes);
  crypto.getRandomValues(data.subarray(0, 65536));
  const g = measure(seconds, () => {
    const h = createHash("md5");
    for (let i = 0; i < 16; i++) h.update(data);
    h.digest();
    return 16 * chunkBytes;
  });
  return { what: "node:crypto", lanes: 1, gibPerSecond: g };
}

async function main(): Promise<number> {
  const { seconds, chunkMib } = options();
  const chunkBytes = chunkMib * 1024 * 1024;
  const node = nodeRow(seconds, chunkBytes);
  const rows = [node, ...kernelRows(seconds), ...(await engineRows(seconds, chunkBytes))];
  console.log(`MD5 throughput on one core (Deno ${Deno.version.deno}, V8 ${Deno.version.v8})`);
  console.log(`${"engine".padEnd(32)} ${"lanes".padStart(5)} ${"GiB/s".padStart(7)}  vs node`);
  for (const r of rows) {
    console.log(
      `${r.what.padEnd(32)} ${String(r.lanes).padStart(5)} ${
        r.gibPerSecond.toFixed(2).padStart(7)
      }` +
        `  ${(r.gibPerSecond / node.gibPerSecond).toFixed(2)}x`,
    );
  }
  return 0;
}

if (import.meta.main) await runMain(main);
