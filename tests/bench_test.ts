/**
 * Tests of `tools/bench.ts`: `--quick` runs every contender on the three tiny trees, and the
 * slow-rank scenario, for real and writes `bench.json` whose figures agree with each other; the helpers that find the block
 * device, count path-based calls under strace, find mpiFileUtils and read `dcmp` are checked
 * against the real programs. Nothing here is timed.
 * @module
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { REPO } from "./support/fixture.ts";
import { cleanEnv } from "./support/mpi_launch.ts";
import { runCommandOrFail } from "./support/command.ts";
import { blockDeviceOf, bytesRead, NoBlockDeviceError } from "../tools/bench/block_device.ts";
import { dcmpDifference, findMpiFileUtils, MFU_BUILD_SCRIPT } from "../tools/bench/mpifileutils.ts";
import {
  isPathCall,
  parseStraceCounts,
  pathCallsPerFile,
  straceArgs,
} from "../tools/bench/path_calls.ts";
import { dropCaches } from "../tools/bench/proc.ts";

function isPositive(n: unknown): boolean {
  return typeof n === "number" && Number.isFinite(n) && n > 0;
}

const CONTENDERS: Record<string, string[]> = {
  small: ["tool-md5", "md5sum-cp", "cp", "dcp-dcmp", "dcp-drop-dcmp"],
  large: ["tool-md5", "md5sum-cp", "cp", "dcp-dcmp", "dcp-drop-dcmp"],
  single: ["tool-md5", "md5sum", "cp", "dcp-dcmp", "dcp-drop-dcmp"],
};

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test("bench --quick runs every contender on the three trees and writes bench.json", async () => {
  const out = await Deno.makeTempDir({ prefix: "dt-bench-test-" });
  try {
    const run = await runCommandOrFail(
      Deno.execPath(),
      ["run", "-A", join(REPO, "tools/bench.ts"), "--quick", "--out", out],
      { env: cleanEnv(), clearEnv: true, timeoutMs: 600_000 },
    );
    const text = run.stdout + run.stderr;
    assertEquals(run.code, 0, text);
    const r: Json = JSON.parse(await Deno.readTextFile(join(out, "bench.json")));
    assertEquals(r.quick, true);
    assertEquals(r.rounds, 1);
    assertEquals(r.trees, ["small", "large", "single"]);
    const mfu = await findMpiFileUtils();
    const dropped: boolean = r.machine.pageCacheDropped;
    const device = r.machine.device;
    if (device !== null) {
      assert((await Deno.readTextFile("/proc/diskstats")).includes(` ${device.name} `), "device");
    }
    for (const name of r.trees) {
      const t: Json = r.results[name];
      assert(t.files > 0 && t.bytes > 0, `${name}: tree`);
      assertEquals(Object.keys(t.contenders).sort(), [...CONTENDERS[name]].sort(), name);
      for (const [id, c] of Object.entries<Json>(t.contenders)) {
        const what = `${name}/${id}`;
        if (c.skipped !== null) {
          assertEquals(c.runs.length, 0, what);
          continue;
        }
        assertEquals(c.runs.length, 1, what);
        assertEquals(c.runs[0].invalid, null, what);
        assert(isPositive(c.medianSeconds), `${what}: seconds`);
        // GNU time counts CPU in 10 ms ticks: a tiny copy may take none.
        assert(c.cpuSecondsPerGiB >= 0 && c.runs[0].cpuSeconds >= 0, `${what}: CPU`);
        assertEquals(c.runs[0].steps.at(-1).name, "sync", `${what}: final sync`);
        if (device !== null) {
          assert(isPositive(c.deviceReadsPerByte), `${what}: device reads`);
          assert(c.deviceReadsPerByte <= c.deviceReadsPerByteMedian, `${what}: least reads`);
        }
        if (id !== "cp") {
          assertEquals(t.ratios[id].cp, c.medianSeconds / t.contenders.cp.medianSeconds, what);
        }
      }
      const cp = t.contenders.cp;
      assertEquals(Object.keys(cp.steps), ["cp", "sync"]);
      if (device !== null && dropped) {
        // The cache was dropped: the copy read the whole tree from storage.
        assert(cp.deviceReadsPerByte >= 0.95, `${name}: cp read ${cp.deviceReadsPerByte}`);
      }
      const tool = t.contenders["tool-md5"];
      assert(isPositive(tool.cpuSecondsPerGiB), `${name}: the tool's CPU`);
      assertEquals(Object.keys(tool.steps), [
        "filter",
        "schedule",
        "run",
        "sync",
      ]);
      if ("missing" in mfu) {
        for (const id of ["dcp-dcmp", "dcp-drop-dcmp"]) {
          assertEquals(t.contenders[id].skipped, mfu.missing, `${name}/${id}`);
        }
      } else {
        for (const id of ["dcp-dcmp", "dcp-drop-dcmp"]) {
          assertEquals(t.contenders[id].skipped, null, `${name}/${id}`);
        }
        if (device !== null && dropped) {
          // dcp reads the tree; after the drop, dcmp reads the tree and the copy again.
          const drop = t.contenders["dcp-drop-dcmp"].deviceReadsPerByte;
          assert(drop >= 2.9, `${name}: dcp+drop+dcmp read ${drop}`);
        }
      }
      const pc = t.pathCalls;
      assertEquals(pc.files, t.files, `${name}: files under strace`);
      assert(pc.bySyscall.openat.run > pc.bySyscall.openat.idle, `${name}: openat`);
      assertEquals(pc.perFile, pc.total / pc.files);
      assert(isPositive(pc.idleRunSeconds), `${name}: idle run`);
      const want = name === "single" ? 1 : 4;
      assertEquals(t.targets.length, want, `${name}: targets`);
      for (const g of t.targets) assertEquals(typeof g.met, "boolean", g.name);
      const md5 = t.ratios["tool-md5"];
      assertEquals(t.targets[0].value, name === "single" ? md5.md5sum : md5.cp);
      if (name !== "single") assertEquals(t.targets[3].value, pc.perFile);
      assert(text.includes(`## ${name} tree:`), `${name}: table printed`);
    }
    // The slow-rank scenario: one round of each variant on the large tree; rank 0's share
    // and the ratio come from the tool's own run summaries.
    const slow: Json = r.slowRank;
    assertEquals(slow.tree, "large");
    assertEquals(slow.runs.map((x: Json) => x.variant).sort(), ["free", "no-steal", "steal"]);
    for (const run of slow.runs) {
      assert(isPositive(run.seconds), `slow rank ${run.variant}: seconds`);
      assertEquals(run.rankBytes.length, 2);
      assertEquals(run.fastShare, run.rankBytes[0] / (run.rankBytes[0] + run.rankBytes[1]));
    }
    const noSteal = slow.runs.find((x: Json) => x.variant === "no-steal");
    assertEquals(noSteal.takenFromOthers, 0, "no stealing when it is off");
    assertEquals(slow.speedup, slow.noStealSeconds / slow.stealSeconds);
    assertMatch(slow.quota, /cgroup v[12] .*(cpu\.max = 20000 100000|cfs_quota_us 20000)/);
    assertEquals(slow.targets.map((g: Json) => g.value), [slow.fastShare, slow.speedup]);
    assert(text.includes("## slow rank: large tree"), "slow rank table printed");
    assertEquals(r.targets.length, 11);
    if ("missing" in mfu) assert(text.includes(MFU_BUILD_SCRIPT), "how to build mpiFileUtils");
    assert(text.includes("| target |"), "targets printed");
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("bench --scenario rejects an unknown part with a one-line usage error", async () => {
  const run = await runCommandOrFail(
    Deno.execPath(),
    ["run", "-A", join(REPO, "tools/bench.ts"), "--scenario", "slow-rank,fast"],
    { env: cleanEnv(), clearEnv: true },
  );
  assertEquals(run.code, 2, run.stderr);
  assertMatch(run.stderr, /--scenario takes contenders, slow-rank .*"fast"/);
});

Deno.test("bench --tree rejects an unknown tree with a one-line usage error", async () => {
  const run = await runCommandOrFail(
    Deno.execPath(),
    ["run", "-A", join(REPO, "tools/bench.ts"), "--tree", "small,huge"],
    { env: cleanEnv(), clearEnv: true },
  );
  assertEquals(run.code, 2, run.stderr);
  assertMatch(run.stderr, /--tree takes small, large, single .*"huge"/);
});

Deno.test("the block device of a file is in /proc/diskstats and counts reads", async () => {
  const path = await Deno.makeTempFile({ prefix: "dt-bench-reads-" });
  try {
    const device = await blockDeviceOf(path);
    assert((await Deno.readTextFile("/proc/diskstats")).includes(` ${device.name} `), device.name);
    await Deno.writeFile(path, new Uint8Array(8 * 1024 * 1024).fill(7));
    const dropped = (await dropCaches()) === null;
    const before = await bytesRead(device);
    await Deno.readFile(path);
    const read = (await bytesRead(device)) - before;
    assert(dropped ? read >= 8 * 1024 * 1024 : read >= 0, `read ${read} bytes`);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("a tmpfs folder has no block device", async () => {
  const tmpfs = await Deno.makeTempDir({ dir: "/dev/shm" });
  try {
    const err = await assertRejects(() => blockDeviceOf(tmpfs), NoBlockDeviceError);
    assertMatch(err.message, /no block device holds .*tmpfs mounted at \/dev\/shm/);
  } finally {
    await Deno.remove(tmpfs, { recursive: true });
  }
});

Deno.test("path-based calls: the stat, open, link families count; calls on a descriptor do not", () => {
  for (const name of ["openat", "newfstatat", "statx", "faccessat2", "readlinkat", "renameat2"]) {
    assert(isPathCall(name), name);
  }
  for (const name of ["fstat", "close", "read", "statfs", "futex", "getdents64", "symlink"]) {
    assert(!isPathCall(name), name);
  }
});

Deno.test("path-based calls per file: a run minus a run with nothing to do, under strace", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dt-bench-strace-" });
  const script = join(dir, "stat.ts");
  await Deno.writeTextFile(
    script,
    "for (let i = 0; i < Number(Deno.args[0]); i++) Deno.statSync(Deno.args[1]);\n",
  );
  try {
    const counts = async (n: number) => {
      const outPath = join(dir, `strace-${n}.txt`);
      const cmd = [Deno.execPath(), "run", "-A", script, String(n), dir];
      const r = await runCommandOrFail("strace", straceArgs(outPath, cmd));
      assertEquals(r.code, 0, r.stderr);
      return parseStraceCounts(await Deno.readTextFile(outPath));
    };
    const idle = await counts(0);
    const calls = pathCallsPerFile(await counts(50), idle, 50);
    assertEquals(calls.bySyscall.statx.run - calls.bySyscall.statx.idle, 50);
    assert(Math.abs(calls.perFile - 1) < 0.5, `per file ${calls.perFile}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("mpiFileUtils: a missing install is named with how to build it", async () => {
  const found = await findMpiFileUtils({ prefix: "/nonexistent/mfu" });
  assert("missing" in found, "found dcp in /nonexistent");
  assertMatch(
    found.missing,
    /^mpiFileUtils not found \(dcp and dcmp are not in \/nonexistent\/mfu\/bin\)/,
  );
  assert(found.missing.includes(`bash ${MFU_BUILD_SCRIPT}`), found.missing);
});

Deno.test("mpiFileUtils: dcmp's report of a changed byte makes the run invalid", async () => {
  const mfu = await findMpiFileUtils();
  if ("missing" in mfu) {
    // Without mpiFileUtils the benchmark only says so; that sentence is what can be checked.
    assertMatch(mfu.missing, /^mpiFileUtils not found .*build-mpifileutils\.sh/);
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "dt-bench-dcmp-" });
  try {
    const src = join(dir, "src");
    await Deno.mkdir(join(src, "a"), { recursive: true });
    await Deno.writeFile(join(src, "a", "f.bin"), new Uint8Array(100_000).fill(3));
    await Deno.writeFile(join(src, "g.bin"), new Uint8Array(5000).fill(4));
    const mpi = (p: string, ...args: string[]) =>
      runCommandOrFail("mpirun.mpich", ["-n", "2", p, "-q", ...args], {
        env: cleanEnv(),
        clearEnv: true,
      });
    const copy = join(dir, "copy");
    assertEquals((await mpi(mfu.dcp, src, copy)).code, 0);
    const same = await mpi(mfu.dcmp, src, copy);
    assertEquals(dcmpDifference(same.stdout + same.stderr, 2), null);
    const f = await Deno.open(join(copy, "a", "f.bin"), { write: true });
    await f.write(new Uint8Array([9]));
    f.close();
    const changed = await mpi(mfu.dcmp, src, copy);
    assertMatch(
      dcmpDifference(changed.stdout + changed.stderr, 2) ?? "none",
      /1 of different contents/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
