/**
 * The libc binding and what the transfer builds on it, on real files: errno arrives as typed
 * errors (from the pool thread's calls too), sources open only inside the images folder (with
 * `openat2` and without), destination folders are created once and a symlinked one is refused.
 * @module
 */

import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { pseudoRandomBytes } from "./support/fixture.ts";
import { AT_FDCWD, type Libc, openLibc } from "../core/io/libc.ts";
import { FileHandle } from "../core/io/file_handle.ts";
import { DirectoryHandle } from "../core/io/directory_handle.ts";
import {
  AlreadyExistsError,
  IoError,
  NotADirectoryError,
  NotFoundError,
  SymlinkError,
} from "../core/io/io_errors.ts";
import { SourceRefusedError, SourceTree } from "../core/transfer/source_tree.ts";
import {
  DestinationFolders,
  DestinationRefusedError,
} from "../core/transfer/destination_folders.ts";
import { hashFile } from "../core/transfer/hash_file.ts";
import { createNodeMd5Engine } from "../core/md5/node_engine.ts";

async function withLibc(fn: (libc: Libc, dir: string) => Promise<void>): Promise<void> {
  const libc = openLibc();
  const dir = await Deno.makeTempDir({ prefix: "io_test_" });
  try {
    await fn(libc, dir);
  } finally {
    libc.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("libc: errno of calls made on the pool thread arrives as typed errors", async () => {
  await withLibc(async (libc, dir) => {
    const f = libc.flags;
    const missing = await assertRejects(
      () => libc.openAt(AT_FDCWD, `${dir}/nope`, f.RDONLY),
      NotFoundError,
    );
    assert(missing instanceof IoError);
    assertEquals([missing.call, missing.code, missing.path], ["openat", "ENOENT", `${dir}/nope`]);
    assertMatch(missing.message, /No such file or directory/);

    await Deno.writeTextFile(`${dir}/taken`, "x");
    await assertRejects(
      () => libc.openAt(AT_FDCWD, `${dir}/taken`, f.RDWR | f.CREAT | f.EXCL),
      AlreadyExistsError,
    );
    // pread on a folder fails on the pool thread with EISDIR; repeated here, errno is read.
    const folder = await libc.openAt(AT_FDCWD, dir, f.RDONLY | f.DIRECTORY);
    const isDir = await assertRejects(
      () => libc.pread(folder, new Uint8Array(16), 0, dir),
      IoError,
    );
    assertEquals([isDir.call, isDir.code], ["pread", "EISDIR"]);
    libc.closeFd(folder);
  });
});

Deno.test("libc: fstat agrees with Deno.stat; reads and writes are positional", async () => {
  await withLibc(async (libc, dir) => {
    const path = `${dir}/f`;
    const data = pseudoRandomBytes(100_000, 1);
    await Deno.writeFile(path, data);
    const f = libc.flags;
    const file = new FileHandle(libc, await libc.openAt(AT_FDCWD, path, f.RDWR), path);
    try {
      const st = file.stat();
      const info = await Deno.stat(path);
      assertEquals([st.size, st.isFile, st.isDirectory], [info.size, true, false]);
      assertEquals(Math.floor(st.mtimeMs), info.mtime!.getTime());
      assertEquals(st.mode & 0o777, info.mode! & 0o777);
      const buf = new Uint8Array(1000);
      assertEquals(await file.readFull(buf, 99_500), 500);
      assertEquals(buf.subarray(0, 500), data.subarray(99_500));
      await file.writeAll(new Uint8Array([1, 2, 3]), 100_000);
      assertEquals(file.stat().size, 100_003);
      assertEquals(
        await file.readRange(99_998, 10),
        new Uint8Array([...data.subarray(99_998), 1, 2, 3]),
      );
    } finally {
      file.close();
    }
    // In direct mode too, through an aligned buffer: any offset and length.
    const direct = new FileHandle(libc, await libc.openAt(AT_FDCWD, path, f.RDONLY), path);
    try {
      assertEquals(direct.enableDirect(), true);
      for (const [at, n] of [[0, 4], [5, 10_000], [4095, 2], [99_990, 100]]) {
        assertEquals(await direct.readRange(at, n), (await Deno.readFile(path)).slice(at, at + n));
      }
    } finally {
      direct.close();
    }
  });
});

Deno.test("libc: a folder handle links without replacing, and refuses a symlinked folder", async () => {
  await withLibc(async (libc, dir) => {
    await Deno.mkdir(`${dir}/d`);
    const d = await DirectoryHandle.open(libc, `${dir}/d`);
    try {
      const tmp = await d.create(".t");
      await tmp.writeAll(new TextEncoder().encode("new"), 0);
      tmp.close();
      await Deno.writeTextFile(`${dir}/d/final`, "old");
      await assertRejects(() => d.link(".t", "final"), AlreadyExistsError);
      assertEquals(await Deno.readTextFile(`${dir}/d/final`), "old");
      await d.link(".t", "other");
      await d.unlink(".t");
      assertEquals(await Deno.readTextFile(`${dir}/d/other`), "new");
      await Deno.symlink(`${dir}/d/other`, `${dir}/d/link`);
      await assertRejects(() => d.openRead("link"), SymlinkError);
    } finally {
      d.close();
    }
    await Deno.symlink(`${dir}/d`, `${dir}/linked`);
    await assertRejects(() => DirectoryHandle.open(libc, `${dir}/linked`), NotADirectoryError);
  });
});

/** A tree: images/{s/p/file, s/inside -> p (relative), s/abs -> p (absolute), evil -> outside}. */
async function tree(dir: string) {
  const images = `${dir}/images`;
  const outside = `${dir}/outside`;
  await Deno.mkdir(`${images}/s/p`, { recursive: true });
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${images}/s/p/file`, "inside");
  await Deno.writeTextFile(`${outside}/file`, "outside");
  await Deno.symlink("p", `${images}/s/inside`);
  await Deno.symlink(`${images}/s/p`, `${images}/s/abs`);
  await Deno.symlink(outside, `${images}/evil`);
  await Deno.symlink(`${images}/s/p/file`, `${images}/s/p/link`);
  await Deno.mkdir(`${images}/s/p/folder`);
  return images;
}

for (const openat2 of [true, false]) {
  Deno.test(`SourceTree (openat2 ${openat2 ? "on" : "off"}): opens inside the images folder only`, async () => {
    await withLibc(async (libc, dir) => {
      const images = await tree(dir);
      const sources = await SourceTree.open(libc, images, { openat2 });
      try {
        for (const p of ["s/p/file", "s/inside/file", "s/abs/file"]) {
          const h = await sources.openFile(`${images}/${p}`);
          const buf = new Uint8Array(6);
          assertEquals(await h.readFull(buf, 0), 6, p);
          assertEquals(new TextDecoder().decode(buf), "inside");
          h.close();
        }
        const refused = async (p: string, why: RegExp) => {
          const err = await assertRejects(
            () => sources.openFile(`${images}/${p}`),
            SourceRefusedError,
          );
          assertMatch(err.message, why);
          assertEquals(err.exitCode, 3);
        };
        await refused("s/p/gone", /^source .*\/s\/p\/gone is gone \(ENOENT: no such file\)$/);
        await refused("s/p/link", /is not a regular file any more$/);
        await refused("s/p/folder", /is not a regular file any more$/);
        await refused(
          "evil/file",
          /^source .*\/images\/evil\/file resolves to .*\/outside\/file, outside the images folder .*: refused/,
        );
      } finally {
        sources.close();
      }
    });
  });
}

Deno.test("DestinationFolders: creates a missing folder once (umask applies), refuses a symlinked one", async () => {
  await withLibc(async (libc, dir) => {
    const folders = new DestinationFolders(libc, 1);
    const umask = Deno.umask(0o027);
    try {
      const made = `${dir}/a/b/server=x`;
      const names = await Promise.all(
        [1, 2, 3].map((i) =>
          folders.use(made, async (d) => {
            const f = await d.create(`f${i}`);
            f.close();
            return d.fd;
          })
        ),
      );
      assertEquals(new Set(names).size, 1, "one descriptor for the folder");
      assertEquals((await Deno.stat(made)).mode! & 0o777, 0o750);
      assertEquals([...Deno.readDirSync(made)].length, 3);
      await Deno.mkdir(`${dir}/elsewhere`);
      await Deno.symlink(`${dir}/elsewhere`, `${dir}/a/b/server=linked`);
      for (let i = 0; i < 2; i++) {
        const err = await assertRejects(
          () => folders.use(`${dir}/a/b/server=linked`, () => Promise.resolve()),
          DestinationRefusedError,
        );
        assertMatch(
          err.message,
          /^destination folder .*server=linked is a symlink: refused \(never followed\)$/,
        );
      }
      assertEquals([...Deno.readDirSync(`${dir}/elsewhere`)], []);
    } finally {
      Deno.umask(umask);
      await folders.close();
    }
  });
});

Deno.test("hashFile: agrees with md5sum and never reads through a symlink", async () => {
  await withLibc(async (libc, dir) => {
    const data = pseudoRandomBytes(300_001, 7);
    await Deno.writeFile(`${dir}/f`, data);
    await Deno.symlink(`${dir}/f`, `${dir}/l`);
    const engine = createNodeMd5Engine();
    const out = await new Deno.Command("md5sum", { args: [`${dir}/f`], stdout: "piped" }).output();
    const expected = new TextDecoder().decode(out.stdout).slice(0, 32);
    assertEquals(await hashFile(libc, `${dir}/f`, { engine, bufferSize: 65536 }), {
      md5: expected,
      sizeBytes: data.length,
    });
    await assertRejects(
      () => hashFile(libc, `${dir}/l`, { engine, bufferSize: 65536 }),
      SymlinkError,
    );
    engine.close();
  });
});
