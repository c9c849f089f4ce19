import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import {
  countRowsWithDuckdb,
  describeWithDuckdb,
  queryDuckdb,
  readRowsWithHyparquet,
  sqlString,
} from "./support/parquet_readers.ts";
import { REPO } from "./support/fixture.ts";
import {
  DEFAULT_SERVER_NAMES,
  generateTree,
  GenerateTreeError,
  type GenerateTreeOptions,
  type TreeSummary,
} from "../tools/gen/generate_tree.ts";
import { InputError } from "../core/errors.ts";
import { inspectParquet } from "../core/transfer/parquet_check.ts";
import { createHash } from "node:crypto";
import { join, relative } from "node:path";

const SMALL: Omit<GenerateTreeOptions, "root"> = {
  servers: 3,
  partitionsPerServer: 2,
  rowsPerPartition: 8,
  errorRows: { min: 0, max: 4 },
  imageBytes: 512,
  incompleteFraction: 1 / 3,
  seed: 42,
};

async function withTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "gen_tree_test_" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every file under `root` (relative path → sha256 hex). */
async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else {
        const hash = createHash("sha256").update(await Deno.readFile(path)).digest("hex");
        out.set(relative(root, path), hash);
      }
    }
  };
  await walk(root);
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

Deno.test("generateTree writes the downloader layout with completed markers", async () => {
  await withTemp(async (dir) => {
    const root = join(dir, "tree");
    const summary = await generateTree({ root, ...SMALL });

    assertEquals(summary.servers, [...DEFAULT_SERVER_NAMES]);
    assert(summary.servers.some((s) => s.includes("%3A")), "a server with %3A");
    assert(summary.servers.some((s) => /:\d+$/.test(s)), "a server with a raw colon");
    assertEquals(summary.partitions.length, 6);
    assertEquals(summary.completedPartitions, 4, "round(6 / 3) = 2 left incomplete");
    assertEquals(summary.files, 12);

    const expected = new Set<string>();
    for (const p of summary.partitions) {
      const rel = `server_name=${p.server}/partition_id=${p.partitionId}`;
      assertEquals(p.dir, `${root}/${rel}`);
      expected.add(`${rel}/successes.parquet`);
      expected.add(`${rel}/errors.parquet`);
      if (p.completed) expected.add(`${rel}/completed`);
    }
    const found = await hashTree(root);
    assertEquals(new Set(found.keys()), expected);

    let bytes = 0;
    for (const p of summary.partitions) {
      if (p.completed) assertEquals((await Deno.stat(`${p.dir}/completed`)).size, 0);
      for (const f of p.files) {
        assertEquals((await Deno.stat(f.path)).size, f.bytes);
        bytes += f.bytes;
      }
      assertEquals(p.files.map((f) => f.kind), ["successes", "errors"]);
      assertEquals(p.files[0].rows, 8);
      assert(p.files[1].rows >= 0 && p.files[1].rows <= 4);
    }
    assertEquals(summary.bytes, bytes);
    assertEquals(summary.successRows, 48);
  });
});

Deno.test("generateTree is deterministic: same seed, same bytes; other seed, other bytes", async () => {
  await withTemp(async (dir) => {
    await generateTree({ root: join(dir, "a"), ...SMALL });
    await generateTree({ root: join(dir, "b"), ...SMALL });
    await generateTree({ root: join(dir, "c"), ...SMALL, seed: 43 });
    const a = await hashTree(join(dir, "a"));
    const b = await hashTree(join(dir, "b"));
    const c = await hashTree(join(dir, "c"));
    assertEquals([...a], [...b]);
    const parquet = [...a.keys()].filter((k) => k.endsWith("successes.parquet"));
    for (const key of parquet) {
      assert(a.get(key) !== c.get(key), `${key} should differ with another seed`);
    }
  });
});

Deno.test("generated files are real parquet: hyparquet reads the schema and the rows", async () => {
  await withTemp(async (dir) => {
    const summary = await generateTree({ root: join(dir, "t"), ...SMALL });
    for (const p of summary.partitions) {
      const host = decodeURIComponent(p.server).replace(/:\d+$/, "");
      const [successes, errors] = p.files;

      const rows = await readRowsWithHyparquet(successes.path);
      assertEquals(rows.length, successes.rows);
      assertEquals(Object.keys(rows[0]), [
        "uuid",
        "source_id",
        "identifier",
        "is_license_full",
        "license",
        "source",
        "title",
        "hashsum_original",
        "hashsum_resized",
        "original_size",
        "resized_size",
        "image",
      ]);
      for (const row of rows) {
        assertMatch(String(row.uuid), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-/);
        assertEquals(new URL(String(row.identifier)).hostname, host);
        assertEquals(typeof row.is_license_full, "boolean");
        assertMatch(String(row.hashsum_original), /^[0-9a-f]{32}$/);
        const image = row.image as Uint8Array;
        assert(image instanceof Uint8Array, "image is binary");
        assert(image.length >= 256 && image.length <= 768, `image size ${image.length}`);
        assertEquals(row.hashsum_resized, createHash("md5").update(image).digest("hex"));
        const [h, w] = row.original_size as number[];
        assertEquals((row.original_size as number[]).length, 2);
        assertEquals((row.resized_size as number[]).length, 2);
        assert(h >= 64 && w >= 64, "sizes are [height, width] in pixels");
        assert(row.title === null || typeof row.title === "string");
      }

      const errorRows = await readRowsWithHyparquet(errors.path);
      assertEquals(errorRows.length, errors.rows);
      for (const row of errorRows) {
        assertEquals(Object.keys(row), [
          "uuid",
          "identifier",
          "retry_count",
          "error_code",
          "error_msg",
        ]);
        assertEquals(typeof row.retry_count, "bigint");
        assertEquals(typeof row.error_code, "bigint");
        assertEquals(typeof row.error_msg, "string");
      }
    }
  });
});

Deno.test("generated files are real parquet: DuckDB counts rows and reads hive columns", async () => {
  await withTemp(async (dir) => {
    const root = join(dir, "t");
    const summary: TreeSummary = await generateTree({ root, ...SMALL });
    assertEquals(
      await countRowsWithDuckdb(`${root}/*/*/successes.parquet`, { hive: true }),
      summary.successRows,
    );
    assertEquals(await countRowsWithDuckdb(`${root}/*/*/errors.parquet`), summary.errorRows);
    for (const p of summary.partitions) {
      for (const f of p.files) assertEquals(await countRowsWithDuckdb(f.path), f.rows);
    }
    assertEquals(await describeWithDuckdb(summary.partitions[0].files[0].path), [
      ["uuid", "VARCHAR"],
      ["source_id", "VARCHAR"],
      ["identifier", "VARCHAR"],
      ["is_license_full", "BOOLEAN"],
      ["license", "VARCHAR"],
      ["source", "VARCHAR"],
      ["title", "VARCHAR"],
      ["hashsum_original", "VARCHAR"],
      ["hashsum_resized", "VARCHAR"],
      ["original_size", "UINTEGER[]"],
      ["resized_size", "UINTEGER[]"],
      ["image", "BLOB"],
    ]);
    assertEquals(await describeWithDuckdb(summary.partitions[0].files[1].path), [
      ["uuid", "VARCHAR"],
      ["identifier", "VARCHAR"],
      ["retry_count", "BIGINT"],
      ["error_code", "BIGINT"],
      ["error_msg", "VARCHAR"],
    ]);
    // DuckDB's hive partitioning percent-decodes folder values: `%3A8080` reads as `:8080`.
    const servers = await queryDuckdb(
      `SELECT DISTINCT server_name FROM read_parquet(${
        sqlString(`${root}/*/*/successes.parquet`)
      }, hive_partitioning = true) ORDER BY 1`,
    );
    assertEquals(servers.map((r) => r.server_name), [
      "cdn.example.com",
      "images.example.org:8080",
      "media.example.net:443",
    ]);
  });
});

Deno.test("generateTree splits large files into row groups and spreads sizes", async () => {
  await withTemp(async (dir) => {
    const grouped = await generateTree({
      root: join(dir, "grouped"),
      servers: ["one.example.com"],
      partitionsPerServer: 1,
      rowsPerPartition: 30,
      imageBytes: 1024,
      rowGroupBytes: 4096,
      batchBytes: 2048,
    });
    const file = grouped.partitions[0].files[0];
    const info = await inspectParquet(file.path);
    assertEquals(info.numRows, 30);
    assertEquals(info.numRowGroups, 8, "4 rows per row group");
    assertEquals((await readRowsWithHyparquet(file.path)).length, 30);
    assertEquals(await countRowsWithDuckdb(file.path), 30);

    const spread = await generateTree({
      root: join(dir, "spread"),
      servers: 1,
      partitionsPerServer: 12,
      rowsPerPartition: { min: 1, max: 100 },
      imageBytes: 4096,
      incompleteFraction: 0,
    });
    assertEquals(spread.completedPartitions, 12);
    const rows = spread.partitions.map((p) => p.files[0].rows);
    assert(rows.every((n) => n >= 1 && n <= 100), `rows in range: ${rows}`);
    const sizes = spread.partitions.map((p) => p.files[0].bytes);
    assert(Math.max(...sizes) / Math.min(...sizes) > 10, `sizes spread: ${sizes}`);
  });
});

Deno.test("generateTree writes valid empty files for zero rows", async () => {
  await withTemp(async (dir) => {
    const summary = await generateTree({
      root: join(dir, "t"),
      servers: ["empty.example.com"],
      partitionsPerServer: 1,
      rowsPerPartition: 0,
      errorRows: 0,
    });
    for (const f of summary.partitions[0].files) {
      assertEquals(f.rows, 0);
      assertEquals((await inspectParquet(f.path)).numRows, 0);
      assertEquals((await readRowsWithHyparquet(f.path)).length, 0);
      assertEquals(await countRowsWithDuckdb(f.path), 0);
    }
  });
});

Deno.test("generateTree rejects bad options and non-empty roots with GenerateTreeError", async () => {
  await withTemp(async (dir) => {
    await Deno.writeTextFile(join(dir, "keep.txt"), "x");
    const err = await assertRejects(() => generateTree({ root: dir }), GenerateTreeError);
    assert(err instanceof InputError);
    assertMatch(err.message, /is not empty/);
    const root = join(dir, "new");
    for (
      const [bad, pattern] of [
        [{ servers: 0 }, /servers must be an integer ≥ 1/],
        [{ servers: ["a", "a"] }, /given twice/],
        [{ servers: ["a/b"] }, /cannot be a directory name/],
        [{ partitionsPerServer: 1.5 }, /partitionsPerServer/],
        [{ rowsPerPartition: { min: 5, max: 2 } }, /rowsPerPartition.max/],
        [{ imageBytes: 0 }, /imageBytes/],
        [{ incompleteFraction: 2 }, /incompleteFraction/],
        [{ seed: -1 }, /seed/],
      ] as Array<[Partial<GenerateTreeOptions>, RegExp]>
    ) {
      const e = await assertRejects(() => generateTree({ root, ...bad }), GenerateTreeError);
      assertMatch(e.message, pattern);
    }
  });
});

Deno.test("tools/gen.ts: prints a summary, exits 2 on a bad argument", async () => {
  await withTemp(async (dir) => {
    const run = async (...args: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(REPO, "tools/gen.ts"), ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decode = (b: Uint8Array) => new TextDecoder().decode(b);
      return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
    };
    const out = join(dir, "t");
    const ok = await run(
      "--out",
      out,
      "--servers",
      "2",
      "--partitions",
      "2",
      "--rows",
      "5",
      "--image-bytes",
      "100",
      "--incomplete",
      "0.5",
      "--quiet",
    );
    assertEquals(ok.code, 0, ok.stderr);
    assertMatch(ok.stdout, /partitions:\s+4 \(2 completed\)/);
    assertMatch(ok.stdout, /rows:\s+20 successes/);

    for (
      const [args, pattern] of [
        [["--out", join(dir, "x"), "--rows", "ten"], /--rows must be an integer/],
        [["--out", join(dir, "x"), "--incomplete", "1.5"], /--incomplete must be a number/],
        [["--rows", "3"], /--out DIR is required/],
        [["--out", out], /is not empty/],
        [["--out", join(dir, "x"), "--nope"], /Unknown option/],
      ] as Array<[string[], RegExp]>
    ) {
      const bad = await run(...args);
      assertEquals(bad.code, 2, `${args.join(" ")}: ${bad.stderr}`);
      assertMatch(bad.stderr, pattern);
    }
  });
});
