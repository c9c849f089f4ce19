import { assert, assertEquals, assertMatch, assertThrows } from "./support/assert.ts";
import { join } from "node:path";
import { ConfigError, DEFAULT_TRANSFER_SETTINGS, parseByteSize, parseConfig } from "../mod.ts";
import { makeWorkspace, runScript } from "./support/fixture.ts";

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
  assertEquals([c.maxNodes, c.workersPerNode, c.numWorkers, c.cpuPerWorker], [2, 4, 3, 2]);
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
      "  buffers: 8\n  md5_engine: wasm-simd\n",
    "/c.yaml",
  );
  assertEquals(c.transfer.verifyMode, "md5");
  assertEquals(c.notes, []);
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
  assertEquals(c.notes.length, 1);
  assertMatch(
    c.notes[0],
    /^\/c\.yaml: data_transfer\.verify_mode: bytes now does the same as md5: every byte of the copy is read back from storage and compared with the source/,
  );
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
    "mistyped key",
    BASE.replace("max_nodes: 2", "max_nodes: two"),
    /key 'tools_parameters.max_nodes': expected a whole number >= 1, got "two"/,
  ],
  [
    "zero workers",
    BASE.replace("workers_per_node: 4", "workers_per_node: 0"),
    /key 'tools_parameters.workers_per_node': expected a whole number >= 1, got 0/,
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
    const err = assertThrows(() => parseConfig(text, "/x/cfg.yaml"), ConfigError);
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
    [["--frobnicate"], {}, /Unknown option '--frobnicate'/],
  ];
  await Deno.writeTextFile(join(ws.dir, "bad.yaml"), BASE.replace("max_nodes: 2", "max_nodes: 0"));
  cases.push([
    [],
    { CONFIG_PATH: join(ws.dir, "bad.yaml") },
    /bad\.yaml: key 'tools_parameters\.max_nodes'/,
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
