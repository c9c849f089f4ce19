import { assertEquals, assertMatch } from "./support/assert.ts";
import {
  formatDuration,
  progressLine,
  readProgress,
  writeProgress,
} from "../core/transfer/progress.ts";
import type { RankProgress } from "../core/transfer/progress.ts";

Deno.test("progress: the line adds up every rank's snapshot, with rate and time left", async () => {
  const dir = await Deno.makeTempDir();
  const start = 1_000_000;
  const ranks: RankProgress[] = [
    {
      rank: 0,
      filesTotal: 10,
      bytesTotal: 100 << 20,
      filesDone: 4,
      bytesDone: 40 << 20,
      failed: 0,
      startedMs: start,
    },
    {
      rank: 1,
      filesTotal: 10,
      bytesTotal: 100 << 20,
      filesDone: 6,
      bytesDone: 60 << 20,
      failed: 1,
      startedMs: start + 500,
    },
  ];
  for (const r of ranks) await writeProgress(dir, r);
  const read = await readProgress(dir, 3);
  assertEquals(read, ranks, "the missing rank 2 is skipped");
  // 100 MiB in 10 s: 10 MiB/s, 100 MiB left: 10 s.
  const line = progressLine(read, start + 10_000);
  assertEquals(
    line,
    "progress: 10/20 files, 100.0 MiB/200.0 MiB, 10.0 MiB/s, 1 failed, time left 10s (2 ranks reporting)",
  );
  assertMatch(
    progressLine([{ ...ranks[0], filesDone: 10, bytesDone: 100 << 20 }], start + 1),
    /time left 0s/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("progress: durations read as a person would", () => {
  assertEquals(formatDuration(0.44), "0.4s");
  assertEquals(formatDuration(59), "59s");
  assertEquals(formatDuration(61), "1m01s");
  assertEquals(formatDuration(3 * 3600 + 62), "3h01m02s");
  assertEquals(formatDuration(Infinity), "?");
});
