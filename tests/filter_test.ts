import { assert, assertEquals, assertMatch, assertNotEquals } from "./support/assert.ts";
import { join } from "node:path";
import {
  loadConfig,
  readCheckpoint,
  readFilterTables,
  runFilter,
  safeServerName,
  ServerNameError,
} from "../mod.ts";
import type { PlanRow } from "../mod.ts";
import { addPartition, makeWorkspace, REPO, runScript } from "./support/fixture.ts";
import type { Workspace } from "./support/fixture.ts";

const UUID_V4 = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";

async function planned(ws: Workspace): Promise<PlanRow[]> {
  return await readFilterTables(join(ws.tool, "filter_table"));
}

async function filter(ws: Workspace, wrap: string[] = []) {
  if (wrap.length === 0) return await runScript("phases/filter.ts", ["--config", ws.configPath]);
  const out = await new Deno.Command(wrap[0], {
    args: [
      ...wrap.slice(1),
      Deno.execPath(),
      "run",
      "-A",
      join(REPO, "phases/filter.ts"),
      "--config",
      ws.configPath,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("safeServerName: %3A and ':' become '_', so does anything outside [A-Za-z0-9._-]", () => {
  assertEquals(safeServerName("images.example.org%3A8080"), "images.example.org_8080");
  assertEquals(safeServerName("images.example.org%3a8080"), "images.example.org_8080");
  assertEquals(safeServerName("media.example.net:443"), "media.example.net_443");
  assertEquals(safeServerName("my server"), "my_server");
  assertEquals(safeServerName("bücher.de"), "b_cher.de");
  assertEquals(safeServerName("a%2Fb"), "a_2Fb");
  assertEquals(safeServerName("日本"), "__");
  for (const bad of ["", ".", ".."]) {
    let thrown: unknown;
    try {
      safeServerName(bad);
    } catch (err) {
      thrown = err;
    }
    assert(thrown instanceof ServerNameError, `refuses ${JSON.stringify(bad)}`);
  }
  const long1 = safeServerName("x".repeat(300) + "1");
  const long2 = safeServerName("x".repeat(300) + "2");
  assert(long1.length <= 200 && long2.length <= 200);
  assertNotEquals(long1, long2);
});

Deno.test("filter: plans completed partitions only, into the dataset layout, with safe names", async () => {
  const ws = await makeWorkspace();
  const servers = [
    "images.example.org%3A8080",
    "media.example.net:443",
    "with space",
    "bücher.de",
    'a,b"c',
  ];
  for (const s of servers) {
    await addPartition(ws, s, 0, { successes: 5000, errors: 50 });
    await addPartition(ws, s, 1, { successes: 7000, errors: 70 });
    await addPartition(ws, s, 2, { completed: false });
  }
  const r = await filter(ws);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(r.stdout, /15 partitions seen, 10 completed; files planned: 20 new/);
  const rows = await planned(ws);
  assertEquals(rows.length, 20);
  const expectedFolders = [
    "images.example.org_8080",
    "media.example.net_443",
    "with_space",
    "b_cher.de",
    "a_b_c",
  ];
  for (const row of rows) {
    assert(!row.srcPath.includes("partition_id=2"), "incomplete partition not planned");
    const safe = expectedFolders[servers.indexOf(row.serverName)];
    const pattern = row.kind === "successes"
      ? new RegExp(
        `^${ws.dstImages}/server=${safe.replace(/\./g, "\\.")}/data_${UUID_V4}\\.parquet$`,
      )
      : new RegExp(
        `^${ws.dstErrors}/server=${safe.replace(/\./g, "\\.")}/errors_${UUID_V4}\\.parquet$`,
      );
    assertMatch(row.dstPath, pattern);
    assertEquals(row.sizeBytes, (await Deno.stat(row.srcPath)).size);
  }
  assertEquals(new Set(rows.map((r) => r.dstPath)).size, 20, "every destination unique");
  const cp = await readCheckpoint(join(ws.tool, "tool_checkpoint.yaml"));
  assertEquals(cp.filtering_completed, true);
  assertEquals(cp.scheduling_completed, false);
  const leftovers = [...Deno.readDirSync(join(ws.tool, "filter_table"))].filter((e) =>
    e.name.startsWith(".")
  );
  assertEquals(leftovers, [], "no temporary table left");
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("filter: re-runs keep destinations, add only newly completed partitions", async () => {
  const ws = await makeWorkspace();
  for (let p = 0; p < 4; p++) await addPartition(ws, "s%3A1", p, { completed: p < 2 });
  assertEquals((await filter(ws)).code, 0);
  const first = await planned(ws);
  assertEquals(first.length, 4);
  const again = await filter(ws);
  assertEquals(again.code, 0);
  assertMatch(again.stdout, /0 new \(0 B\), 4 already planned/);
  assertMatch(again.stdout, /nothing new to plan/);
  assertEquals(await planned(ws), first, "second run changes nothing");
  await Deno.writeFile(
    join(ws.images, "server_name=s%3A1", "partition_id=2", "completed"),
    new Uint8Array(),
  );
  const third = await filter(ws);
  assertMatch(third.stdout, /files planned: 2 new .* 4 already planned/);
  const all = await planned(ws);
  assertEquals(all.length, 6);
  for (const old of first) {
    assertEquals(all.find((r) => r.srcPath === old.srcPath)?.dstPath, old.dstPath);
  }
  assertEquals(new Set(all.map((r) => r.srcPath)).size, 6, "no source planned twice");
  assertEquals(new Set(all.map((r) => r.dstPath)).size, 6);
  assertEquals(
    [...Deno.readDirSync(join(ws.tool, "filter_table"))].length,
    2,
    "one table per run that found files",
  );
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("filter: changed and vanished sources are reported and kept as planned", async () => {
  const ws = await makeWorkspace();
  const p0 = await addPartition(ws, "srv", 0);
  const p1 = await addPartition(ws, "srv", 1);
  await filter(ws);
  const before = await planned(ws);
  await Deno.writeFile(join(p0, "successes.parquet"), new Uint8Array(10));
  await Deno.remove(p1, { recursive: true });
  const r = await filter(ws);
  assertEquals(r.code, 0, r.stderr);
  assertMatch(
    r.stderr,
    /warning: changed since planned: .*partition_id=0\/successes\.parquet: planned with \d+ bytes/,
  );
  assertMatch(r.stderr, /warning: vanished: .*partition_id=1\/successes\.parquet/);
  assertMatch(r.stderr, /warning: vanished: .*partition_id=1\/errors\.parquet/);
  assertMatch(r.stdout, /1 changed, 2 vanished, 0 problems/);
  assertEquals(await planned(ws), before, "plan unchanged");
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("filter: missing files, odd entries and bad names are reported; the rest is planned; exit 3", async () => {
  const ws = await makeWorkspace();
  await addPartition(ws, "good", 0);
  const missing = await addPartition(ws, "good", 1);
  await Deno.remove(join(missing, "errors.parquet"));
  const dirFile = await addPartition(ws, "good", 2);
  await Deno.remove(join(dirFile, "successes.parquet"));
  await Deno.mkdir(join(dirFile, "successes.parquet"));
  await addPartition(ws, "..", 0);
  await addPartition(ws, "", 0);
  const outside = await Deno.makeTempDir();
  await Deno.writeFile(join(outside, "completed"), new Uint8Array());
  await Deno.writeFile(join(outside, "successes.parquet"), new Uint8Array(5));
  await Deno.symlink(outside, join(ws.images, "server_name=good", "partition_id=evil"));
  await Deno.symlink(
    join(ws.images, "server_name=good", "partition_id=0"),
    join(ws.images, "server_name=good", "partition_id=alias"),
  );
  await Deno.mkdir(join(ws.images, "server_name=good", "partition_id=bad\nname"));
  const r = await filter(ws);
  assertEquals(r.code, 3, r.stdout + r.stderr);
  assertMatch(
    r.stderr,
    /partition_id=1\/errors\.parquet: missing in a completed partition: skipped/,
  );
  assertMatch(r.stderr, /partition_id=2\/successes\.parquet: is not a regular file/);
  assertMatch(r.stderr, /server_name=\.\.: server name "\.\." gives the folder name "\.\."/);
  assertMatch(r.stderr, /server_name=: server name "" gives the folder name ""/);
  assertMatch(
    r.stderr,
    /partition_id=evil: is a symlink to .* outside the images folder .*: refused/,
  );
  assertMatch(r.stderr, /bad\\nname.*holds a line break: refused/);
  const rows = await planned(ws);
  const srcs = rows.map((x) => x.srcPath.slice(ws.images.length)).sort();
  assertEquals(srcs, [
    "/server_name=good/partition_id=0/errors.parquet",
    "/server_name=good/partition_id=0/successes.parquet",
    "/server_name=good/partition_id=1/successes.parquet",
    "/server_name=good/partition_id=2/errors.parquet",
    "/server_name=good/partition_id=alias/errors.parquet",
    "/server_name=good/partition_id=alias/successes.parquet",
  ]);
  await Deno.remove(ws.dir, { recursive: true });
  await Deno.remove(outside, { recursive: true });
});

Deno.test("filter: an unreadable folder is reported, everything readable still planned, exit 3", async () => {
  const ws = await makeWorkspace();
  await addPartition(ws, "open", 0);
  const locked = await addPartition(ws, "locked", 0);
  await Deno.chmod(locked, 0o000);
  // Root reads every folder; drop the capabilities that let it, as a user would be.
  const r = await filter(ws, [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
  ]);
  await Deno.chmod(locked, 0o755);
  assertEquals(r.code, 3, r.stdout + r.stderr);
  assertMatch(r.stderr, /server_name=locked\/partition_id=0: cannot list: permission denied/);
  assertEquals((await planned(ws)).length, 2);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("filter: a missing images folder exits 2 naming the key", async () => {
  const ws = await makeWorkspace();
  await Deno.remove(ws.images);
  const r = await filter(ws);
  assertEquals(r.code, 2);
  assertMatch(r.stderr, /key 'output_structure.images_folder': .*images is not a readable folder/);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("filter: an empty tree plans nothing and says so", async () => {
  const ws = await makeWorkspace();
  const r = await filter(ws);
  assertEquals(r.code, 0);
  assertMatch(r.stdout, /0 partitions seen, 0 completed; files planned: 0 new/);
  await Deno.remove(ws.dir, { recursive: true });
});

Deno.test("filter: paths with commas and quotes round-trip through the table", async () => {
  const ws = await makeWorkspace();
  await addPartition(ws, 'q"uote,comma', 'p,"1"');
  const config = await loadConfig(ws.configPath);
  const s = await runFilter(config);
  assertEquals(s.newFiles, 2);
  const rows = await planned(ws);
  assertEquals(rows.map((r) => r.partitionId), ['p,"1"', 'p,"1"']);
  for (const r of rows) assertEquals((await Deno.stat(r.srcPath)).isFile, true);
  await Deno.remove(ws.dir, { recursive: true });
});
