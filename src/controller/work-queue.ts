/**
 * The work queue every controller reconciles from, as client-go's
 * workqueue.TypedRateLimitingInterface: a key is queued at most once however
 * often it is added (dedup), is never handed to two workers at once (a key
 * added while it is being processed is queued again when that ends), and a
 * key whose reconcile failed comes back after a per-key exponential backoff
 * (5 ms doubling, as ItemExponentialFailureRateLimiter, capped here at 30 s).
 */
import { messageOf } from './object-state.js';

/** What a reconcile may ask for besides success: to be looked at again later. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

export type Reconcile = (key: string) => Promise<ReconcileResult | undefined>;

export interface WorkQueueOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class WorkQueue {
  readonly #ready: string[] = [];
  /** Keys waiting to be processed (in #ready, or re-added while processing). */
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #delayed = new Map<string, { due: number; timer: NodeJS.Timeout }>();
  #wakeups: (() => void)[] = [];
  #shutDown = false;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;

  constructor(options: WorkQueueOptions = {}) {
    this.#baseDelayMs = options.baseDelayMs ?? 5;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
  }

  add(key: string): void {
    if (this.#shutDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (this.#processing.has(key)) return;
    this.#ready.push(key);
    this.#wake();
  }

  /** Adds the key after `delayMs`; an earlier pending add of the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#shutDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const due = Date.now() + delayMs;
    const pending = this.#delayed.get(key);
    if (pending && pending.due <= due) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#delayed.set(key, { due, timer });
  }

  /** Adds the key after its backoff: one more failure than last time. */
  addRateLimited(key: string): void {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    this.addAfter(key, Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** failures));
  }

  /** Clears the key's failure count (after a successful reconcile). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key to process, or undefined once the queue is shut down. */
  async get(): Promise<string | undefined> {
    for (;;) {
      if (this.#shutDown) return undefined;
      const key = this.#ready.shift();
      if (key !== undefined) {
        this.#dirty.delete(key);
        this.#processing.add(key);
        return key;
      }
      await new Promise<void>((resolve) => this.#wakeups.push(resolve));
    }
  }

  /** Marks the key processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.has(key) && !this.#shutDown) {
      this.#ready.push(key);
      this.#wake();
    }
  }

  shutDown(): void {
    this.#shutDown = true;
    for (const { timer } of this.#delayed.values()) clearTimeout(timer);
    this.#delayed.clear();
    const wakeups = this.#wakeups;
    this.#wakeups = [];
    for (const wake of wakeups) wake();
  }

  #wake(): void {
    this.#wakeups.shift()?.();
  }
}

/**
 * Runs `workers` loops taking keys from the queue until it shuts down: a
 * failed reconcile is logged and retried with backoff, a successful one
 * forgets the key's failures (and is requeued if it asked to be).
 */
export async function runWorkers(
  name: string,
  queue: WorkQueue,
  reconcile: Reconcile,
  workers: number,
  log: (line: string) => void,
): Promise<void> {
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        const result = await reconcile(key);
        queue.forget(key);
        if (result?.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (error) {
        const attempt = queue.failures(key) + 1;
        log(`${name}: syncing "${key}" failed (attempt ${attempt}), retrying: ${messageOf(error)}`);
        queue.addRateLimited(key);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
}
