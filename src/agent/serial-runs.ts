/**
 * Runs of one "bring the kernel in step" function that never overlap:
 * changes arriving during a run are taken by one more run after it, however
 * many arrive. The NetworkPolicy enforcer and the Service proxy both apply
 * their tables this way.
 */
export class SerialRuns {
  #running: Promise<void> | undefined;
  #dirty = false;
  #stopped = false;

  constructor(private readonly run: () => Promise<void>) {}

  /**
   * Asks for a run. The promise resolves after a run that started after
   * this call, and rejects when that run failed.
   */
  request(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#dirty = true;
    return (async () => {
      while (this.#dirty && !this.#stopped) {
        if (this.#running) {
          await this.#running.catch(() => undefined);
          continue;
        }
        this.#dirty = false;
        const run = this.run();
        this.#running = run;
        try {
          await run;
        } finally {
          this.#running = undefined;
        }
      }
      // Another caller took the change this call asked for: its run started after this call.
      if (this.#running) await this.#running;
    })();
  }

  /** No run starts after this; resolves once the one under way is over. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running?.catch(() => undefined);
  }
}
