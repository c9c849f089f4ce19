/**
 * Smoke test of `tools/bench.ts --quick`: every contender runs once on a tiny tree and
 * `bench.json` has the documented shape with computed ratios. Nothing here is timed.
 * @module
 */

import { join } from "node:path";
import { assert, assertEquals } from "./support/assert.ts";
import { REPO } from "./support/fixture.ts";
import { cleanEnv } from "./support/mpi_launch.ts";

function isPositive(n: unknown): boolean {
  return typeof n === "number" && Number.isFinite(n) && n > 0;
}

Deno.test("bench --quick runs every contender and writes bench.json with ratios", async () => {
  const out = await Deno.makeTempDir({ prefix: "dt-bench-test-" });
  try {
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(REPO, "tools/bench.ts"), "--quick", "--out", out],
      env: cleanEnv(),
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    const text = dec.decode(run.stdout) + dec.decode(run.stderr);
    assertEquals(run.code, 0, text);
    const r = JSON.parse(await Deno.readTextFile(join(out, "bench.json")));
    assertEquals(r.quick, true);
    assertEquals(r.rounds, 1);
    assert(r.tree.files > 0 && r.tree.bytes > 0, "tree");
    for (const key of ["toolMd5", "toolBytes"]) {
      const t = r.contenders[key];
      assertEquals(t.totalSeconds.length, 1, key);
      assert(isPositive(t.medianSeconds), `${key}.medianSeconds`);
      assert(isPositive(t.medianPhases.run), `${key}.medianPhases.run`);
      assert(isPositive(t.readsPerByte.summary), `${key}.readsPerByte.summary`);
      assert(isPositive(t.readsPerByte.procRchar), `${key}.readsPerByte.procRchar`);
      assertEquals(t.peakRssMiBPerRank.length, 2, `${key}.peakRssMiBPerRank`);
    }
    // The runner's own count: one source read and one read-back; `verify_mode: bytes` now runs
    // as md5 (every byte read back is compared), so it reads the same.
    assertEquals(r.contenders.toolMd5.readsPerByte.summary, 2);
    assertEquals(r.contenders.toolBytes.readsPerByte.summary, 2);
    assert(isPositive(r.contenders.standard.medianSeconds), "standard");
    assert(isPositive(r.contenders.floor.medianSeconds), "floor");
    for (const [name, value] of Object.entries(r.ratios)) {
      assert(isPositive(value), `ratio ${name} = ${value}`);
    }
    assertEquals(
      r.ratios.md5SpeedupVsStandard,
      r.contenders.standard.medianSeconds / r.contenders.toolMd5.medianSeconds,
    );
    assert(isPositive(r.noop.medianSeconds), "noop");
    assertEquals(r.memory.peakRssMiBPerRank.length, 2);
    assertEquals(r.incremental.movedOnlyNew, true);
    assert(r.incremental.secondFiles > 0, "incremental second run moved files");
    assertEquals(r.sweep.length, 0);
    assertEquals(r.targets.length, 6);
    for (const t of r.targets) assertEquals(typeof t.met, "boolean", t.name);
    assert(text.includes("| target |"), "table printed");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
