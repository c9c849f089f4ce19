/**
 * The few libc dynamic-linker calls the MPI layer needs: `dlopen` with `RTLD_GLOBAL` (Open MPI
 * loads plugins that resolve symbols from libmpi) and `dlsym` to get the address of a global
 * variable (Open MPI's predefined handles), which `Deno.dlopen`'s `statics` cannot give.
 * @module
 */

/** `RTLD_NOW` on Linux. */
export const RTLD_NOW = 0x2;
/** `RTLD_GLOBAL` on Linux. */
export const RTLD_GLOBAL = 0x100;

const LIBC_SYMBOLS = {
  dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
  dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
  dlerror: { parameters: [], result: "pointer" },
} as const;

/** A handle on libc's dynamic linker. Call `close` when done. */
export interface DynamicLinker {
  /**
   * `dlopen(name, flags)`; returns the handle, or the text of `dlerror()` when it fails.
   * The library stays loaded for the life of the process.
   */
  open(name: string, flags: number): Deno.PointerObject | string;
  /** `dlsym(handle, symbol)`: the symbol's address, or `null` when it is not defined. */
  symbol(handle: Deno.PointerObject, symbol: string): Deno.PointerValue;
  /** Closes libc's FFI binding (libraries opened through it stay loaded). */
  close(): void;
}

/** Encodes a string as a NUL-terminated C string. */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** Opens libc (`libc.so.6`) through Deno FFI and exposes `dlopen` / `dlsym`. */
export function openDynamicLinker(): DynamicLinker {
  const libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
  const lastError = (): string => {
    const text = libc.symbols.dlerror();
    return text === null ? "unknown dlopen error" : Deno.UnsafePointerView.getCString(text);
  };
  return {
    open(name, flags) {
      libc.symbols.dlerror();
      const handle = libc.symbols.dlopen(cString(name), flags);
      return handle === null ? lastError() : handle;
    },
    symbol(handle, symbol) {
      return libc.symbols.dlsym(handle, cString(symbol));
    },
    close() {
      libc.close();
    },
  };
}
