// The small part of Bun's FFI that the file lock uses; present only when running under Bun.
declare module 'bun:ffi' {
  export const FFIType: { i32: number };
  export function dlopen(
    path: string,
    symbols: Record<string, { args: number[]; returns: number }>,
  ): { symbols: Record<string, (...args: number[]) => number>; close(): void };
}
