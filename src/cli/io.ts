/** Where a command writes and reads: the process's streams, or a test's buffers. */
export interface Output {
  write(text: string): unknown;
}

export interface Io {
  out: Output;
  err: Output;
  /** The whole of standard input (`apply -f -`). */
  readStdin(): string;
}
