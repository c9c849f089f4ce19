import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { pseudoRandomBytes } from "./support/fixture.ts";
import {
  copyAndHash,
  type CopyOptions,
  hashFile,
  TransferIoError,
  verifyCopy,
} from "../core/transfer/copy_file.ts";
import { createNodeMd5Engine } from "../core/md5/node_engine.ts";
import { type Md5Engine } from "../core/md5/engine.ts";
import { openMd5Engine } from "../core/md5/open_engine.ts";

const B = 64 * 1024;
const SIZES = [0, 1, B - 1, B, B + 1, 3 * B + 17];

/** MD5 by coreutils `md5sum`, an independent reader and implementation. */
async function md5sum(path: string): Promise<string> {
  const out = await new Deno.Command("md5sum", { args: ["-b", path], stdout: "piped" }).output();
  assert(out.success, `md5sum ${path} failed`);
  return new TextDecoder().decode(out.stdout).slice(0, 32);
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "copy_file_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

async function flipByte(path: string, offset: number): Promise<void> {
  const f = await Deno.open(path, { read: true, write: true });
  try {
    const one = new Uint8Array(1);
    await f.seek(offset, Deno.SeekMode.Start);
    await f.read(one);
    one[0] ^= 0x5a;
    await f.seek(offset, Deno.SeekMode.Start);
    await f.write(one);
  } finally {
    f.close();
  }
}

for (const engineName of ["wasm-simd", "libcrypto", "node:crypto"] as const) {
  Deno.test(`copyAndHash (${engineName}): sizes around bufferSize copy exactly`, async () => {
    const engine = openMd5Engine({ prefer: engineName });
    assertEquals(engine.name, engineName);
    try {
      await withDir(async (dir) => {
        for (const [i, size] of SIZES.entries()) {
          const src = `${dir}/src_${size}.parquet`;
          const tmp = `${dir}/dst_${size}.parquet.tmp`;
          const data = pseudoRandomBytes(size, i + 1);
          await Deno.writeFile(src, data);
          const r = await copyAndHash(src, tmp, { engine, bufferSize: B, buffers: 3 });
          const expected = await md5sum(src);
          assertEquals(r.ok, true, `size ${size}: ${r.mismatch}`);
          assertEquals(r.sizeBytes, size);
          assertEquals(r.md5Src, expected);
          assertEquals(r.md5Dst, expected);
          assertEquals(await md5sum(tmp), expected);
          assertEquals(r.verifyMode, "md5");
          assertEquals(r.bytesRead, { source: size, destination: size });
          assertEquals(r.cacheDropped, true, r.cacheDropError);
          assertEquals(await Deno.readFile(tmp), data);
          assertEquals((await Deno.stat(tmp)).mode! & 0o777, 0o666 & ~Deno.umask());
        }
      });
    } finally {
      engine.close();
    }
  });
}

Deno.test("copyAndHash: bytes mode reads the source twice and reports its MD5", async () => {
  const engine = openMd5Engine();
  try {
    await withDir(async (dir) => {
      for (const [i, size] of SIZES.entries()) {
        const src = `${dir}/src_${size}`;
        const tmp = `${dir}/tmp_${size}`;
        const data = pseudoRandomBytes(size, 100 + i);
        await Deno.writeFile(src, data);
        const r = await copyAndHash(src, tmp, { engine, bufferSize: B, verify: "bytes" });
        assertEquals(r.ok, true, r.mismatch);
        assertEquals(r.verifyMode, "bytes");
        assertEquals(r.md5Src, await md5sum(src));
        assertEquals(r.md5Dst, r.md5Src);
        assertEquals(r.bytesRead, { source: 2 * size, destination: size });
        assertEquals(await Deno.readFile(tmp), data);
      }
    });
  } finally {
    engine.close();
  }
});

Deno.test("copyAndHash: corruption after fdatasync is detected in both modes", async () => {
  const engine = openMd5Engine();
  try {
    await withDir(async (dir) => {
      const src = `${dir}/src`;
      await Deno.writeFile(src, pseudoRandomBytes(3 * B + 17, 9));
      const at = B + 5;
      const corrupt = (tmp: string) => flipByte(tmp, at);

      const md5 = await copyAndHash(src, `${dir}/t1`, {
        engine,
        bufferSize: B,
        afterWrite: corrupt,
      });
      assertEquals(md5.ok, false);
      assertMatch(md5.mismatch ?? "", /^md5 mismatch/);
      assertEquals(md5.md5Src, await md5sum(src));
      assertEquals(md5.md5Dst, await md5sum(`${dir}/t1`));
      assert(md5.md5Dst !== md5.md5Src);
      assert(await exists(`${dir}/t1`), "a mismatching temporary is left to the caller");

      const bytes = await copyAndHash(src, `${dir}/t2`, {
        engine,
        bufferSize: B,
        verify: "bytes",
        afterWrite: corrupt,
      });
      assertEquals(bytes.ok, false);
      assertEquals(bytes.md5Dst, null);
      assertMatch(bytes.mismatch ?? "", new RegExp(`^bytes differ at offset ${at} \\(source`));

      const truncated = await copyAndHash(src, `${dir}/t3`, {
        engine,
        bufferSize: B,
        verify: "bytes",
        afterWrite: (tmp) => Deno.truncate(tmp, 2 * B),
      });
      assertEquals(truncated.ok, false);
      assertMatch(
        truncated.mismatch ?? "",
        new RegExp(`offset ${2 * B} \\(destination is shorter`),
      );

      const shortMd5 = await copyAndHash(src, `${dir}/t4`, {
        engine,
        bufferSize: B,
        afterWrite: (tmp) => Deno.truncate(tmp, 2 * B),
      });
      assertEquals(shortMd5.ok, false);
      assertMatch(shortMd5.mismatch ?? "", /^size mismatch/);
    });
  } finally {
    engine.close();
  }
});

Deno.test("copyAndHash: missing source is a TransferIoError and creates nothing", async () => {
  const engine = openMd5Engine();
  try {
    await withDir(async (dir) => {
      const err = await assertRejects(
        () => copyAndHash(`${dir}/nope`, `${dir}/tmp`, { engine }),
        TransferIoError,
      );
      assertEquals([err.op, err.code, err.path], ["open-source", "ENOENT", `${dir}/nope`]);
      assertEquals(await exists(`${dir}/tmp`), false);
    });
  } finally {
    engine.close();
  }
});

Deno.test("copyAndHash: an existing temporary is neither clobbered nor removed", async () => {
  const engine = openMd5Engine();
  try {
    await withDir(async (dir) => {
      await Deno.writeFile(`${dir}/src`, pseudoRandomBytes(1000, 1));
      await Deno.writeTextFile(`${dir}/tmp`, "someone else's");
      const err = await assertRejects(
        () => copyAndHash(`${dir}/src`, `${dir}/tmp`, { engine }),
        TransferIoError,
      );
      assertEquals([err.op, err.code], ["create-tmp", "EEXIST"]);
      assertMatch(err.message, /already exists/);
      assertEquals(await Deno.readTextFile(`${dir}/tmp`), "someone else's");
    });
  } finally {
    engine.close();
  }
});

Deno.test("copyAndHash: a destination under a regular file fails with ENOTDIR", async () => {
  const engine = openMd5Engine();
  try {
    await withDir(async (dir) => {
      await Deno.writeFile(`${dir}/src`, pseudoRandomBytes(1000, 1));
      await Deno.writeTextFile(`${dir}/file`, "x");
      const err = await assertRejects(
        () => copyAndHash(`${dir}/src`, `${dir}/file/tmp`, { engine }),
        TransferIoError,
      );
      assertEquals([err.op, err.code, err.path], ["create-tmp", "ENOTDIR", `${dir}/file/tmp`]);
      assertEquals(err.exitCode, 3);
    });
  } finally {
    engine.close();
  }
});

Deno.test("copyAndHash: a write error (EFBIG) removes the temporary", async () => {
  // RLIMIT_FSIZE with SIGXFSZ ignored makes write(2) fail past 64 KiB, even for root.
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/src`, pseudoRandomBytes(4 * B, 5));
    const url = new URL("../core/transfer/copy_file.ts", import.meta.url).href;
    const md5Url = new URL("../core/md5/open_engine.ts", import.meta.url).href;
    const script = `import { copyAndHash } from "${url}";
      import { openMd5Engine } from "${md5Url}";
      try {
        await copyAndHash("${dir}/src", "${dir}/tmp", { engine: openMd5Engine(), bufferSize: 16384 });
        console.log("no error");
      } catch (e) { console.log(JSON.stringify([e.name, e.op, e.code])); }`;
    const out = await new Deno.Command("bash", {
      args: [
        "-c",
        'trap "" XFSZ; ulimit -f 64; exec "$0" eval --quiet "$1"',
        Deno.execPath(),
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    assert(out.success, new TextDecoder().decode(out.stderr));
    assertEquals(JSON.parse(stdout), ["TransferIoError", "write-tmp", "EFBIG"]);
    assertEquals(await exists(`${dir}/tmp`), false);
  });
});

/** Wraps an engine; `onUpdate` runs before each update (to fail or to change the source). */
function hookedEngine(inner: Md5Engine, onUpdate: (n: number) => Promise<void>): Md5Engine {
  let calls = 0;
  return {
    name: "hooked",
    create: () => {
      const s = inner.create();
      return {
        update: async (chunk) => {
          await onUpdate(++calls);
          await s.update(chunk);
        },
        digest: () => s.digest(),
      };
    },
    close: () => inner.close(),
  };
}

Deno.test("copyAndHash: a hashing error propagates and removes the temporary", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/src`, pseudoRandomBytes(5 * B, 2));
    const engine = hookedEngine(createNodeMd5Engine(), (n) => {
      if (n === 3) return Promise.reject(new Error("engine broke"));
      return Promise.resolve();
    });
    const err = await assertRejects(
      () => copyAndHash(`${dir}/src`, `${dir}/tmp`, { engine, bufferSize: B }),
      Error,
    );
    assertEquals(err.message, "engine broke");
    assertEquals(await exists(`${dir}/tmp`), false);
  });
});

Deno.test("copyAndHash: a source growing during the copy is reported, not verified", async () => {
  await withDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.writeFile(src, pseudoRandomBytes(3 * B, 3));
    const engine = hookedEngine(createNodeMd5Engine(), async (n) => {
      if (n === 1) await Deno.writeFile(src, new Uint8Array(100), { append: true });
    });
    const r = await copyAndHash(src, `${dir}/tmp`, { engine, bufferSize: B });
    assertEquals(r.ok, false);
    assertMatch(r.mismatch ?? "", /source changed during the copy/);
    assertEquals(r.md5Dst, null);
  });
});

for (const engineName of ["wasm-simd", "libcrypto"] as const) {
  Deno.test(`hashFile and verifyCopy (${engineName}) agree with md5sum`, async () => {
    const engine = openMd5Engine({ prefer: engineName });
    assertEquals(engine.name, engineName);
    try {
      await withDir(async (dir) => {
        const data = pseudoRandomBytes(2 * B + 3, 4);
        await Deno.writeFile(`${dir}/a`, data);
        await Deno.writeFile(`${dir}/b`, data);
        const h = await hashFile(`${dir}/a`, { engine, bufferSize: B });
        assertEquals(h, { md5: await md5sum(`${dir}/a`), sizeBytes: data.length });
        const common = { engine, md5Src: h.md5, sizeBytes: data.length, bufferSize: B };
        for (const mode of ["md5", "bytes"] as const) {
          const v = await verifyCopy(`${dir}/a`, `${dir}/b`, { ...common, mode });
          assertEquals(v.ok, true, v.mismatch);
          assertEquals(v.md5Dst, h.md5);
        }
        data[B + 7] ^= 1;
        await Deno.writeFile(`${dir}/b`, data);
        const bad = await verifyCopy(`${dir}/a`, `${dir}/b`, { ...common, mode: "md5" });
        assertEquals(bad.ok, false);
        assertMatch(bad.mismatch ?? "", /md5 mismatch/);
        assertEquals(bad.md5Dst, await md5sum(`${dir}/b`));
      });
    } finally {
      engine.close();
    }
  });
}

Deno.test("copyAndHash: bad buffer options are rejected before touching files", async () => {
  const engine = createNodeMd5Engine();
  const bad: Partial<CopyOptions>[] = [{ bufferSize: 0 }, { buffers: 1 }, { bufferSize: 1.5 }];
  for (const opts of bad) {
    await assertRejects(
      () => copyAndHash("/nonexistent", "/nonexistent.tmp", { engine, ...opts }),
      RangeError,
    );
  }
});
