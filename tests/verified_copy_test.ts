/**
 * The per-file pipeline on real files: copies are exact and hashed once, every range is read
 * back from storage (the process's storage reads count it), a copy changed on storage between
 * write and read-back is caught, on a file system with `O_DIRECT` and on one without.
 * @module
 */

import { assert, assertEquals, assertMatch, assertRejects } from "./support/assert.ts";
import { pseudoRandomBytes } from "./support/fixture.ts";
import { type ByteRange, copyVerified } from "../core/transfer/verified_copy.ts";
import { BufferBudget } from "../core/transfer/buffer_budget.ts";
import { AT_FDCWD, type Libc, openLibc } from "../core/io/libc.ts";
import { FileHandle } from "../core/io/file_handle.ts";
import { IoError } from "../core/io/io_errors.ts";
import type { Md5Engine } from "../core/md5/engine.ts";
import { createNodeMd5Engine } from "../core/md5/node_engine.ts";
import { openMd5Engine } from "../core/md5/open_engine.ts";

const B = 64 * 1024;
const SIZES = [0, 1, 4095, 4096, B - 1, B, B + 1, 3 * B + 17];

/** MD5 by coreutils `md5sum`, an independent reader and implementation. */
async function md5sum(path: string): Promise<string> {
  const out = await new Deno.Command("md5sum", { args: ["-b", path], stdout: "piped" }).output();
  assert(out.success, `md5sum ${path} failed`);
  return new TextDecoder().decode(out.stdout).slice(0, 32);
}

/** A fresh folder on a disk-backed file system (`/var/tmp`), removed afterwards. */
async function withDir(fn: (dir: string) => Promise<void>, parent = "/var/tmp"): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: parent, prefix: "verified_copy_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs `fn` with the libc binding and a fresh folder under /var/tmp; closes and removes both. */
async function withLibcDir(fn: (libc: Libc, dir: string) => Promise<void>): Promise<void> {
  const libc = openLibc();
  try {
    await withDir((dir) => fn(libc, dir));
  } finally {
    libc.close();
  }
}

/** Mounts a ramfs (a file system that refuses `O_DIRECT`) for `fn`; the tests run as root. */
async function withRamfs(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "verified_copy_ramfs_" });
  const m = await new Deno.Command("mount", { args: ["-t", "ramfs", "ramfs", dir] }).output();
  assert(m.success, `mount ramfs on ${dir}: ${new TextDecoder().decode(m.stderr)}`);
  try {
    await fn(dir);
  } finally {
    await new Deno.Command("umount", { args: [dir] }).output();
    await Deno.remove(dir, { recursive: true });
  }
}

interface Copy {
  src: string;
  tmp: string;
  engine?: Md5Engine;
  budget?: BufferBudget;
  direct?: boolean;
  beforeReadBack?: (range: ByteRange, tmp: string) => Promise<void> | void;
}

/**
 * Opens `src`, creates `tmp` and opens it again for the read-back, with `O_DIRECT` unless
 * `direct` is false or the file system refuses it, and runs the pipeline as the transfer does.
 */
async function copy(libc: Libc, c: Copy) {
  const f = libc.flags;
  const open = async (path: string, flags: number) =>
    new FileHandle(libc, await libc.openAt(AT_FDCWD, path, flags | f.CLOEXEC), path);
  const src = await open(c.src, f.RDONLY);
  const writer = await open(c.tmp, f.RDWR | f.CREAT | f.EXCL);
  let reader = writer;
  if (c.direct ?? true) {
    src.enableDirect();
    reader = await open(c.tmp, f.RDONLY);
    if (!reader.enableDirect()) {
      reader.close();
      reader = writer;
    }
  }
  const engine = c.engine ?? createNodeMd5Engine();
  try {
    const result = await copyVerified(src, { writer, reader }, {
      libc,
      engine,
      budget: c.budget ?? new BufferBudget(B, 3),
      beforeReadBack: c.beforeReadBack ? (r) => c.beforeReadBack!(r, c.tmp) : undefined,
    });
    return { result, direct: reader.direct };
  } finally {
    src.close();
    writer.close();
    if (reader !== writer) reader.close();
    if (c.engine === undefined) engine.close();
  }
}

/** Changes one byte of `path` on storage (written through another descriptor and synced). */
async function flipOnStorage(path: string, offset: number): Promise<void> {
  const file = await Deno.open(path, { read: true, write: true });
  try {
    const one = new Uint8Array(1);
    await file.seek(offset, Deno.SeekMode.Start);
    assertEquals(await file.read(one), 1);
    one[0] ^= 0x5a;
    await file.seek(offset, Deno.SeekMode.Start);
    await file.write(one);
    await file.syncData();
  } finally {
    file.close();
  }
}

/** Bytes this process has caused to be read from storage (`read_bytes` of /proc/self/io). */
async function storageReads(): Promise<number> {
  const text = await Deno.readTextFile("/proc/self/io");
  return Number(/^read_bytes: (\d+)$/m.exec(text)![1]);
}

for (const engineName of ["wasm-simd", "libcrypto", "node:crypto"] as const) {
  Deno.test(`copyVerified (${engineName}): sizes around the buffer and the alignment copy exactly`, async () => {
    const libc = openLibc();
    const engine = openMd5Engine({ prefer: engineName });
    assertEquals(engine.name, engineName);
    try {
      await withDir(async (dir) => {
        for (const [i, size] of SIZES.entries()) {
          const src = `${dir}/src_${size}.parquet`;
          const tmp = `${dir}/tmp_${size}`;
          const data = pseudoRandomBytes(size, i + 1);
          await Deno.writeFile(src, data);
          const { result: r, direct } = await copy(libc, { src, tmp, engine });
          const expected = await md5sum(src);
          assertEquals(direct, true, "the copy on ext4 or xfs is read back with O_DIRECT");
          assertEquals(r.ok, true, `size ${size}: ${r.mismatch}`);
          assertEquals(r.sizeBytes, size);
          assertEquals(r.md5Src, expected);
          assertEquals(r.md5Dst, expected);
          assertEquals(r.bytesRead, { source: size, destination: size });
          assertEquals(await Deno.readFile(tmp), data);
          assertEquals(await md5sum(tmp), expected);
        }
      });
    } finally {
      engine.close();
      libc.close();
    }
  });
}

Deno.test("copyVerified: the read-back comes from storage, not from the page cache", async () => {
  await withLibcDir(async (libc, dir) => {
    const size = 8 * B + 100;
    const src = `${dir}/src`;
    await Deno.writeFile(src, pseudoRandomBytes(size, 3));
    // The source was just written: its pages are in the page cache. A read-back answered by
    // the page cache would add nothing to this process's storage reads.
    const before = await storageReads();
    const { result } = await copy(libc, { src, tmp: `${dir}/tmp` });
    const read = (await storageReads()) - before;
    assertEquals(result.ok, true, result.mismatch);
    assert(read >= 2 * size, `storage reads ${read} bytes for ${size} copied (source + copy)`);
    // Without O_DIRECT (the fallback where a file system refuses it), each range is synced
    // and dropped from the page cache before it is read back: storage answers again.
    const again = await storageReads();
    const buffered = await copy(libc, { src, tmp: `${dir}/tmp2`, direct: false });
    const readBack = (await storageReads()) - again;
    assertEquals(buffered.result.ok, true, buffered.result.mismatch);
    assert(readBack >= size, `storage reads ${readBack} bytes for ${size} read back`);
  });
});

for (const fs of ["ext4-or-xfs", "ramfs"] as const) {
  const within = fs === "ramfs" ? withRamfs : withDir;
  Deno.test(`copyVerified (${fs}): a byte changed on storage before read-back is caught`, async () => {
    const libc = openLibc();
    try {
      await within(async (dir) => {
        const size = 4 * B + 17;
        const src = `${dir}/src`;
        await Deno.writeFile(src, pseudoRandomBytes(size, 9));
        for (const at of [0, B + 5, size - 1]) {
          const tmp = `${dir}/tmp_${at}`;
          const seen: ByteRange[] = [];
          const { result, direct } = await copy(libc, {
            src,
            tmp,
            beforeReadBack: async (range, path) => {
              seen.push(range);
              if (at >= range.offset && at < range.offset + range.length) {
                await flipOnStorage(path, at);
              }
            },
          });
          assertEquals(direct, fs !== "ramfs");
          assertEquals(result.ok, false);
          assertEquals(result.md5Dst, null);
          assertMatch(
            result.mismatch ?? "",
            new RegExp(`^bytes differ at offset ${at} \\(source 0x[0-9a-f]{2}, copy on storage`),
          );
          assert(seen.length >= 1, "the hook saw the range");
        }
        const clean = await copy(libc, { src, tmp: `${dir}/tmp_clean` });
        assertEquals(clean.result.ok, true, clean.result.mismatch);
        assertEquals(clean.direct, fs !== "ramfs");
        assertEquals(clean.result.md5Dst, await md5sum(src));
      });
    } finally {
      libc.close();
    }
  });
}

Deno.test("copyVerified: a copy cut short on storage before read-back is caught", async () => {
  await withLibcDir(async (libc, dir) => {
    const size = 3 * B + 17;
    const src = `${dir}/src`;
    await Deno.writeFile(src, pseudoRandomBytes(size, 4));
    for (const cut of [B + 3, size - 1]) {
      const { result } = await copy(libc, {
        src,
        tmp: `${dir}/tmp_${cut}`,
        budget: new BufferBudget(B, 1),
        beforeReadBack: async (range, path) => {
          if (cut >= range.offset && cut < range.offset + range.length) {
            await Deno.truncate(path, cut);
          }
        },
      });
      assertEquals(result.ok, false);
      assertMatch(result.mismatch ?? "", new RegExp(`the copy on storage ends at offset ${cut}`));
    }
  });
});

Deno.test("copyVerified: bytes appended to the copy on storage are caught", async () => {
  await withLibcDir(async (libc, dir) => {
    const src = `${dir}/src`;
    await Deno.writeFile(src, pseudoRandomBytes(2 * B, 5));
    const { result } = await copy(libc, {
      src,
      tmp: `${dir}/tmp`,
      budget: new BufferBudget(B, 1),
      beforeReadBack: async (range, path) => {
        if (range.offset === B) await Deno.writeFile(path, new Uint8Array(10), { append: true });
      },
    });
    assertEquals(result.ok, false);
    assertMatch(
      result.mismatch ?? "",
      /the copy on storage has 131082 bytes, 131072 were written/,
    );
  });
});

Deno.test("copyVerified: a source that changes during the copy is reported, not verified", async () => {
  await withLibcDir(async (libc, dir) => {
    const src = `${dir}/src`;
    await Deno.writeFile(src, pseudoRandomBytes(3 * B, 3));
    const grown = await copy(libc, {
      src,
      tmp: `${dir}/t1`,
      beforeReadBack: async (range) => {
        if (range.offset === 0) await Deno.writeFile(src, new Uint8Array(100), { append: true });
      },
    });
    assertEquals(grown.result.ok, false);
    assertMatch(grown.result.mismatch ?? "", /source changed during the copy/);
    assertEquals(grown.result.md5Dst, null);
    const shrunk = await copy(libc, {
      src,
      tmp: `${dir}/t2`,
      budget: new BufferBudget(B, 1),
      beforeReadBack: async (range) => {
        if (range.offset === 0) await Deno.truncate(src, B + 10);
      },
    });
    assertEquals(shrunk.result.ok, false);
    assertMatch(
      shrunk.result.mismatch ?? "",
      /source changed during the copy \(size 196708 at open, 65546 read/,
    );
  });
});

Deno.test("copyVerified: memory is the budget's: ranges in flight never exceed its pairs, files share it", async () => {
  await withLibcDir(async (libc, dir) => {
    const size = 10 * B + 1;
    await Deno.writeFile(`${dir}/a`, pseudoRandomBytes(size, 1));
    await Deno.writeFile(`${dir}/b`, pseudoRandomBytes(size, 2));
    const budget = new BufferBudget(B, 2);
    let inFlight = 0;
    let most = 0;
    const hook = async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 1));
      inFlight--;
    };
    const [a, b] = await Promise.all([
      copy(libc, { src: `${dir}/a`, tmp: `${dir}/ta`, budget, beforeReadBack: hook }),
      copy(libc, { src: `${dir}/b`, tmp: `${dir}/tb`, budget, beforeReadBack: hook }),
    ]);
    assertEquals([a.result.ok, b.result.ok], [true, true]);
    assert(most <= 2, `${most} ranges in flight with a budget of 2 pairs`);
    assertEquals(await md5sum(`${dir}/tb`), await md5sum(`${dir}/b`));
  });
});

Deno.test("copyVerified: a hashing error propagates once the ranges in flight settle", async () => {
  await withLibcDir(async (libc, dir) => {
    await Deno.writeFile(`${dir}/src`, pseudoRandomBytes(5 * B, 2));
    const inner = createNodeMd5Engine();
    let calls = 0;
    const engine: Md5Engine = {
      name: "failing",
      create: () => {
        const s = inner.create();
        return {
          update: (chunk) =>
            ++calls === 3 ? Promise.reject(new Error("engine broke")) : s.update(chunk),
          digest: () => s.digest(),
        };
      },
      close: () => inner.close(),
    };
    const err = await assertRejects(
      () => copy(libc, { src: `${dir}/src`, tmp: `${dir}/tmp`, engine }),
      Error,
    );
    assertEquals(err.message, "engine broke");
    engine.close();
  });
});

Deno.test("copyVerified: a write refused by the system (EFBIG past ulimit -f) throws its IoError", async () => {
  // RLIMIT_FSIZE with SIGXFSZ ignored makes write(2) stop short at 64 KiB, then fail, even
  // for root: a real short write followed by the error.
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/src`, pseudoRandomBytes(4 * B, 5));
    const url = (p: string) => new URL(p, import.meta.url).href;
    const script = `
      import { copyVerified } from "${url("../core/transfer/verified_copy.ts")}";
      import { BufferBudget } from "${url("../core/transfer/buffer_budget.ts")}";
      import { AT_FDCWD, openLibc } from "${url("../core/io/libc.ts")}";
      import { FileHandle } from "${url("../core/io/file_handle.ts")}";
      import { IoError } from "${url("../core/io/io_errors.ts")}";
      import { createNodeMd5Engine } from "${url("../core/md5/node_engine.ts")}";
      const libc = openLibc();
      const f = libc.flags;
      const open = async (p, flags) => new FileHandle(libc, await libc.openAt(AT_FDCWD, p, flags), p);
      const src = await open("${dir}/src", f.RDONLY);
      const tmp = await open("${dir}/tmp", f.RDWR | f.CREAT | f.EXCL);
      try {
        await copyVerified(src, { writer: tmp, reader: tmp }, { libc, engine: createNodeMd5Engine(),
          budget: new BufferBudget(12288, 2) });
        console.log("no error");
      } catch (e) { console.log(JSON.stringify([e instanceof IoError, e.call, e.code])); }`;
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
    assertEquals(JSON.parse(stdout), [true, "pwrite", "EFBIG"]);
  });
});

Deno.test("copyVerified: an IoError names the call, the path and the system's reason", () => {
  const err = new IoError("pwrite", "/x/y", 28, "No space left on device");
  assertEquals(err.code, "ENOSPC");
  assertEquals(err.exitCode, 3);
  assertMatch(err.message, /^pwrite failed for \/x\/y: ENOSPC: No space left on device \(no space/);
});
