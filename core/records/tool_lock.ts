/**
 * An exclusive lock on the tool's working folder, so that two filter or schedule runs never
 * write the same tables at once. It is an advisory `flock`: the kernel releases it when the
 * holder dies, so a crash never leaves a stale lock.
 * @module
 */

import { UserError } from "../errors.ts";

/** Thrown when another process of this tool holds the lock. */
export class LockBusyError extends UserError {}

/** Runs `fn` while holding the lock at `path`; fails at once if another process holds it. */
export async function withToolLock<T>(
  path: string,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  const file = await Deno.open(path, { read: true, write: true, create: true });
  try {
    if (!(await file.tryLock(true))) {
      throw new LockBusyError(
        `another ${what} of this tool is running (it holds ${path}); wait for it to end`,
      );
    }
    return await fn();
  } finally {
    file.close();
  }
}
