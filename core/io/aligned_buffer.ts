/**
 * Buffers whose address is a multiple of the direct-I/O alignment, as `O_DIRECT` requires.
 * @module
 */

/**
 * Alignment of `O_DIRECT` buffers, offsets and lengths: 4096 bytes suits every Linux file system
 * and device in use (the logical block size is 512 or 4096).
 */
export const DIRECT_IO_ALIGNMENT = 4096;

/** `n` rounded up to a multiple of {@linkcode DIRECT_IO_ALIGNMENT}. */
export function alignUp(n: number): number {
  return Math.ceil(n / DIRECT_IO_ALIGNMENT) * DIRECT_IO_ALIGNMENT;
}

/**
 * A zeroed buffer of `size` bytes starting at an address that is a multiple of
 * {@linkcode DIRECT_IO_ALIGNMENT}: one alignment more is allocated and the view is offset
 * (backing stores of this size never move).
 */
export function alignedBuffer(size: number): Uint8Array<ArrayBuffer> {
  const raw = new Uint8Array(size + DIRECT_IO_ALIGNMENT);
  const address = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(raw)));
  const skip = (DIRECT_IO_ALIGNMENT - (address % DIRECT_IO_ALIGNMENT)) % DIRECT_IO_ALIGNMENT;
  return raw.subarray(skip, skip + size);
}
