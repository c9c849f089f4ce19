/**
 * Waiting on a timer in the tests and their drivers, so that the event loop stays free.
 * @module
 */

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
