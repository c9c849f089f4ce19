/**
 * Exit codes of every entry point, documented in the README.
 * @module
 */

/** Exit codes shared by all phases. */
export const ExitCode = {
  /** Everything asked for was done. */
  Ok: 0,
  /** A bug or an unexpected system failure: the message carries a stack trace. */
  Internal: 1,
  /** The user's input is wrong (config, arguments, table): one line names what to fix. */
  Usage: 2,
  /** The phase ran to its end but some items failed; each is reported with its reason. */
  Failures: 3,
  /** The runner stopped taking files because the Slurm time budget ran out: submit another job. */
  TimeBudget: 4,
  /** Verify found work left (files neither verified nor failed). */
  Incomplete: 5,
} as const;

/** One of the values of {@linkcode ExitCode}. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];
