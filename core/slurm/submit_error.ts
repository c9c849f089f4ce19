/**
 * The error of submitting the Slurm chain.
 * @module
 */

import { UserError } from "../errors.ts";

/** Thrown when the chain cannot be submitted (site file, sbatch, arguments, queued jobs). */
export class SubmitError extends UserError {}
