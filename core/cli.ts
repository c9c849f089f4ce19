/**
 * Shared command-line handling of the entry points: options, `--help`, config lookup, and
 * turning errors into one line and an exit code.
 * @module
 */

import { parseArgs } from "node:util";
import { CONFIG_ENV, loadConfig } from "./config.ts";
import type { Config } from "./config.ts";
import { UserError } from "./errors.ts";
import { ExitCode } from "./exit_codes.ts";
import { type Comm, type Failure, MpiError, type OpenWorldOptions, runWorld } from "../mpi/mod.ts";

/** An option an entry point accepts, in `node:util` parseArgs form plus a help text. */
export interface OptionSpec {
  /** `string` takes a value; `boolean` is a flag. */
  type: "string" | "boolean";
  /** One line for `--help`. */
  help: string;
  /** Shown as `--name VALUE` in help. */
  value?: string;
}

/** A parsed command line. */
export interface ParsedCommand {
  /** Values of the options given. */
  values: Record<string, string | boolean | undefined>;
  /** Arguments that are not options. */
  positionals: string[];
}

/** Thrown for a bad command line. */
export class UsageError extends UserError {}

/**
 * Parses `args` against `options` (plus `--help`, always). Prints help and exits 0 on
 * `--help`; throws {@linkcode UsageError} on an unknown option or a missing value.
 */
export function parseCommand(
  name: string,
  summary: string,
  options: Record<string, OptionSpec>,
  args: string[] = Deno.args,
): ParsedCommand {
  const spec: Record<string, { type: "string" | "boolean" }> = { help: { type: "boolean" } };
  for (const [k, v] of Object.entries(options)) spec[k] = { type: v.type };
  let parsed;
  try {
    parsed = parseArgs({ args, options: spec, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${name}: ${(err as Error).message} (see --help)`);
  }
  if (parsed.values.help) {
    const lines = [`Usage: deno task ${name} [options]`, "", summary, "", "Options:"];
    const all = { ...options, help: { type: "boolean", help: "show this help" } as OptionSpec };
    for (const [k, v] of Object.entries(all)) {
      const left = `  --${k}${v.type === "string" ? ` ${v.value ?? "VALUE"}` : ""}`;
      lines.push(left.padEnd(28) + v.help);
    }
    console.log(lines.join("\n"));
    Deno.exit(0);
  }
  return { values: parsed.values as ParsedCommand["values"], positionals: parsed.positionals };
}

/** The `--config` option every phase takes. */
export const CONFIG_OPTION: Record<string, OptionSpec> = {
  config: {
    type: "string",
    value: "FILE",
    help: `the YAML config (default: $${CONFIG_ENV})`,
  },
};

/** Loads the config named by `--config`, else by `$CONFIG_PATH`. */
export async function configFromCommand(cmd: ParsedCommand, name: string): Promise<Config> {
  const path = (cmd.values.config as string | undefined) ?? Deno.env.get(CONFIG_ENV);
  if (!path) {
    throw new UsageError(`${name}: no config given; pass --config FILE or set ${CONFIG_ENV}`);
  }
  return await loadConfig(path);
}

/**
 * How an error ends an entry point: a {@linkcode UserError} prints `error: <message>` and exits
 * with its code; an `MpiError` (MPI cannot be used as the environment asks) is a setup to fix,
 * exit 2; anything else is a bug: its stack, exit 1.
 */
export function describeFailure(error: unknown): Failure {
  if (error instanceof UserError) {
    return { code: error.exitCode, message: `error: ${error.message}` };
  }
  if (error instanceof MpiError) {
    return { code: ExitCode.Usage, message: `error: ${error.message}` };
  }
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return { code: ExitCode.Internal, message: `internal error: ${text}` };
}

/**
 * Runs an entry point: its resolved number is the exit code; an error ends it as
 * {@linkcode describeFailure} says.
 */
export async function runMain(main: () => Promise<number>): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (err) {
    const failure = describeFailure(err);
    console.error(failure.message);
    code = failure.code;
  }
  Deno.exit(code);
}

/**
 * Runs an entry point on every MPI rank (see `runWorld`): an error in one rank ends the whole
 * job with the exit code {@linkcode describeFailure} gives it.
 */
export async function runMpiMain(
  main: (comm: Comm) => Promise<number> | number,
  options: OpenWorldOptions = {},
): Promise<never> {
  return await runWorld(main, { ...options, failure: describeFailure });
}

/** Formats a byte count for people: `1.5 GiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}
