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
export * from "./core/records/checkpoint.ts";
export * from "./core/plan/plan_table.ts";
export * from "./core/plan/balance.ts";
export * from "./core/plan/filter.ts";
export * from "./core/plan/filter_problems.ts";
export * from "./core/plan/schedule.ts";
export * from "./core/records/verification_log.ts";
export * from "./core/transfer/time_budget.ts";
export * from "./core/transfer/temporaries.ts";
export * from "./core/transfer/rank_plan.ts";
export * from "./core/transfer/run_summary.ts";
export * from "./core/transfer/run_transfer.ts";
export * from "./core/md5/engine.ts";
export * from "./core/md5/open_engine.ts";
export * from "./core/transfer/transfer_file.ts";
export * from "./core/audit/manifest.ts";
export * from "./core/audit/verify.ts";
export * from "./core/audit/published_check.ts";
export * from "./core/audit/stat_sizes.ts";
export * from "./core/audit/deep_verify.ts";
export * from "./core/audit/repair.ts";
export * from "./core/audit/quarantine.ts";
export * from "./core/audit/status.ts";
export * from "./core/slurm/slurm_phase.ts";
export * from "./core/slurm/submit_error.ts";
export * from "./core/slurm/site_settings.ts";
export * from "./core/slurm/submit_plan.ts";
export * from "./core/slurm/dry_run.ts";
export * from "./core/slurm/job_history.ts";
export * from "./core/slurm/submit.ts";
