/**
 * Typed errors of the data-transfer tool. Each carries a message a user can act on;
 * entry points print `message` alone (no stack trace) and exit with `exitCode`.
 * @module
 */

/** Base class of every error that is the user's to fix (bad input, bad config). */
export class UserError extends Error {
  /** Process exit code the entry point uses for this error. */
  readonly exitCode: number;
  /** Creates a user-facing error with an exit code (2 by default). */
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/**
 * The configuration file is missing, unreadable, not YAML, or has bad keys. It carries every
 * problem found, one line each (`message` is those lines joined), so that a user fixes them
 * all in one go.
 */
export class ConfigError extends UserError {
  /** One line per problem, each naming the file and the key. */
  readonly problems: readonly string[];
  /** Creates the error from one problem or several. */
  constructor(problems: string | readonly string[]) {
    const list = typeof problems === "string" ? [problems] : [...problems];
    super(list.join("\n"));
    this.problems = list;
  }
}

/** An input tree, table or schedule is not in the expected form. */
export class InputError extends UserError {}

/** The text of any thrown value, for a one-line report: an Error's message, else `String()`. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
