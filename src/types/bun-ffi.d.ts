// The small part of Bun's FFI that src/kernel/libc.ts uses; present only when running under Bun.
declare module 'bun:ffi' {
  export const FFIType: { i32: number; u64: number; ptr: number };
  export function dlopen(
    path: string,
    symbols: Record<string, { args: number[]; returns: number }>,
  ): { symbols: Record<string, (...args: unknown[]) => unknown>; close(): void };
  export const read: { i32(pointer: unknown, offset: number): number };
}
