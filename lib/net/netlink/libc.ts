// The few libc calls twill makes directly, through Deno FFI. Opened on first use and kept for the
// life of the process. FFI calls run on the JS main thread, so setns() here moves exactly the
// thread that later calls socket().

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Libc | undefined;

export function libc(): Libc {
  if (!lib) {
    try {
      lib = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    } catch (e) {
      throw new Error(
        `cannot load libc.so.6 through FFI (${(e as Error).message}); run with --allow-ffi (-A)`,
      );
    }
  }
  return lib;
}

/** errno of the last failed libc call on this thread. */
export function errno(): number {
  const p = libc().__errno_location();
  return p ? new Deno.UnsafePointerView(p).getInt32(0) : 0;
}

export function strerror(code: number): string {
  const p = libc().strerror(code);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${code}`;
}

/** An Error carrying errno, with libc's text for it. */
export class SyscallError extends Error {
  constructor(readonly call: string, readonly errno: number, what = "") {
    super(`${call}${what ? ` ${what}` : ""}: ${strerror(errno)}`);
  }
}

export function cstring(s: string): Uint8Array {
  const raw = new TextEncoder().encode(s);
  const b = new Uint8Array(raw.length + 1);
  b.set(raw);
  return b;
}
