/**
 * Shared command-line handling of the entry points: options, `--help`, config lookup, and
 * turning errors into one line and an exit code.
 * @module
 */

import { CONFIG_ENV, loadConfig } from "./config.ts";
import type { Config, ToolsParameter } from "./config.ts";
import { ConfigError, UserError } from "./errors.ts";
import { ExitCode } from "./exit_codes.ts";
import {
  type Comm,
  type Failure,
  launcherRank,
  MpiError,
  openWorld,
  type OpenWorldOptions,
} from "../mpi/mod.ts";

/** An option an entry point accepts, with its help text. */
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
  /** Values of the options given (by their hyphenated names). */
  values: Record<string, string | boolean | undefined>;
}

/** Thrown for a bad command line. */
export class UsageError extends UserError {}

function helpText(name: string, summary: string, options: Record<string, OptionSpec>): string {
  const lines = [`Usage: deno task ${name} [options]`, "", summary, "", "Options:"];
  const all = { ...options, help: { type: "boolean", help: "show this help" } as OptionSpec };
  for (const [k, v] of Object.entries(all)) {
    const left = `  --${k}${v.type === "string" ? ` ${v.value ?? "VALUE"}` : ""}`;
    lines.push(left.padEnd(28) + v.help);
  }
  const hyphenated = Object.keys(options).find((k) => k.includes("-"));
  if (hyphenated !== undefined) {
    const example = `--${hyphenated.replaceAll("-", "_")}`;
    lines.push(
      "",
      `Options may also be spelled with underscores, as the toolbox does (${example}).`,
    );
  }
  return lines.join("\n");
}

/**
 * Parses `args` against `options` (plus `--help`, always): `--name VALUE`, `--name=VALUE`,
 * flags, and the toolbox's spelling with underscores (`--reset_filtering`). Prints help and
 * exits 0 on `--help` (wherever it stands); throws {@linkcode UsageError} on an unknown option,
 * a missing or unexpected value, or an argument that is not an option.
 */
export function parseCommand(
  name: string,
  summary: string,
  options: Record<string, OptionSpec>,
  args: string[] = Deno.args,
): ParsedCommand {
  const end = args.indexOf("--");
  const before = end < 0 ? args : args.slice(0, end);
  if (before.includes("--help") || before.includes("-h")) {
    console.log(helpText(name, summary, options));
    Deno.exit(0);
  }
  const values: ParsedCommand["values"] = {};
  for (let i = 0; i < before.length; i++) {
    const arg = before[i];
    if (!arg.startsWith("-") || arg === "-") {
      throw new UsageError(`${name}: unexpected argument ${JSON.stringify(arg)}; see --help`);
    }
    const eq = arg.indexOf("=");
    const raw = eq < 0 ? arg : arg.slice(0, eq);
    const key = raw.replace(/^--?/, "").replaceAll("_", "-");
    const spec = raw.startsWith("--") && Object.hasOwn(options, key) ? options[key] : undefined;
    if (spec === undefined) throw new UsageError(`${name}: unknown option ${raw}; see --help`);
    if (spec.type === "boolean") {
      if (eq >= 0) throw new UsageError(`${name}: option --${key} takes no value; see --help`);
      values[key] = true;
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : before[i + 1];
    if (value === undefined || (eq < 0 && value.startsWith("--"))) {
      throw new UsageError(
        `${name}: option --${key} needs a value (--${key} ${spec.value ?? "VALUE"}); see --help`,
      );
    }
    if (eq < 0) i++;
    values[key] = value;
  }
  if (end >= 0 && end < args.length - 1) {
    throw new UsageError(
      `${name}: unexpected argument ${JSON.stringify(args[end + 1])}; see --help`,
    );
  }
  return { values };
}

/** The `--config` option every phase takes. */
export const CONFIG_OPTION: Record<string, OptionSpec> = {
  config: {
    type: "string",
    value: "FILE",
    help: `the YAML config (default: $${CONFIG_ENV})`,
  },
};

/**
 * Loads the config named by `--config`, else by `$CONFIG_PATH`, checking the
 * `tools_parameters` the phase `uses`; prints the config's warnings on stderr (once per job).
 */
export async function configFromCommand(
  cmd: ParsedCommand,
  name: string,
  uses: readonly ToolsParameter[] = [],
): Promise<Config> {
  const path = (cmd.values.config as string | undefined) ?? Deno.env.get(CONFIG_ENV);
  if (!path) {
    throw new UsageError(`${name}: no config given; pass --config FILE or set ${CONFIG_ENV}`);
  }
  const config = await loadConfig(path, uses);
  // Once per job: under a launcher, the rank it numbers 0 speaks for all.
  if ((launcherRank(Deno.env.toObject()) ?? 0) === 0) {
    for (const w of config.warnings) console.error(`warning: ${w}`);
  }
  return config;
}

/**
 * Parses the command line of a phase whose only option is `--config` (plus `--help`) and
 * loads that config as {@linkcode configFromCommand} does.
 */
export function configOnlyCommand(
  name: string,
  summary: string,
  args: string[],
  uses: readonly ToolsParameter[] = [],
): Promise<Config> {
  return configFromCommand(parseCommand(name, summary, CONFIG_OPTION, args), name, uses);
}

/**
 * How an error ends an entry point: a {@linkcode UserError} prints `error: <message>` (a
 * {@linkcode ConfigError}, one such line per problem) and exits with its code; an `MpiError`
 * (MPI cannot be used as the environment asks) is a setup to fix, exit 2; anything else is a
 * bug: its stack, exit 1.
 */
export function describeFailure(error: unknown): Failure {
  if (error instanceof ConfigError) {
    return { code: error.exitCode, message: error.problems.map((p) => `error: ${p}`).join("\n") };
  }
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

/** Opens the MPI world of an entry point on its first call; later calls return the same. */
export type OpenComm = () => Comm;

/**
 * Runs an entry point on every MPI rank. `main` receives {@linkcode OpenComm} and opens the
 * world when it first needs it, after it has parsed its command line and loaded its config:
 * `--help`, a bad option or a bad config never start MPI, and a phase that has no use for it
 * (say `verify` without `--deep`) never opens it, nor prints MPI's notes. An error before the
 * world is open (or in a single process) prints its line and exits with its code; an error
 * after it ends the whole job (`MPI_Abort`) with the code {@linkcode describeFailure} gives it,
 * so that no rank is left waiting in a collective.
 */
export async function runMpiMain(
  main: (openComm: OpenComm) => Promise<number> | number,
  options: OpenWorldOptions = {},
): Promise<never> {
  let comm: Comm | null = null;
  const openComm: OpenComm = () => (comm ??= openWorld(options));
  let code: number;
  try {
    code = await main(openComm);
  } catch (err) {
    const failure = describeFailure(err);
    const opened = comm as Comm | null;
    if (opened !== null && opened.library !== null) opened.abort(failure.code, failure.message);
    console.error(failure.message);
    Deno.exit(failure.code);
  }
  (comm as Comm | null)?.finalize();
  Deno.exit(code);
}
