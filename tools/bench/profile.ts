/**
 * Where the time of a transfer goes, without MPI: copies every file of a tree with
 * `copyAndHash` (one process, `--in-flight` files at a time, like one rank) and sums the
 * phases of `timingsMs` (copy = read+hash+write, sync, dropCache, verify).
 *
 * ```sh
 * deno run -A tools/bench/profile.ts --tree bench_out/trees/small --dst /tmp/p \
 *   [--verify md5|bytes] [--buffer-mib 8] [--buffers 4] [--in-flight 2] [--no-drop] \
 *   [--engine wasm-simd|libcrypto|node] [--share 2]
 * ```
 * `--share N` copies every N-th file only (one rank's share of N ranks).
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { copyAndHash, type CopyTimings } from "../../core/transfer/copy_file.ts";
import { openMd5Engine } from "../../core/md5/open_engine.ts";
import type { VerifyMode } from "../../core/config.ts";
import { listTreeFiles } from "./tree.ts";

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      tree: { type: "string" },
      dst: { type: "string" },
      verify: { type: "string", default: "md5" },
      "buffer-mib": { type: "string", default: "8" },
      buffers: { type: "string", default: "4" },
      "in-flight": { type: "string", default: "2" },
      "no-drop": { type: "boolean", default: false },
      engine: { type: "string", default: "libcrypto" },
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
  await Deno.remove(v.dst, { recursive: true }).catch(() => {});
  await Deno.mkdir(v.dst, { recursive: true });
  const sum: CopyTimings = { copy: 0, sync: 0, dropCache: 0, verify: 0 };
  let bytes = 0;
  let i = 0;
  const queue = files.slice();
  const started = performance.now();
  const worker = async () => {
    while (queue.length > 0) {
      const f = queue.shift()!;
      const r = await copyAndHash(f.path, join(v.dst!, `f${i++}.parquet`), {
        engine,
        verify: v.verify as VerifyMode,
        bufferSize: Number(v["buffer-mib"]) * 1024 * 1024,
        buffers: Number(v.buffers),
        dropCache: !v["no-drop"],
      });
      if (!r.ok) throw new Error(`${f.path}: ${r.mismatch}`);
      bytes += r.sizeBytes;
      for (const k of Object.keys(sum) as (keyof CopyTimings)[]) sum[k] += r.timingsMs[k];
    }
  };
  await Promise.all(Array.from({ length: Number(v["in-flight"]) }, worker));
  const wall = (performance.now() - started) / 1000;
  engine.close();
  const total = sum.copy + sum.sync + sum.dropCache + sum.verify;
  const pct = (x: number) => `${((100 * x) / total).toFixed(0)}%`;
  console.log(
    JSON.stringify({
      files: files.length,
      mib: Math.round(bytes / 2 ** 20),
      wallSeconds: +wall.toFixed(2),
      mibPerSecond: Math.round(bytes / 2 ** 20 / wall),
      summedSeconds: Object.fromEntries(
        Object.entries(sum).map(([k, ms]) => [k, `${(ms / 1000).toFixed(2)} (${pct(ms)})`]),
      ),
    }),
  );
  await Deno.remove(v.dst, { recursive: true });
}
