/**
 * `deno task gen`: writes a realistic image-downloader output tree with real parquet files,
 * for tests and benchmarks. The same arguments always give a byte-identical tree.
 *
 * ```sh
 * deno task gen --out /tmp/tree --servers 3 --partitions 4 --rows 20 --image-bytes 2048
 * ```
 * @module
 */

import { parseCommand, runMain, UsageError } from "../core/cli.ts";
import { formatBytes } from "../core/format.ts";
import { generateTree, type GenerateTreeOptions } from "./gen/generate_tree.ts";

const NAME = "gen";

/** Parses a non-negative integer option; throws {@linkcode UsageError} otherwise. */
function intOption(values: Record<string, unknown>, key: string, min: number): number | undefined {
  const raw = values[key];
  if (raw === undefined) return undefined;
  const text = String(raw).replaceAll("_", "");
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(
      `${NAME}: --${key} must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/**
 * Rows drawn log-uniformly over a 100× range whose mean is `mean`, so that file sizes spread
 * over two orders of magnitude while the expected total stays `mean × partitions`.
 */
function spreadRange(mean: number): { min: number; max: number } {
  // Mean of a log-uniform law on [c/10, 10c] is 9.9c / ln(100).
  const c = (mean * Math.log(100)) / 9.9;
  return { min: Math.max(1, Math.round(c / 10)), max: Math.max(1, Math.round(c * 10)) };
}

async function main(): Promise<number> {
  const cmd = parseCommand(
    NAME,
    "Writes server_name=<S>/partition_id=<P>/{successes,errors}.parquet[,completed] under --out.",
    {
      out: { type: "string", value: "DIR", help: "output directory (new or empty; required)" },
      servers: { type: "string", value: "N", help: "number of servers (default 3)" },
      partitions: { type: "string", value: "N", help: "partitions per server (default 4)" },
      rows: { type: "string", value: "N", help: "rows per successes file (default 20)" },
      "error-rows": { type: "string", value: "N", help: "rows per errors file (default 5)" },
      "image-bytes": { type: "string", value: "N", help: "mean image blob size (default 2048)" },
      seed: { type: "string", value: "N", help: "PRNG seed (default 1)" },
      incomplete: {
        type: "string",
        value: "F",
        help: "fraction of partitions left without `completed` (default 0.25)",
      },
      "size-spread": {
        type: "boolean",
        help: "draw rows log-uniformly over a 100× range with mean --rows",
      },
      compression: { type: "string", value: "C", help: "zstd (default), snappy or none" },
      "row-group-mib": {
        type: "string",
        value: "N",
        help: "row group size of successes files (default 32; memory ≈ 6×)",
      },
      quiet: { type: "boolean", help: "print only the final summary" },
    },
  );
  const v = cmd.values;
  if (typeof v.out !== "string" || v.out === "") {
    throw new UsageError(`${NAME}: --out DIR is required (see --help)`);
  }
  let incompleteFraction: number | undefined;
  if (v.incomplete !== undefined) {
    const text = String(v.incomplete);
    incompleteFraction = /^\d*\.?\d+$/.test(text) ? Number(text) : NaN;
    if (!(incompleteFraction >= 0 && incompleteFraction <= 1)) {
      throw new UsageError(`${NAME}: --incomplete must be a number in [0, 1], got ${text}`);
    }
  }
  const compression = v.compression as string | undefined;
  if (compression !== undefined && !["zstd", "snappy", "none"].includes(compression)) {
    throw new UsageError(`${NAME}: --compression must be zstd, snappy or none`);
  }
  const rows = intOption(v, "rows", 0) ?? 20;
  const options: GenerateTreeOptions = {
    root: v.out,
    servers: intOption(v, "servers", 1),
    partitionsPerServer: intOption(v, "partitions", 1),
    rowsPerPartition: v["size-spread"] ? spreadRange(rows) : rows,
    errorRows: intOption(v, "error-rows", 0),
    imageBytes: intOption(v, "image-bytes", 1),
    seed: intOption(v, "seed", 0),
    incompleteFraction,
    compression: compression as GenerateTreeOptions["compression"],
  };
  const rowGroupMib = intOption(v, "row-group-mib", 1);
  if (rowGroupMib !== undefined) options.rowGroupBytes = rowGroupMib * 1024 * 1024;
  let written = 0;
  let bytes = 0;
  const started = performance.now();
  if (!v.quiet) {
    options.onFile = (file) => {
      written++;
      bytes += file.bytes;
      if (written % 100 === 0) {
        console.error(`  ${written} files, ${formatBytes(bytes)}`);
      }
    };
  }
  const summary = await generateTree(options);
  const seconds = (performance.now() - started) / 1000;
  const sizes = summary.partitions.flatMap((p) => p.files)
    .filter((f) => f.kind === "successes")
    .map((f) => f.bytes)
    .sort((a, b) => a - b);
  console.log(
    [
      `wrote ${summary.root}`,
      `  servers:     ${summary.servers.join(", ")}`,
      `  partitions:  ${summary.partitions.length} (${summary.completedPartitions} completed)`,
      `  files:       ${summary.files} parquet, ${formatBytes(summary.bytes)}`,
      `  rows:        ${summary.successRows} successes, ${summary.errorRows} errors`,
      `  successes:   smallest ${formatBytes(sizes[0])}, median ${
        formatBytes(sizes[sizes.length >> 1])
      }, largest ${formatBytes(sizes[sizes.length - 1])}`,
      `  time:        ${seconds.toFixed(1)} s (${
        formatBytes(Math.round(summary.bytes / Math.max(seconds, 1e-3)))
      }/s)`,
    ].join("\n"),
  );
  return 0;
}

if (import.meta.main) await runMain(main);
