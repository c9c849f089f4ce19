/**
 * Which record stands for a destination when the logs hold several: a verification beats a
 * failure, an invalidation voids what came before it, and what comes after it stands, in
 * whatever order the logs are read.
 * @module
 */

import { assertEquals } from "./support/assert.ts";
import { readVerificationLogs, VerificationLog } from "../mod.ts";
import type { RecordStatus, VerificationRecord } from "../mod.ts";

const DST = "/d/images/server=a/data_1.parquet";

function rec(status: RecordStatus, minute: number): VerificationRecord {
  return {
    srcPath: "/s/server_name=a/partition_id=0/successes.parquet",
    dstPath: DST,
    hashsumSrc: "0".repeat(32),
    hashsumDst: status === "verified" ? "0".repeat(32) : "",
    sizeBytes: 10,
    verifyMode: status === "invalidated" ? "deep" : "md5",
    verifiedAt: `2026-01-01T00:${String(minute).padStart(2, "0")}:00.000Z`,
    status,
    reason: status === "verified" ? "" : `${status} at ${minute}`,
    numRows: 1,
    schemaFingerprint: "",
  };
}

/** Writes each record to its own log, in `names` order, and returns the standing status. */
async function standing(records: VerificationRecord[], names: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dt-logs-" });
  for (const [i, r] of records.entries()) {
    const log = await VerificationLog.create(dir, names[i], 1);
    await log.append(r);
    await log.close();
  }
  const state = await readVerificationLogs(dir);
  await Deno.remove(dir, { recursive: true });
  const r = state.byDst.get(DST)!;
  return `${r.status}@${r.verifiedAt.slice(14, 16)}`;
}

const CASES: Array<[string, VerificationRecord[], string]> = [
  ["a failure after a verification", [rec("verified", 1), rec("failed", 2)], "verified@01"],
  ["a verification after a failure", [rec("failed", 1), rec("verified", 2)], "verified@02"],
  [
    "an invalidation after a verification",
    [rec("verified", 1), rec("invalidated", 2)],
    "invalidated@02",
  ],
  [
    "a copy again after an invalidation",
    [rec("verified", 1), rec("invalidated", 2), rec("verified", 3)],
    "verified@03",
  ],
  [
    "a failed copy after an invalidation",
    [rec("verified", 1), rec("invalidated", 2), rec("failed", 3)],
    "failed@03",
  ],
  [
    "a second invalidation after a copy again",
    [rec("verified", 1), rec("invalidated", 2), rec("verified", 3), rec("invalidated", 4)],
    "invalidated@04",
  ],
];

for (const [what, records, expected] of CASES) {
  Deno.test(`verification logs: ${what} -> ${expected}, in any file order`, async () => {
    const n = records.length;
    const orders = [
      Array.from({ length: n }, (_, i) => `log${i}`),
      Array.from({ length: n }, (_, i) => `log${n - i}`),
    ];
    for (const names of orders) assertEquals(await standing(records, names), expected);
  });
}
