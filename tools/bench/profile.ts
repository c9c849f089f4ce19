/**
 * Where the time of the per-file pipeline goes, without MPI: copies every file of a tree with
 * `copyVerified` (one process, `--in-flight` files at a time sharing one buffer budget, like
 * one rank) and prints the wall time, the rate, the CPU seconds per GiB (user and system), the
 * storage reads per byte (`/proc/self/io`) and the peak RSS. Run it under
 * `deno run --cpu-prof` to see the JavaScript side.
 *
 * ```sh
 * deno run -A tools/bench/profile.ts --tree bench_out/trees/small --dst /tmp/p \
 *   [--buffer-mib 2] [--buffers 16] [--in-flight 8] [--ranges N] [--buffered] \
 *   [--engine wasm-simd|libcrypto|node] [--share 2]
 * ```
 * `--share N` copies every N-th file only (one rank's share of N ranks); `--buffered` leaves
 * `O_DIRECT` off (the fallback of file systems that refuse it); `--ranges N` caps the ranges
 * of one file in flight.
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import process from "node:process";
import { copyVerified } from "../../core/transfer/verified_copy.ts";
import { BufferBudget } from "../../core/transfer/buffer_budget.ts";
import { AT_FDCWD, openLibc } from "../../core/io/libc.ts";
import { FileHandle } from "../../core/io/file_handle.ts";
import { openMd5Engine } from "../../core/md5/open_engine.ts";
import type { SimdMd5Engine, SimdMd5Stats } from "../../core/md5/simd_engine.ts";
import { listTreeFiles } from "./tree.ts";

async function procField(file: string, field: string): Promise<number> {
  const text = await Deno.readTextFile(`/proc/self/${file}`);
  return Number(new RegExp(`^${field}:\\s*(\\d+)`, "m").exec(text)![1]);
}

/** The SIMD engine's blocks hashed per kernel width, and the share of busy lanes. */
function laneReport(s: SimdMd5Stats): string {
  return `busy ${(s.blocks / Math.max(1, s.laneBlocks)).toFixed(2)}, calls by width ` +
    JSON.stringify(s.calls);
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      tree: { type: "string" },
      dst: { type: "string" },
      "buffer-mib": { type: "string", default: "2" },
      buffers: { type: "string", default: "16" },
      "in-flight": { type: "string", default: "8" },
      ranges: { type: "string" },
      buffered: { type: "boolean", default: false },
      engine: { type: "string", default: "wasm-simd" },
      share: { type: "string", default: "1" },
    },
  });
  if (!v.tree || !v.dst) throw new Error("--tree DIR and --dst DIR are required");
  const share = Number(v.share);
  // Largest first, then every N-th: a share like one rank's (every N-th of the path order
  // would pick the errors files only, which sort before the successes of their partition).
  const files = (await listTreeFiles(v.tree)).sort((a, b) => b.bytes - a.bytes)
    .filter((_, i) => i % share === 0);
  const prefer = v.engine === "node" ? "node:crypto" : v.engine;
  if (prefer !== "wasm-simd" && prefer !== "libcrypto" && prefer !== "node:crypto") {
    throw new Error(`--engine must be wasm-simd, libcrypto or node, got ${v.engine}`);
  }
  const engine = openMd5Engine({ prefer });
  const libc = openLibc();
  const f = libc.flags;
  const budget = new BufferBudget(
    Number(v["buffer-mib"]) * 1024 * 1024,
    Math.max(1, Math.floor(Number(v.buffers) / 2)),
  );
  await Deno.remove(v.dst, { recursive: true }).catch(() => {});
  await Deno.mkdir(v.dst, { recursive: true });
  let bytes = 0;
  let i = 0;
  const queue = files.slice();
  const cpu0 = process.cpuUsage();
  const read0 = await procField("io", "read_bytes");
  const started = performance.now();
  const worker = async () => {
    while (queue.length > 0) {
      const file = queue.shift()!;
      const out = join(v.dst!, `f${i++}.parquet`);
      const open = async (path: string, flags: number) =>
        new FileHandle(libc, await libc.openAt(AT_FDCWD, path, flags | f.CLOEXEC), path);
      const src = await open(file.path, f.RDONLY);
      const writer = await open(out, f.RDWR | f.CREAT | f.EXCL);
      let reader = writer;
      try {
        if (!v.buffered) {
          src.enableDirect();
          reader = await open(out, f.RDONLY);
          if (!reader.enableDirect()) {
            reader.close();
            reader = writer;
          }
        }
        const r = await copyVerified(src, { writer, reader }, {
          libc,
          engine,
          budget,
          rangesInFlight: v.ranges === undefined ? undefined : Number(v.ranges),
        });
        if (!r.ok) throw new Error(`${file.path}: ${r.mismatch}`);
        bytes += r.sizeBytes;
      } finally {
        src.close();
        writer.close();
        if (reader !== writer) reader.close();
      }
    }
  };
  await Promise.all(Array.from({ length: Number(v["in-flight"]) }, worker));
  const wall = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const read = (await procField("io", "read_bytes")) - read0;
  const gib = bytes / 2 ** 30;
  console.log(
    JSON.stringify({
      files: files.length,
      mib: Math.round(bytes / 2 ** 20),
      wallSeconds: +wall.toFixed(2),
      mibPerSecond: Math.round(bytes / 2 ** 20 / wall),
      cpuSecondsPerGiB: {
        user: +(cpu.user / 1e6 / gib).toFixed(2),
        system: +(cpu.system / 1e6 / gib).toFixed(2),
      },
      storageReadsPerByte: +(read / bytes).toFixed(2),
      peakRssMiB: Math.round((await procField("status", "VmHWM")) / 1024),
      simdLanes: "stats" in engine ? laneReport((engine as SimdMd5Engine).stats()) : undefined,
    }),
  );
  engine.close();
  libc.close();
  await Deno.remove(v.dst, { recursive: true });
}
