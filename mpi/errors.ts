/**
 * Errors of the MPI layer.
 * @module
 */

import { UserError } from "../core/errors.ts";
import { ExitCode } from "../core/exit_codes.ts";

/**
 * MPI cannot be used as the environment asks: the library is missing or does not match the
 * launcher, `MPI_Init` failed, or the communicator was used after `finalize`. The message
 * names what was found and what to change (usually `DT_MPI_LIBRARY` or the launcher).
 */
export class MpiError extends UserError {
  /** Creates an MPI error; entry points exit with `exitCode` (2, a setup to fix, by default). */
  constructor(message: string, exitCode: number = ExitCode.Usage) {
    super(message, exitCode);
  }
}

/** An MPI function returned an error code instead of `MPI_SUCCESS`. */
export class MpiCallError extends MpiError {
  /** The MPI function that failed, such as `MPI_Gatherv`. */
  readonly fn: string;
  /** The error code it returned. */
  readonly code: number;
  /** Creates the error from the failing function, its code and the library's error text. */
  constructor(fn: string, code: number, text: string) {
    super(`${fn} failed with MPI error ${code}${text ? `: ${text}` : ""}`);
    this.fn = fn;
    this.code = code;
  }
}
