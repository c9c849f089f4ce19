import { assert, assertEquals, assertMatch, assertThrows } from "./support/assert.ts";
import { join } from "node:path";
import {
  ConfigError,
  DEFAULT_TRANSFER_SETTINGS,
  parseByteSize,
  parseConfig,
  SUBMIT_KEYS,
  toolsParameter,
  WORLD_SIZE_KEYS,
} from "../mod.ts";
import type { ToolsParameter } from "../mod.ts";
import { listFiles, makeWorkspace, runScript } from "./support/fixture.ts";

const BASE = `
path_to_output_folder: /data/run
output_structure:
  images_folder: images
  tools_folder: tools
  urls_folder: urls
  logs_folder: logs
account: proj123
path_to_input: /data/in.parquet
scripts:
  anything: [1, 2]
tools_parameters:
  num_workers: 3
  max_nodes: 2
  workers_per_node: 4
  cpu_per_worker: 2
dst_image_folder: /data/dataset/images
dst_error_folder: /data/dataset/errors
`;

Deno.test("config: toolbox keys are read, other keys ignored, defaults applied", () => {
  const c = parseConfig(BASE, "/etc/cfg.yaml");
  assertEquals(c.imagesFolder, "/data/run/images");
  assertEquals(c.toolsFolder, "/data/run/tools");
  const keys: ToolsParameter[] = ["max_nodes", "workers_per_node", "num_workers", "cpu_per_worker"];
  assertEquals(keys.map((k) => toolsParameter(c, k)), [2, 4, 3, 2]);
  assertEquals(c.dstImageFolder, "/data/dataset/images");
  assertEquals(c.transfer, DEFAULT_TRANSFER_SETTINGS);
});

Deno.test("config: relative paths resolve against the config file's folder", () => {
  const text = BASE.replace("/data/run", "run").replace("/data/dataset/images", "../ds/img");
  const c = parseConfig(text, "/home/u/proj/cfg.yaml");
  assertEquals(c.outputFolder, "/home/u/proj/run");
  assertEquals(c.imagesFolder, "/home/u/proj/run/images");
  assertEquals(c.dstImageFolder, "/home/u/ds/img");
});

Deno.test("config: data_transfer section overrides defaults", () => {
  const c = parseConfig(
    BASE +
      "data_transfer:\n  verify_mode: md5\n  retries: 0\n  buffer_size: 1MiB\n" +
      "  buffers: 8\n  md5_engine: wasm-simd\n  steal: false\n",
    "/c.yaml",
  );
  assertEquals(c.transfer.steal, false);
  assertEquals(
    parseConfig(BASE, "/c.yaml").transfer.steal,
    true,
    "balancing at run time by default",
  );
  assertEquals(c.transfer.verifyMode, "md5");
  assertEquals(c.warnings, []);
  assertEquals(c.transfer.buffers, 8);
  assertEquals(c.transfer.retries, 0);
  assertEquals(c.transfer.bufferSize, 1024 * 1024);
  assertEquals(c.transfer.md5Engine, "wasm-simd");
  assertEquals(parseByteSize("8MiB"), 8 * 1024 * 1024);
  assertEquals(parseByteSize("12 parsecs"), null);
});

Deno.test("config: verify_mode bytes is accepted as md5, with one note saying so", () => {
  const c = parseConfig(BASE + "data_transfer:\n  verify_mode: bytes\n", "/c.yaml");
  assertEquals(c.transfer.verifyMode, "md5");
  assertEquals(c.warnings.length, 1);
  assertMatch(
    c.warnings[0],
    /^\/c\.yaml: data_transfer\.verify_mode: bytes now does the same as md5: every byte of the copy is read back from storage and compared with the source/,
  );
});

Deno.test("config: drop_cache, which earlier versions read, is accepted with a warning", () => {
  const c = parseConfig(BASE + "data_transfer:\n  drop_cache: false\n", "/c.yaml");
  assertEquals(c.warnings, [
    "/c.yaml: key 'data_transfer.drop_cache' is no longer used and is ignored: every copy is " +
    "read back from storage (O_DIRECT, or after its pages are dropped where O_DIRECT is refused)",
  ]);
  assertEquals(parseConfig(BASE, "/c.yaml").warnings, []);
});

const BAD: Array<[string, string, RegExp]> = [
  ["bad YAML", "a: [1, 2\nb: c", /not valid YAML/],
  ["a list at the top", "- 1\n- 2\n", /expected a YAML mapping/],
  [
    "missing key",
    BASE.replace("dst_error_folder: /data/dataset/errors", ""),
    /key 'dst_error_folder': expected a non-empty path string, it is missing/,
  ],
  [
    "mistyped key the phase uses",
    BASE.replace("max_nodes: 2", "max_nodes: two"),
    /key 'tools_parameters.max_nodes': expected a whole number >= 1, got "two"/,
  ],
  [
    "zero workers where the phase uses them",
    BASE.replace("workers_per_node: 4", "workers_per_node: 0"),
    /key 'tools_parameters.workers_per_node': expected a whole number >= 1 \(0 is the toolbox's placeholder: set it\), got 0/,
  ],
  [
    "negative workers",
    BASE.replace("max_nodes: 2", "max_nodes: -1"),
    /key 'tools_parameters.max_nodes'/,
  ],
  [
    "destination inside the source",
    BASE.replace("/data/dataset/images", "/data/run/images/out"),
    /key 'dst_image_folder': .* lies inside the source tree/,
  ],
  [
    "source inside the destination",
    BASE.replace("/data/dataset/errors", "/data"),
    /key 'dst_error_folder': \/data contains the source tree/,
  ],
  [
    "bad verify mode",
    BASE + "data_transfer:\n  verify_mode: sha1\n",
    /key 'data_transfer.verify_mode': expected one of md5, bytes, got "sha1"/,
  ],
  [
    "bad buffer size",
    BASE + "data_transfer:\n  buffer_size: 12 parsecs\n",
    /key 'data_transfer.buffer_size'/,
  ],
  [
    "buffer size not a multiple of 4 KiB",
    BASE + "data_transfer:\n  buffer_size: 10000\n",
    /key 'data_transfer.buffer_size': expected a multiple of 4096 bytes from 4096 bytes to 1GiB .*, got 10000/,
  ],
  [
    "one buffer",
    BASE + "data_transfer:\n  buffers: 1\n",
    /key 'data_transfer.buffers': expected a whole number 2 to 1024, got 1/,
  ],
];

for (const [what, text, message] of BAD) {
  Deno.test(`config: ${what} is refused with a message naming file and key`, () => {
    const err = assertThrows(() => parseConfig(text, "/x/cfg.yaml", SUBMIT_KEYS), ConfigError);
    assertMatch(err.message, /^\/x\/cfg\.yaml: /);
    assertMatch(err.message, message);
  });
}

Deno.test("config: a user's mistake exits 2 with one line and no stack trace", async () => {
  const ws = await makeWorkspace();
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [
      ["--config", join(ws.dir, "missing.yaml")],
      {},
      /missing\.yaml: cannot read the config file: no such file/,
    ],
    [["--config", ws.dir], {}, /cannot read the config file/],
    [[], {}, /no config given; pass --config FILE or set CONFIG_PATH/],
    [["--frobnicate"], {}, /^error: (filter|schedule): unknown option --frobnicate; see --help$/m],
    [["--config"], {}, /option --config needs a value \(--config FILE\); see --help$/m],
    [["config.yaml"], {}, /unexpected argument "config\.yaml"; see --help$/m],
  ];
  await Deno.writeTextFile(
    join(ws.dir, "bad.yaml"),
    BASE.replace("dst_error_folder: /data/dataset/errors", ""),
  );
  cases.push([
    [],
    { CONFIG_PATH: join(ws.dir, "bad.yaml") },
    /bad\.yaml: key 'dst_error_folder': expected a non-empty path string, it is missing/,
  ]);
  for (const [args, env, message] of cases) {
    for (const phase of ["phases/filter.ts", "phases/schedule.ts"]) {
      const r = await runScript(phase, args, { env });
      assertEquals(r.code, 2, `${phase} ${args.join(" ")}: ${r.stderr}`);
      assertMatch(r.stderr, message);
      assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert(!r.stderr.includes("    at "), "no stack trace");
    }
  }
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("config: --help describes the phase and exits 0", async () => {
  for (const phase of ["filter", "schedule"]) {
    const r = await runScript(`phases/${phase}.ts`, ["--help"]);
    assertEquals(r.code, 0);
    assertMatch(r.stdout, new RegExp(`Usage: deno task ${phase}`));
    assertMatch(r.stdout, /--config FILE/);
  }
});

/** The toolbox's example config: placeholders 0 and keys of its other tools. */
function toolboxConfig(extra = ""): string {
  return `path_to_output_folder: out
output_structure:
  images_folder: images
  tools_folder: tools
  urls_folder: urls
  logs_folder: logs
account: proj123
path_to_input: /data/input.parquet
scripts:
  tools_submitter: /opt/toolbox/submit.sh
tools_parameters:
  num_workers: 0
  max_nodes: 0
  workers_per_node: 0
  cpu_per_worker: 0
  threshold_size: 224
  new_resize_size: 720
initializer_type: fromfile
included_sources: [gbif, inaturalist]
excluded_servers_path: /data/excluded.csv
schedule_rules:
  1: small
  10: large
dst_image_folder: dataset/images
dst_error_folder: dataset/errors
${extra}`;
}

/** The `error:` lines of a phase's stderr. */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith("error: "));
}

Deno.test("config: the toolbox's example config runs the phases that do not use its placeholders; schedule and submit name every key they need", async () => {
  const ws = await makeWorkspace();
  await Deno.writeTextFile(ws.configPath, toolboxConfig());
  const args = ["--config", ws.configPath];
  for (const phase of ["filter", "status"]) {
    const r = await runScript(`phases/${phase}.ts`, args);
    assertEquals(r.code, 0, `${phase}: ${r.stdout}${r.stderr}`);
  }
  const schedule = await runScript("phases/schedule.ts", args);
  assertEquals(schedule.code, 2, schedule.stderr);
  assertEquals(errorLines(schedule.stderr).length, 2, schedule.stderr);
  for (const key of WORLD_SIZE_KEYS) {
    assertMatch(
      schedule.stderr,
      new RegExp(
        `config\\.yaml: key 'tools_parameters\\.${key}': expected a whole number >= 1 \\(0 is the toolbox's placeholder: set it\\), got 0`,
      ),
    );
  }
  const submit = await runScript("phases/submit.ts", [...args, "--dry-run"]);
  assertEquals(submit.code, 2, submit.stderr);
  assertEquals(errorLines(submit.stderr).length, 4, submit.stderr);
  for (const key of SUBMIT_KEYS) {
    assertMatch(submit.stderr, new RegExp(`'tools_parameters\\.${key}'`));
  }
  assertEquals(submit.stderr.trim().split("\n").length, 4, "nothing but the four lines");

  // Filled in, the same config schedules; the placeholders of other tools stay ignored.
  await Deno.writeTextFile(
    ws.configPath,
    toolboxConfig().replace("max_nodes: 0", "max_nodes: 1").replace(
      "workers_per_node: 0",
      "workers_per_node: 2",
    ),
  );
  const filled = await runScript("phases/filter.ts", args);
  assertEquals(filled.code, 0, filled.stderr);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("config: every problem of a file is reported at once, one line each, exit 2", () => {
  const text = BASE.replace("dst_error_folder: /data/dataset/errors", "") +
    "data_transfer:\n  verify_mode: sha1\n  retries: -1\n  verify_mod: bytes\n";
  const err = assertThrows(() => parseConfig(text, "/x/cfg.yaml", SUBMIT_KEYS), ConfigError);
  assertEquals(err.problems.length, 4, err.message);
  assertMatch(err.problems[0], /key 'dst_error_folder': expected a non-empty path string/);
  assertMatch(err.problems[1], /key 'data_transfer.verify_mode': expected one of md5, bytes/);
  assertMatch(err.problems[2], /key 'data_transfer.retries': expected a whole number >= 0/);
  assertMatch(err.problems[3], /key 'data_transfer.verify_mod' is not a setting/);
  for (const p of err.problems) assertMatch(p, /^\/x\/cfg\.yaml: key '/);
});

Deno.test("config: a typo under data_transfer exits 2 naming the key and the nearest known one", async () => {
  const err = assertThrows(
    () => parseConfig(BASE + "data_transfer:\n  verify_mod: bytes\n", "/x/cfg.yaml"),
    ConfigError,
  );
  assertMatch(
    err.message,
    /^\/x\/cfg\.yaml: key 'data_transfer\.verify_mod' is not a setting of this tool; did you mean 'verify_mode'\? \(known keys: verify_mode, retries, /,
  );
  const far = assertThrows(
    () => parseConfig(BASE + "data_transfer:\n  colour: blue\n", "/x/cfg.yaml"),
    ConfigError,
  );
  assertMatch(far.message, /'data_transfer\.colour' is not a setting of this tool; known keys: /);

  const ws = await makeWorkspace({ transfer: { verify_mod: "bytes", files_in_flite: 4 } });
  const r = await runScript("phases/filter.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 2, r.stderr);
  assertEquals(errorLines(r.stderr), [
    `error: ${ws.configPath}: key 'data_transfer.verify_mod' is not a setting of this tool; ` +
    `did you mean 'verify_mode'? (known keys: ${KNOWN})`,
    `error: ${ws.configPath}: key 'data_transfer.files_in_flite' is not a setting of this tool; ` +
    `did you mean 'files_in_flight'? (known keys: ${KNOWN})`,
  ]);
  assertEquals(listFiles(ws.dir), [ws.configPath], "nothing created");
  await Deno.remove(ws.dir, { recursive: true });
});

const KNOWN = "verify_mode, retries, buffer_size, buffers, files_in_flight, time_margin_seconds, " +
  "allow_invalid_parquet, progress_interval_seconds, log_sync_every, md5_engine, steal";

Deno.test("config: a data_transfer section anywhere but the top level gets a warning", async () => {
  const nested = BASE.replace(
    "  cpu_per_worker: 2\n",
    "  cpu_per_worker: 2\n  data_transfer:\n    verify_mode: bytes\n",
  );
  const c = parseConfig(nested, "/x/cfg.yaml");
  assertEquals(c.transfer.verifyMode, "md5", "the misplaced section is not read");
  assertEquals(c.warnings.length, 1);
  assertMatch(
    c.warnings[0],
    /^\/x\/cfg\.yaml: key 'tools_parameters\.data_transfer' is ignored: this tool reads its settings from 'data_transfer:' at the top level/,
  );
  assertEquals(parseConfig(BASE, "/x/cfg.yaml").warnings, []);

  const ws = await makeWorkspace();
  const text = await Deno.readTextFile(ws.configPath);
  await Deno.writeTextFile(
    ws.configPath,
    text.replace(
      "  cpu_per_worker: 1\n",
      "  cpu_per_worker: 1\n  data_transfer:\n    verify_mode: bytes\n",
    ),
  );
  const r = await runScript("phases/filter.ts", ["--config", ws.configPath]);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(
    r.stderr,
    /^warning: .*config\.yaml: key 'tools_parameters\.data_transfer' is ignored/m,
  );
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("config: dst_image_folder and dst_error_folder equal or one inside the other is refused", () => {
  for (
    const [errors, how] of [
      ["/data/dataset/images", "is the same folder as"],
      ["/data/dataset/images/errors", "overlaps"],
      ["/data/dataset", "overlaps"],
    ]
  ) {
    const text = BASE.replace(
      "dst_error_folder: /data/dataset/errors",
      `dst_error_folder: ${errors}`,
    );
    const err = assertThrows(() => parseConfig(text, "/x/cfg.yaml"), ConfigError);
    assertEquals(err.problems.length, 1, err.message);
    assertMatch(
      err.message,
      new RegExp(
        `^/x/cfg\\.yaml: key 'dst_error_folder': ${errors} ${how} dst_image_folder /data/dataset/images; expected two separate folders`,
      ),
    );
  }
});

Deno.test("config: a wrong path_to_output_folder: every phase exits 2 with one line and creates nothing", async () => {
  const ws = await makeWorkspace();
  const text = await Deno.readTextFile(ws.configPath);
  const notThere = join(ws.dir, "no-such-run");
  const notOutput = join(ws.dir, "elsewhere");
  await Deno.mkdir(notOutput);
  const cases: Array<[string, RegExp]> = [
    [
      notThere,
      /key 'path_to_output_folder': .*no-such-run is not a readable folder \(no such folder\); set it to the downloader's output folder$/,
    ],
    [
      notOutput,
      /key 'output_structure\.images_folder': .*elsewhere\/images is not a readable folder \(no such folder\); is path_to_output_folder the downloader's output\?$/,
    ],
  ];
  for (const [output, message] of cases) {
    await Deno.writeTextFile(
      ws.configPath,
      text.replace("path_to_output_folder: out", `path_to_output_folder: ${output}`),
    );
    const before = listFiles(ws.dir);
    for (const phase of ["filter", "schedule", "run", "verify", "status", "submit"]) {
      const r = await runScript(`phases/${phase}.ts`, ["--config", ws.configPath]);
      assertEquals(r.code, 2, `${phase}: ${r.stdout}${r.stderr}`);
      assertEquals(r.stderr.trim().split("\n").length, 1, `${phase}: ${r.stderr}`);
      assertMatch(r.stderr.trim(), message, phase);
      assertEquals(listFiles(ws.dir), before, `${phase} created nothing`);
      assertEquals([...Deno.readDirSync(notOutput)], [], `${phase} created nothing`);
    }
  }
  await Deno.remove(ws.dir, { recursive: true });
});
