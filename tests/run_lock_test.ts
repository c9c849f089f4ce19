/**
 * The run lock of a tool folder (core/transfer/run_lock.ts): one holder at a time, named in the
 * file; a holder known to be gone never blocks. The lock under real runs (a second run refused,
 * a SIGKILLed run not blocking) is tested in tests/fault_campaign_test.ts, and a holder on
 * another node of a running Slurm job in tests/slurm_test.ts.
 * @module
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./support/assert.ts";
import { acquireRunLock, RunInProgressError } from "../core/transfer/run_lock.ts";
import { currentToken, formatToken } from "../core/transfer/temporaries.ts";

const self = currentToken({});

async function withFolder(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dt-lock-" });
  try {
    await fn(join(dir, "run.lock"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function refusal(promise: Promise<unknown>): Promise<RunInProgressError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof RunInProgressError) return err;
    throw err;
  }
  throw new Error("the lock was granted twice");
}

Deno.test("run lock: one holder at a time, named in the file; released, it is free", async () => {
  await withFolder(async (path) => {
    const lock = await acquireRunLock(path, self, 4);
    assert(lock.flock, "an flock on a local file system");
    const held = JSON.parse(await Deno.readTextFile(path));
    assertEquals([held.writer, held.ranks], [formatToken(self), 4]);
    // Another process (another open file) of the same host is refused, naming the holder.
    const other = { ...self, pid: self.pid + 1 };
    const err = await refusal(acquireRunLock(path, other, 2));
    assertEquals(err.holder?.writer, formatToken(self));
    assertMatch(
      err.message,
      new RegExp(
        `^another run is working on this tool folder: rank 0 on host \\S+ \\(pid ${self.pid}\\), ` +
          `4 rank\\(s\\), started .*; wait for it to end or stop it \\(kill ${self.pid} on \\S+\\), ` +
          `then run again \\(it holds ${path}\\)$`,
      ),
    );
    await lock.release();
    assertEquals(await Deno.readTextFile(path), "", "no holder once released");
    const again = await acquireRunLock(path, other, 2);
    assertEquals(JSON.parse(await Deno.readTextFile(path)).writer, formatToken(other));
    await again.release();
  });
});

Deno.test("run lock: a holder whose process is gone, or on another node outside Slurm, never blocks", async () => {
  await withFolder(async (path) => {
    const host = formatToken(self).split("@")[1];
    for (const writer of [`none@${host}@999999999`, `none@another-node@4242`, `77@${host}@1`]) {
      const startedAt = new Date(0).toISOString();
      await Deno.writeTextFile(path, JSON.stringify({ writer, ranks: 2, startedAt }));
      const lock = await acquireRunLock(path, self, 1);
      assertEquals(JSON.parse(await Deno.readTextFile(path)).writer, formatToken(self), writer);
      await lock.release();
    }
  });
});

Deno.test("run lock: a lock file whose holder cannot be read does not block once its flock is free", async () => {
  await withFolder(async (path) => {
    await Deno.writeTextFile(path, JSON.stringify({ writer: "garbled", ranks: 1, startedAt: "x" }));
    const lock = await acquireRunLock(path, self, 1);
    assertEquals(JSON.parse(await Deno.readTextFile(path)).writer, formatToken(self));
    await lock.release();
    await Deno.writeTextFile(path, "{ torn");
    await (await acquireRunLock(path, self, 1)).release();
  });
});
