/**
 * Public core of the data-transfer toolkit: moves the `successes.parquet` and
 * `errors.parquet` of every completed partition of a downloader output tree into a dataset
 * layout, verified by MD5, in parallel across MPI ranks.
 *
 * The phases' entry points in `phases/` are thin wrappers over these functions.
 * @module
 */

export * from "./core/errors.ts";
export * from "./core/exit_codes.ts";
export * from "./core/config.ts";
export * from "./core/layout.ts";
export * from "./core/checkpoint.ts";
export * from "./core/plan_table.ts";
export * from "./core/balance.ts";
export * from "./core/filter.ts";
export * from "./core/schedule.ts";
export * from "./core/verification_log.ts";
export * from "./core/time_budget.ts";
export * from "./core/temporaries.ts";
export * from "./core/runner.ts";
export * from "./core/md5.ts";
export * from "./core/copy_file.ts";
export * from "./core/manifest.ts";
export * from "./core/verify.ts";
export * from "./core/deep_verify.ts";
export * from "./core/status.ts";
export * from "./core/submit.ts";
