/**
 * The block device holding a folder, and the bytes read from it so far (`/proc/diskstats`):
 * device reads per byte transferred count what really came from storage, whatever process
 * read it.
 * @module
 */

import { basename } from "node:path";

/** A block device as `/proc/diskstats` names it, and the mount that led to it. */
export interface BlockDevice {
  /** Kernel name: `vda`, `sda2` (a partition has counters of its own), `nvme0n1p1`, `dm-0`. */
  name: string;
  /** Mount point holding the folder. */
  mountPoint: string;
  /** File system type of that mount. */
  fsType: string;
  /** Mount source as `/proc/self/mountinfo` gives it (`/dev/vda`, `/dev/mapper/vg-root`). */
  source: string;
}

/** No block device holds the folder (tmpfs, overlay, a network file system, ...). */
export class NoBlockDeviceError extends Error {
  /** Creates the error for `path` on the mount `mount`. */
  constructor(path: string, mount: string) {
    super(
      `bench: no block device holds ${path} (${mount}); device reads per byte are not measured`,
    );
    this.name = new.target.name;
  }
}

const DISKSTATS = "/proc/diskstats";
const SECTOR_BYTES = 512;

interface Mount {
  majorMinor: string;
  mountPoint: string;
  fsType: string;
  source: string;
}

/** Undoes the octal escapes (`\040` for a space) of `/proc/self/mountinfo`. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

function parseMountinfo(text: string): Mount[] {
  const out: Mount[] = [];
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (right === undefined) continue;
    const l = left.split(" ");
    const r = right.split(" ");
    out.push({
      majorMinor: l[2],
      mountPoint: unescapeMountField(l[4]),
      fsType: r[0],
      source: unescapeMountField(r[1]),
    });
  }
  return out;
}

function diskstatsNames(text: string): Set<string> {
  return new Set(text.split("\n").map((l) => l.trim().split(/\s+/)[2]).filter(Boolean));
}

function within(path: string, mountPoint: string): boolean {
  return mountPoint === "/" || path === mountPoint || path.startsWith(mountPoint + "/");
}

/** Kernel name of the device `major:minor`, from sysfs, or null. */
async function sysfsName(majorMinor: string): Promise<string | null> {
  const text = await Deno.readTextFile(`/sys/dev/block/${majorMinor}/uevent`).catch(() => null);
  return text === null ? null : /^DEVNAME=(.+)$/m.exec(text)?.[1] ?? null;
}

/**
 * Finds the block device holding the existing folder `path`: the mount with the longest mount
 * point containing it (the last one mounted there wins), then its device number through sysfs,
 * else its source device (`/dev/mapper/x` resolved to `dm-N`). Throws
 * {@linkcode NoBlockDeviceError} when neither is in `/proc/diskstats`.
 */
export async function blockDeviceOf(path: string): Promise<BlockDevice> {
  const real = await Deno.realPath(path);
  const mounts = parseMountinfo(await Deno.readTextFile("/proc/self/mountinfo"));
  let mount: Mount | undefined;
  for (const m of mounts) {
    if (within(real, m.mountPoint) && m.mountPoint.length >= (mount?.mountPoint.length ?? 0)) {
      mount = m;
    }
  }
  if (mount === undefined) throw new NoBlockDeviceError(path, "no mount found");
  const names = diskstatsNames(await Deno.readTextFile(DISKSTATS));
  const candidates = [await sysfsName(mount.majorMinor)];
  if (mount.source.startsWith("/dev/")) {
    candidates.push(basename(await Deno.realPath(mount.source).catch(() => mount.source)));
  }
  const name = candidates.find((c) => c !== null && names.has(c));
  if (name === undefined || name === null) {
    throw new NoBlockDeviceError(
      path,
      `${mount.fsType} mounted at ${mount.mountPoint} from ${mount.source}`,
    );
  }
  return { name, mountPoint: mount.mountPoint, fsType: mount.fsType, source: mount.source };
}

/**
 * Bytes read from `device` since boot: its "sectors read" field of `/proc/diskstats`, in
 * 512-byte sectors whatever the device's own sector size.
 */
export async function bytesRead(device: BlockDevice): Promise<number> {
  for (const line of (await Deno.readTextFile(DISKSTATS)).split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[2] === device.name) return Number(f[5]) * SECTOR_BYTES;
  }
  throw new Error(`bench: ${device.name} is no longer in ${DISKSTATS}`);
}
