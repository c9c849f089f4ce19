/**
 * `statSizes`: the sizes of many files, on worker threads for a long list, the same as one
 * thread finds, with codes for what is missing, not a file, or a symlink.
 * @module
 */

import { assert, assertEquals } from "./support/assert.ts";
import { join } from "node:path";
import { NOT_A_FILE, NOTHING, statSizes, statSizesSync } from "../mod.ts";

Deno.test("statSizes: 20,000 paths over 4 worker threads give each size, missing and non-file codes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dt-stat-" });
  try {
    const paths: string[] = [];
    const expected: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const p = join(dir, `f${i}`);
      paths.push(p);
      if (i % 1000 === 7) {
        expected.push(NOTHING);
      } else if (i % 1000 === 11) {
        await Deno.mkdir(p);
        expected.push(NOT_A_FILE);
      } else if (i % 1000 === 13) {
        await Deno.symlink(join(dir, "f0"), p);
        expected.push(NOT_A_FILE);
      } else {
        Deno.writeFileSync(p, new Uint8Array(i % 97));
        expected.push(i % 97);
      }
    }
    const threaded = await statSizes(paths, 4);
    assertEquals([...threaded], expected);
    assertEquals([...statSizesSync(paths)], expected);
    assertEquals([...(await statSizes(paths.slice(0, 100)))], expected.slice(0, 100));
    assert(expected.includes(NOTHING) && expected.includes(NOT_A_FILE));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
