/**
 * Errors of the MPI layer. They carry no exit code: the caller decides what an MPI failure
 * means for its process (see `failure` in `RunWorldOptions`).
 * @module
 */

/**
 * MPI cannot be used as the environment asks: the library is missing or does not match the
 * launcher, `MPI_Init` failed, or the communicator was used after `finalize`. The message
 * names what was found and what to change (usually `DT_MPI_LIBRARY` or the launcher).
 */
export class MpiError extends Error {
  /** Creates an MPI error with a message a user can act on. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
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
