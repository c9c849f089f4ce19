import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import {
  countRowsWithDuckdb,
  queryDuckdb,
  readMetadataWithHyparquet,
  readRowsWithHyparquet,
  sqlString,
} from "./support/parquet_readers.ts";
import { generateTree, type TreeSummary } from "../tools/gen/generate_tree.ts";
import {
  canonicalSchema,
  inspectParquet,
  InvalidParquetError,
  type ParquetInfo,
} from "../core/transfer/parquet_check.ts";
import { InputError } from "../core/errors.ts";
import { join } from "node:path";

async function withTree<T>(fn: (dir: string, tree: TreeSummary) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "parquet_check_test_" });
  try {
    const tree = await generateTree({
      root: join(dir, "tree"),
      servers: 2,
      partitionsPerServer: 2,
      rowsPerPartition: { min: 1, max: 40 },
      errorRows: { min: 0, max: 6 },
      imageBytes: 300,
      seed: 9,
    });
    return await fn(dir, tree);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const SUCCESSES_CANONICAL = [
  "uuid\tBYTE_ARRAY\tSTRING\tOPTIONAL",
  "source_id\tBYTE_ARRAY\tSTRING\tOPTIONAL",
  "identifier\tBYTE_ARRAY\tSTRING\tOPTIONAL",
  "is_license_full\tBOOLEAN\t-\tOPTIONAL",
  "license\tBYTE_ARRAY\tSTRING\tOPTIONAL",
  "source\tBYTE_ARRAY\tSTRING\tOPTIONAL",
  "title\tBYTE_ARRAY\tSTRING\tOPTIONAL",
  "hashsum_original\tBYTE_ARRAY\tSTRING\tOPTIONAL",
  "hashsum_resized\tBYTE_ARRAY\tSTRING\tOPTIONAL",
  "original_size\t-\tLIST\tOPTIONAL",
  "original_size.list\t-\t-\tREPEATED",
  "original_size.list.element\tINT32\tINTEGER(32,unsigned)\tOPTIONAL",
  "resized_size\t-\tLIST\tOPTIONAL",
  "resized_size.list\t-\t-\tREPEATED",
  "resized_size.list.element\tINT32\tINTEGER(32,unsigned)\tOPTIONAL",
  "image\tBYTE_ARRAY\t-\tOPTIONAL",
].join("\n");

Deno.test("inspectParquet agrees with hyparquet and DuckDB on generated files", async () => {
  await withTree(async (_dir, tree) => {
    const fingerprints = { successes: new Set<string>(), errors: new Set<string>() };
    for (const p of tree.partitions) {
      for (const f of p.files) {
        const info = await inspectParquet(f.path);
        assertEquals(info.path, f.path);
        assertEquals(info.sizeBytes, f.bytes);
        assertEquals(info.numRows, f.rows);
        assertEquals(info.numRows, (await readRowsWithHyparquet(f.path)).length);
        assertEquals(info.numRows, await countRowsWithDuckdb(f.path));
        assertEquals(
          info.numRowGroups,
          (await readMetadataWithHyparquet(f.path)).row_groups.length,
        );
        assertMatch(info.schemaFingerprint, /^[0-9a-f]{64}$/);
        assert(info.footerBytes > 0 && info.footerBytes < info.sizeBytes);
        fingerprints[f.kind].add(info.schemaFingerprint);
        if (f.kind === "successes") {
          assertEquals(canonicalSchema(info.columns), SUCCESSES_CANONICAL);
        }
      }
    }
    assertEquals(fingerprints.successes.size, 1, "one fingerprint for every successes file");
    assertEquals(fingerprints.errors.size, 1, "one fingerprint for every errors file");
    assert([...fingerprints.successes][0] !== [...fingerprints.errors][0]);
  });
});

Deno.test("inspectParquet: leaf columns and the fingerprint do not depend on the writer", async () => {
  await withTree(async (dir, tree) => {
    const source = tree.partitions[0].files[0].path;
    const copy = join(dir, "duckdb_copy.parquet");
    await queryDuckdb(
      `COPY (SELECT * FROM read_parquet(${sqlString(source)}, hive_partitioning = false)) TO ${
        sqlString(copy)
      } (FORMAT parquet, COMPRESSION zstd)`,
    );
    const ours: ParquetInfo = await inspectParquet(source);
    const theirs = await inspectParquet(copy);
    assertEquals(theirs.numRows, ours.numRows);
    assert(theirs.createdBy !== ours.createdBy, "written by another library");
    const leaves = (info: ParquetInfo) =>
      info.columns.filter((c) => c.leaf).map((c) => [c.path.at(0), c.path.at(-1), c.physicalType]);
    assertEquals(leaves(theirs), leaves(ours));
    assertEquals(theirs.schemaFingerprint, ours.schemaFingerprint);
  });
});

Deno.test("inspectParquet reads only the ends of a file (sparse 8 GiB file)", async () => {
  await withTree(async (dir, tree) => {
    const source = tree.partitions[0].files[0];
    const bytes = await Deno.readFile(source.path);
    const footerLength = new DataView(bytes.buffer).getUint32(bytes.length - 8, true);
    const tail = bytes.subarray(bytes.length - footerLength - 8);
    const sparse = join(dir, "sparse.parquet");
    const file = await Deno.open(sparse, { write: true, create: true });
    await file.write(new TextEncoder().encode("PAR1"));
    await file.seek(8 * 2 ** 30, Deno.SeekMode.Start);
    await file.write(tail);
    file.close();
    const started = performance.now();
    const info = await inspectParquet(sparse);
    assertEquals(info.numRows, source.rows);
    assertEquals(info.sizeBytes, 8 * 2 ** 30 + tail.length);
    assert(performance.now() - started < 2000, "did not read the 8 GiB");
  });
});

Deno.test("inspectParquet throws InvalidParquetError naming the path and the reason", async () => {
  await withTree(async (dir, tree) => {
    const good = await Deno.readFile(tree.partitions[0].files[0].path);
    const footerLength = new DataView(good.buffer).getUint32(good.length - 8, true);
    const corruptFooter = good.slice();
    corruptFooter.fill(0xff, good.length - 8 - footerLength, good.length - 8);
    const random = new Uint8Array(4096);
    crypto.getRandomValues(random);
    const hugeFooter = good.slice();
    new DataView(hugeFooter.buffer).setUint32(good.length - 8, good.length, true);

    const cases: Array<[string, Uint8Array | "dir" | "missing", RegExp]> = [
      ["empty.parquet", new Uint8Array(0), /too small \(0 bytes/],
      ["tiny.parquet", new TextEncoder().encode("PAR1PAR"), /too small \(7 bytes/],
      ["random.bin", random, /missing PAR1 magic at start — not a parquet file/],
      ["truncated.parquet", good.subarray(0, good.length - 100), /PAR1 magic at end — truncated\?/],
      ["half.parquet", good.subarray(0, good.length >> 1), /PAR1 magic at end — truncated\?/],
      ["footer.parquet", corruptFooter, /footer does not decode: /],
      ["length.parquet", hugeFooter, /footer length \d+ does not fit/],
      ["a_directory.parquet", "dir", /is a directory/],
      ["missing.parquet", "missing", /no such file/],
    ];
    for (const [name, content, pattern] of cases) {
      const path = join(dir, name);
      if (content === "dir") await Deno.mkdir(path);
      else if (content !== "missing") await Deno.writeFile(path, content);
      const err = await assertRejects(() => inspectParquet(path), InvalidParquetError);
      assert(err instanceof InputError, "an InputError (exit code 2)");
      assertEquals(err.exitCode, 2);
      assertEquals(err.path, path);
      assert(err.message.startsWith(`${path}: not a valid parquet file: `), err.message);
      assertMatch(err.reason, pattern);
    }
  });
});
