/**
 * `deno task demo`, the README's first command: the whole pipeline on a generated tree.
 * @module
 */

import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { join } from "node:path";
import { runScript } from "./support/fixture.ts";
import { cleanEnv } from "./support/mpi_launch.ts";
import { countRowsWithDuckdb } from "./support/parquet_readers.ts";

Deno.test("demo: runs every phase under 2 MPI ranks and leaves a dataset md5sum -c accepts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dt-demo-" });
  const r = await runScript("tools/demo.ts", ["--dir", dir], { env: cleanEnv() });
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assertMatch(r.stdout, /== run \(mpirun\.mpich, 2 ranks\)/);
  assertMatch(r.stdout, /run: 2 rank\(s\), MPI MPICH/);
  assertMatch(r.stdout, /verify: complete; checkpoint says completed: true/);
  assertMatch(r.stdout, /demo: every planned file is verified/);
  for (const folder of ["images", "errors"]) {
    const out = await new Deno.Command("md5sum", {
      args: ["-c", "--quiet", "_MD5SUMS"],
      cwd: join(dir, "dataset", folder),
    }).output();
    assert(out.success, `md5sum -c in dataset/${folder}`);
  }
  const generated = /(\d+) image rows/.exec(r.stdout);
  assert(generated, "the demo reports the rows it generated");
  const copied = await countRowsWithDuckdb(join(dir, "dataset", "images", "*", "*.parquet"), {
    hive: true,
  });
  assert(copied > 0 && copied <= Number(generated[1]), `${copied} rows of ${generated[1]}`);
  const again = await runScript("tools/demo.ts", ["--dir", dir], { env: cleanEnv() });
  assertEquals(again.code, 2);
  assertMatch(again.stderr, /is not empty; give an empty or new folder/);
  await Deno.remove(dir, { recursive: true });
});
