/**
 * nftables in-process, through libnftables (the library the `nft` command
 * is built on, from the same Debian package). A context keeps its netlink
 * socket and its copy of the ruleset between transactions, so a small
 * change costs a few milliseconds instead of the 30-40 ms the `nft`
 * command spends starting and listing a large table (docs/benchmarks.md).
 *
 * A context belongs to the network namespace it was opened in (its socket
 * is made there), whatever thread later uses it. Transactions run on
 * libuv's thread pool, so a large load does not stall the event loop, and
 * one context runs one transaction at a time.
 */
import { type Libc, inNetns, libc } from './libc.js';
import { nftApplyAsync } from './nft.js';

type Pointer = unknown;

interface Binding {
  ctxNew(flags: number): Pointer;
  ctxFree(ctx: Pointer): void;
  bufferOutput(ctx: Pointer): number;
  bufferError(ctx: Pointer): number;
  errorBuffer(ctx: Pointer): string | null;
  outputBuffer(ctx: Pointer): string | null;
  run(ctx: Pointer, script: string, done: (error: unknown, rc: number) => void): void;
}

let binding: Promise<Binding> | undefined;

async function load(): Promise<Binding> {
  const koffi = (await import('koffi')).default;
  const lib = koffi.load('libnftables.so.1');
  const run = lib.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)');
  return {
    ctxNew: lib.func('void *nft_ctx_new(uint32_t flags)') as Binding['ctxNew'],
    ctxFree: lib.func('void nft_ctx_free(void *ctx)') as Binding['ctxFree'],
    bufferOutput: lib.func('int nft_ctx_buffer_output(void *ctx)') as Binding['bufferOutput'],
    bufferError: lib.func('int nft_ctx_buffer_error(void *ctx)') as Binding['bufferError'],
    errorBuffer: lib.func(
      'const char *nft_ctx_get_error_buffer(void *ctx)',
    ) as Binding['errorBuffer'],
    outputBuffer: lib.func(
      'const char *nft_ctx_get_output_buffer(void *ctx)',
    ) as Binding['outputBuffer'],
    run: (ctx, script, done) => {
      (run.async as (...args: unknown[]) => void)(ctx, script, done);
    },
  };
}

export class NftError extends Error {
  constructor(readonly detail: string) {
    super(`nft: ${detail.trim() || 'the transaction failed'}`);
    this.name = 'NftError';
  }
}

export class NftContext {
  readonly #lib: Binding;
  #ctx: Pointer;
  #busy: Promise<unknown> = Promise.resolve();

  private constructor(lib: Binding, ctx: Pointer) {
    this.#lib = lib;
    this.#ctx = ctx;
  }

  /** A context in this thread's namespace, or in the one at `netns`; throws when libnftables is missing. */
  static async open(netns?: string): Promise<NftContext> {
    binding ??= load();
    const lib = await binding;
    const c: Libc = await libc();
    const ctx = netns ? inNetns(c, netns, () => lib.ctxNew(0)) : lib.ctxNew(0);
    if (!ctx) throw new Error('nft_ctx_new failed');
    lib.bufferOutput(ctx);
    lib.bufferError(ctx);
    return new NftContext(lib, ctx);
  }

  /** Runs a script (one transaction, like `nft -f`); resolves to what it printed. */
  run(script: string): Promise<string> {
    const next = this.#busy.then(
      () =>
        new Promise<string>((resolve, reject) => {
          if (this.#ctx === null) {
            reject(new Error('The nft context is closed'));
            return;
          }
          this.#lib.run(this.#ctx, script, (error, rc) => {
            const output = this.#lib.outputBuffer(this.#ctx) ?? '';
            const detail = this.#lib.errorBuffer(this.#ctx) ?? '';
            if (error)
              reject(error instanceof Error ? error : new Error('libnftables could not be called'));
            else if (rc !== 0) reject(new NftError(detail));
            else resolve(output);
          });
        }),
    );
    this.#busy = next.catch(() => undefined);
    return next;
  }

  /** Frees the context once its last transaction is over; closing twice does nothing. */
  async close(): Promise<void> {
    await this.#busy;
    if (this.#ctx === null) return;
    this.#lib.ctxFree(this.#ctx);
    this.#ctx = null;
  }
}

/**
 * Applies scripts in the current namespace: in-process when libnftables
 * loads, else with the `nft` command (same semantics, slower).
 */
export class NftRunner {
  #context: Promise<NftContext | undefined> | undefined;

  constructor(private readonly log?: (line: string) => void) {}

  async apply(script: string): Promise<void> {
    this.#context ??= NftContext.open().catch((error: unknown) => {
      this.log?.(
        `libnftables is not usable (${error instanceof Error ? error.message : String(error)}); using the nft command`,
      );
      return undefined;
    });
    const context = await this.#context;
    if (context) await context.run(script);
    else await nftApplyAsync(script);
  }

  async close(): Promise<void> {
    const context = await this.#context;
    await context?.close();
  }
}
