/**
 * FileStore: the embedded durable datastore, the API server's default
 * backend. A crash (kill -9, power loss) loses no write whose promise
 * resolved. One directory holds:
 *
 *   lock                            flock'ed while open; holds the owner's pid
 *   snapshot                        every key at one revision (one framed record, wal.ts)
 *   wal-<first revision>.log        write-ahead log segments of framed LogRecords
 *
 * Writes: validated against the state including not-yet-synced writes,
 * given the next revision, appended to the current segment and fdatasync'ed;
 * only then applied to what reads see, sent to watchers and resolved. A write
 * refused because of one not yet synced (a revision conflict, the key
 * existing or gone) is refused once that one is visible, so a caller that
 * reads again sees why and can retry (GuaranteedUpdate). Writes
 * issued while a sync is in flight share the next one (group commit), so 100
 * concurrent creates cost a few syncs, not 100. A failed append or sync stops
 * the store taking writes: after a failed fsync the page cache can no longer
 * be trusted to match the disk.
 *
 * Snapshots: once the current segment holds `snapshotEvery` records (or 64 MiB),
 * a new segment starts at the next revision and the state at the current one
 * is written to `snapshot` (temp file, fsync, rename, directory fsync) while
 * writes go on; then the segments it covers are deleted. Close takes no
 * snapshot: a restart then replays the log and keeps the watch history since
 * the last snapshot, so clients resume their watches instead of relisting.
 *
 * Open: load the snapshot, replay the segments after it (rebuilding the watch
 * history from the snapshot's revision on), and cut off a torn record at the
 * end of the last segment: a crash during an append leaves one, and no write
 * in it was acknowledged since acknowledgement waits for the sync. Every
 * record from the first bad one in the last segment on is taken for that
 * tail (a checksum cannot tell a torn append from later bit rot). Damage in
 * an earlier segment, a missing segment, a gap in the revisions or a record
 * that does not fit the state is reported (StoreCorruptError), never skipped.
 *
 * I/O: after open, fs.promises, so a sync (milliseconds, much more on a busy
 * disk) runs on libuv's thread pool while the API server keeps serving reads
 * and watches. Open uses the sync API: it runs once, before the store serves
 * anything, and reading the files in order is simpler that way.
 */
import {
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { libc } from '../kernel/libc.js';
import {
  CompactedError,
  KeyExistsError,
  KeyNotFoundError,
  type ListResult,
  RevisionConflictError,
  type Store,
  type StoredValue,
  type Watch,
  type WatchEvent,
  listByPrefix,
} from './store.js';
import { type LogRecord, asLogRecord, asSnapshot, frame, unframe } from './wal.js';

/** Tuning for FileStore.open; the defaults suit the API server. */
export interface FileStoreOptions {
  /** How many events the watch history keeps (as MemoryStore); older watches get CompactedError. */
  historyLimit?: number;
  /** Log records per segment before a snapshot is taken and the log rotated. */
  snapshotEvery?: number;
}

/** The directory is open in another FileStore, in this process or another. */
export class StoreLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly holderPid: number | undefined,
  ) {
    const holder =
      holderPid === undefined
        ? 'another process'
        : holderPid === process.pid
          ? `this process (${holderPid})`
          : `process ${holderPid}`;
    super(`Cannot open the datastore in ${dir}: ${holder} has it open (it holds ${dir}/lock)`);
    this.name = 'StoreLockedError';
  }
}

/** A datastore file holds something no crash could have left; opening it would lose writes. */
export class StoreCorruptError extends Error {
  constructor(
    readonly path: string,
    detail: string,
    options?: ErrorOptions,
  ) {
    super(`Datastore file ${path} is damaged: ${detail}`, options);
    this.name = 'StoreCorruptError';
  }
}

/** The store takes no more writes: it was closed, or a disk write failed (the cause). */
export class StoreUnavailableError extends Error {
  constructor(dir: string, why: string, options?: ErrorOptions) {
    super(`The datastore in ${dir} takes no writes: ${why}`, options);
    this.name = 'StoreUnavailableError';
  }
}

const snapshotName = 'snapshot';
const snapshotTempName = 'snapshot.tmp';
const lockName = 'lock';
const segmentPattern = /^wal-(\d{20})\.log$/;
const snapshotBytes = 64 * 1024 * 1024;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EWOULDBLOCK = 11;

function segmentName(firstRevision: number): string {
  return `wal-${String(firstRevision).padStart(20, '0')}.log`;
}

interface Watcher {
  prefix: string;
  onEvent: (event: WatchEvent) => void;
}

interface PendingWrite {
  record: LogRecord;
  event: WatchEvent;
  /** What the write's promise resolves to. */
  result: StoredValue;
  resolve: (kv: StoredValue) => void;
  reject: (error: Error) => void;
}

interface Segment {
  handle: FileHandle;
  records: number;
  bytes: number;
}

interface DirectoryLock {
  release(): void;
}

/** The state open() rebuilds from the directory. */
interface Recovered {
  revision: number;
  compacted: number;
  data: Map<string, StoredValue>;
  history: WatchEvent[];
  /** First revisions of the segments kept, ascending. */
  segments: number[];
  /** Records and bytes in the last segment (after a torn tail was cut off). */
  lastRecords: number;
  lastBytes: number;
}

/** A Store kept durably in one directory; open with `await FileStore.open(dir)`. */
export class FileStore implements Store {
  readonly #dir: string;
  readonly #lock: DirectoryLock;
  readonly #historyLimit: number;
  readonly #snapshotEvery: number;
  /** The revision of the last synced write: what reads and watches see. */
  #revision: number;
  /** The revision of the last accepted write, synced or not. */
  #nextRevision: number;
  readonly #data: Map<string, StoredValue>;
  /** Keys written but not yet synced: their newest value (undefined: deleted). */
  readonly #unsynced = new Map<string, { kv: StoredValue | undefined; revision: number }>();
  readonly #history: WatchEvent[];
  /** Events at or below this revision are no longer kept. */
  #compacted: number;
  readonly #watchers = new Set<Watcher>();
  /** Refusals waiting for the write that caused them to be visible (see #refuse). */
  #visibilityWaiters: { revision: number; resolve: () => void }[] = [];
  #queue: PendingWrite[] = [];
  #flushing: Promise<void> | undefined;
  #snapshotting: Promise<void> | undefined;
  #segment: Segment;
  #segments: number[];
  #failure: Error | undefined;
  #closed = false;

  private constructor(
    dir: string,
    lock: DirectoryLock,
    options: Required<FileStoreOptions>,
    recovered: Recovered,
    segment: Segment,
  ) {
    this.#dir = dir;
    this.#lock = lock;
    this.#historyLimit = options.historyLimit;
    this.#snapshotEvery = options.snapshotEvery;
    this.#revision = recovered.revision;
    this.#nextRevision = recovered.revision;
    this.#data = recovered.data;
    this.#history = recovered.history;
    this.#compacted = recovered.compacted;
    this.#segments = recovered.segments;
    this.#segment = segment;
  }

  /** Opens (creating if needed) the store in `dir`; StoreLockedError if it is open elsewhere. */
  static async open(dir: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const settings: Required<FileStoreOptions> = {
      historyLimit: options.historyLimit ?? 10_000,
      snapshotEvery: options.snapshotEvery ?? 10_000,
    };
    makeDirectory(dir);
    const lock = await lockDirectory(dir);
    try {
      const recovered = recover(dir, settings.historyLimit);
      const last = recovered.segments.at(-1);
      let segment: Segment;
      if (last === undefined) {
        const first = recovered.revision + 1;
        segment = {
          handle: await open(join(dir, segmentName(first)), 'ax', 0o600),
          records: 0,
          bytes: 0,
        };
        await syncDirectory(dir);
        recovered.segments.push(first);
      } else {
        segment = {
          handle: await open(join(dir, segmentName(last)), 'a'),
          records: recovered.lastRecords,
          bytes: recovered.lastBytes,
        };
      }
      return new FileStore(dir, lock, settings, recovered, segment);
    } catch (error) {
      lock.release();
      throw error;
    }
  }

  revision(): number {
    return this.#revision;
  }

  get(key: string): Promise<StoredValue | undefined> {
    return Promise.resolve(this.#data.get(key));
  }

  list(prefix: string): Promise<ListResult> {
    return Promise.resolve(listByPrefix(this.#data.values(), prefix, this.#revision));
  }

  create(key: string, value: string): Promise<StoredValue> {
    const unavailable = this.#unavailable();
    if (unavailable) return Promise.reject(unavailable);
    if (this.#latest(key)) return this.#refuse(key, new KeyExistsError(key));
    const revision = ++this.#nextRevision;
    const kv: StoredValue = { key, value, createRevision: revision, modRevision: revision };
    return this.#append({ revision, op: 'create', key, value }, { type: 'put', kv }, kv);
  }

  update(key: string, value: string, expectedModRevision?: number): Promise<StoredValue> {
    const prev = this.#writable(key, expectedModRevision);
    if (prev instanceof Error) return this.#refuse(key, prev);
    const revision = ++this.#nextRevision;
    const kv: StoredValue = {
      key,
      value,
      createRevision: prev.createRevision,
      modRevision: revision,
    };
    return this.#append({ revision, op: 'update', key, value }, { type: 'put', kv, prev }, kv);
  }

  delete(key: string, expectedModRevision?: number): Promise<StoredValue> {
    const prev = this.#writable(key, expectedModRevision);
    if (prev instanceof Error) return this.#refuse(key, prev);
    const revision = ++this.#nextRevision;
    const kv: StoredValue = { ...prev, value: '', modRevision: revision };
    return this.#append({ revision, op: 'delete', key }, { type: 'delete', kv, prev }, prev);
  }

  watch(prefix: string, fromRevision: number, onEvent: (event: WatchEvent) => void): Watch {
    if (fromRevision < this.#compacted) throw new CompactedError(fromRevision, this.#compacted);
    const watcher: Watcher = { prefix, onEvent };
    for (const event of this.#history) {
      if (event.kv.modRevision > fromRevision && event.kv.key.startsWith(prefix)) onEvent(event);
    }
    this.#watchers.add(watcher);
    return {
      cancel: () => {
        this.#watchers.delete(watcher);
      },
    };
  }

  /** Waits for the writes already issued and a snapshot in progress, then releases the directory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#flushing;
    await this.#snapshotting;
    this.#watchers.clear();
    try {
      await this.#segment.handle.close();
    } finally {
      this.#lock.release();
    }
  }

  #unavailable(): Error | undefined {
    if (this.#failure) {
      return new StoreUnavailableError(this.#dir, 'a write to disk failed', {
        cause: this.#failure,
      });
    }
    if (this.#closed) return new StoreUnavailableError(this.#dir, 'it is closed');
    return undefined;
  }

  /** What an update or delete of `key` replaces, or the error it fails with. */
  #writable(key: string, expectedModRevision: number | undefined): StoredValue | Error {
    const unavailable = this.#unavailable();
    if (unavailable) return unavailable;
    const prev = this.#latest(key);
    if (!prev) return new KeyNotFoundError(key);
    if (expectedModRevision !== undefined && expectedModRevision !== prev.modRevision) {
      return new RevisionConflictError(key, expectedModRevision, prev.modRevision);
    }
    return prev;
  }

  /**
   * Rejects with `error`; when a write to `key` is not synced yet (and so is
   * what the error is about, while reads still show the value before it),
   * only once that write is visible or the store has failed. Refused at
   * once, a read-modify-write would read the same old value again and
   * again until its retries ran out.
   */
  #refuse(key: string, error: Error): Promise<never> {
    const pending = this.#unsynced.get(key);
    if (!pending || error instanceof StoreUnavailableError || this.#failure) {
      return Promise.reject(error);
    }
    return new Promise<void>((resolve) => {
      this.#visibilityWaiters.push({ revision: pending.revision, resolve });
    }).then(() => {
      throw error;
    });
  }

  /** Releases the refusals whose write is visible now (all of them once the store failed). */
  #wakeRefusals(): void {
    const ready = this.#visibilityWaiters.filter(
      (w) => w.revision <= this.#revision || this.#failure !== undefined,
    );
    if (ready.length === 0) return;
    this.#visibilityWaiters = this.#visibilityWaiters.filter((w) => !ready.includes(w));
    for (const waiter of ready) waiter.resolve();
  }

  /** The key's value once every accepted write is synced. */
  #latest(key: string): StoredValue | undefined {
    const unsynced = this.#unsynced.get(key);
    return unsynced ? unsynced.kv : this.#data.get(key);
  }

  #append(record: LogRecord, event: WatchEvent, result: StoredValue): Promise<StoredValue> {
    this.#unsynced.set(record.key, {
      kv: event.type === 'delete' ? undefined : event.kv,
      revision: record.revision,
    });
    return new Promise((resolve, reject) => {
      this.#queue.push({ record, event, result, resolve, reject });
      this.#flushing ??= this.#flush();
    });
  }

  /** Appends and syncs queued writes, batch after batch, until the queue is empty. */
  async #flush(): Promise<void> {
    // Yield once so the writes issued in this tick (Promise.all over 100 pods) share one sync.
    await Promise.resolve();
    let batch: PendingWrite[] = [];
    try {
      while (this.#queue.length > 0) {
        const segment = this.#segment;
        if (
          this.#snapshotting === undefined &&
          (segment.records >= this.#snapshotEvery || segment.bytes >= snapshotBytes)
        ) {
          await this.#rotate();
        }
        batch = this.#queue;
        this.#queue = [];
        const bytes = Buffer.concat(batch.map((write) => frame(write.record)));
        await writeFully(this.#segment.handle, bytes);
        await this.#segment.handle.datasync();
        this.#segment.records += batch.length;
        this.#segment.bytes += bytes.length;
        for (const write of batch) this.#commit(write.event);
        for (const write of batch) write.resolve(write.result);
        batch = [];
        this.#wakeRefusals();
      }
    } catch (error) {
      this.#fail(error, batch);
    } finally {
      // Synchronously after the queue was seen empty: a write issued from here on starts a new flush.
      this.#flushing = undefined;
    }
  }

  /** Makes a synced write visible: to reads, to the history, to watchers. */
  #commit(event: WatchEvent): void {
    const { kv } = event;
    if (event.type === 'delete') this.#data.delete(kv.key);
    else this.#data.set(kv.key, kv);
    this.#revision = kv.modRevision;
    if (this.#unsynced.get(kv.key)?.revision === kv.modRevision) this.#unsynced.delete(kv.key);
    this.#compacted = remember(this.#history, event, this.#historyLimit, this.#compacted);
    for (const watcher of [...this.#watchers]) {
      if (!this.#watchers.has(watcher) || !kv.key.startsWith(watcher.prefix)) continue;
      try {
        watcher.onEvent(event);
      } catch (error) {
        // A watcher's bug must not stop the commit of the rest of the batch; it surfaces
        // as an uncaught exception, as it would from an event emitter.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  /** Stops taking writes: rejects the failed batch and everything queued. */
  #fail(error: unknown, batch: PendingWrite[]): void {
    this.#failure ??= error instanceof Error ? error : new Error(String(error));
    const unavailable = this.#unavailable();
    const rejected = [...batch, ...this.#queue];
    this.#queue = [];
    for (const write of rejected) write.reject(unavailable ?? this.#failure);
    this.#wakeRefusals();
  }

  /**
   * Starts a new segment at the next revision and writes the state at the
   * current one as the snapshot in the background. Called between batches,
   * when every write up to the current revision is in a synced segment.
   */
  async #rotate(): Promise<void> {
    const revision = this.#revision;
    // Framed now, synchronously: the snapshot is exactly the state at `revision`.
    const image = frame({ format: 1, revision, items: [...this.#data.values()] });
    const first = revision + 1;
    const handle = await open(join(this.#dir, segmentName(first)), 'ax', 0o600);
    await syncDirectory(this.#dir);
    const previous = this.#segment.handle;
    this.#segment = { handle, records: 0, bytes: 0 };
    this.#segments.push(first);
    await previous.close();
    this.#snapshotting = this.#writeSnapshot(revision, image)
      .catch((error: unknown) => {
        this.#fail(error, []);
      })
      .finally(() => {
        this.#snapshotting = undefined;
      });
  }

  async #writeSnapshot(revision: number, image: Buffer): Promise<void> {
    const temp = join(this.#dir, snapshotTempName);
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.writeFile(image);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, join(this.#dir, snapshotName));
    await syncDirectory(this.#dir);
    // Segments starting at or before `revision` hold only writes the snapshot has.
    const covered = this.#segments.filter((first) => first <= revision);
    this.#segments = this.#segments.filter((first) => first > revision);
    for (const first of covered) await rm(join(this.#dir, segmentName(first)), { force: true });
  }
}

/** Appends `event` to a bounded history; returns the new compacted revision. */
function remember(history: WatchEvent[], event: WatchEvent, limit: number, compacted: number) {
  history.push(event);
  let newCompacted = compacted;
  while (history.length > limit) {
    const dropped = history.shift();
    if (dropped) newCompacted = dropped.kv.modRevision;
  }
  return newCompacted;
}

async function writeFully(handle: FileHandle, bytes: Buffer): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

/** fsync on a directory makes the names created or renamed in it durable. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function syncDirectorySync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Creates `dir` if needed and makes its name durable in every directory created on the way. */
function makeDirectory(dir: string): void {
  const absolute = resolve(dir);
  const created = mkdirSync(absolute, { recursive: true, mode: 0o700 });
  if (created === undefined) return;
  for (let made = absolute; ; made = dirname(made)) {
    syncDirectorySync(dirname(made));
    if (made === created || dirname(made) === made) break;
  }
}

/**
 * An exclusive, non-blocking flock(2) on `<dir>/lock`. The kernel drops it
 * when the holder dies, so a kill -9 never leaves a stale lock, and the pid
 * inside is only there to name the holder in the error.
 */
async function lockDirectory(dir: string): Promise<DirectoryLock> {
  const path = join(dir, lockName);
  const c = await libc();
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  if (c.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const errno = c.errno();
    closeSync(fd);
    if (errno === EWOULDBLOCK) throw new StoreLockedError(dir, holderPid(path));
    throw new Error(`Cannot lock ${path}: flock failed with errno ${errno}`);
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `${process.pid}\n`, 0);
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      c.flock(fd, LOCK_UN);
      closeSync(fd);
    },
  };
}

function holderPid(lockPath: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The segments in `dir`, by first revision, ascending. */
function listSegments(dir: string): number[] {
  const firsts: number[] = [];
  for (const name of readdirSync(dir)) {
    const match = segmentPattern.exec(name);
    if (match?.[1] !== undefined) firsts.push(Number(match[1]));
  }
  return firsts.sort((a, b) => a - b);
}

function parseBody(path: string, body: string, offset: number): unknown {
  try {
    return JSON.parse(body);
  } catch (error) {
    throw new StoreCorruptError(path, `the record at byte ${offset} is not JSON`, {
      cause: error,
    });
  }
}

/** Loads the snapshot and replays the log after it: the state the last synced write left. */
function recover(dir: string, historyLimit: number): Recovered {
  // A snapshot the crash interrupted before its rename: the previous one still stands.
  rmSync(join(dir, snapshotTempName), { force: true });
  const state: Recovered = {
    revision: 0,
    compacted: 0,
    data: new Map(),
    history: [],
    segments: [],
    lastRecords: 0,
    lastBytes: 0,
  };

  const snapshotPath = join(dir, snapshotName);
  if (existsSync(snapshotPath)) {
    // Renamed into place only after its fsync, so it is whole: any damage is real.
    const bytes = readFileSync(snapshotPath);
    const unframed = unframe(bytes, 0);
    if (unframed.kind !== 'record' || unframed.end !== bytes.length) {
      throw new StoreCorruptError(snapshotPath, 'it is not one whole, checksummed record');
    }
    const snapshot = asSnapshot(parseBody(snapshotPath, unframed.body, 0));
    if (!snapshot) throw new StoreCorruptError(snapshotPath, 'it is not a format 1 snapshot');
    state.revision = snapshot.revision;
    state.compacted = snapshot.revision;
    for (const kv of snapshot.items) state.data.set(kv.key, kv);
  }
  const snapshotRevision = state.revision;

  const segments = listSegments(dir);
  let replayed = 0;
  for (const [index, first] of segments.entries()) {
    const path = join(dir, segmentName(first));
    const next = segments[index + 1];
    if (next !== undefined && next <= snapshotRevision + 1) {
      // Wholly covered by the snapshot: left by a crash before the snapshot deleted it.
      rmSync(path, { force: true });
      continue;
    }
    state.segments.push(first);
    if (first > state.revision + 1) {
      throw new StoreCorruptError(path, `the log before revision ${first} is missing`);
    }
    const last = next === undefined;
    const bytes = readFileSync(path);
    let offset = 0;
    let records = 0;
    for (;;) {
      const unframed = unframe(bytes, offset);
      if (unframed.kind === 'end') break;
      if (unframed.kind === 'torn') {
        if (!last) {
          throw new StoreCorruptError(
            path,
            `${unframed.reason} at byte ${offset}, in a log file that later ones follow`,
          );
        }
        // The append a crash interrupted: never synced, so never acknowledged. Cut it
        // off so the next append does not land after garbage.
        truncateDurably(path, offset);
        break;
      }
      const record = asLogRecord(parseBody(path, unframed.body, offset));
      if (!record) throw new StoreCorruptError(path, `the record at byte ${offset} is malformed`);
      if (record.revision < first) {
        throw new StoreCorruptError(path, `revision ${record.revision} is before the file's first`);
      }
      if (record.revision <= state.revision && replayed === 0) {
        // Already in the snapshot.
      } else if (record.revision !== state.revision + 1) {
        throw new StoreCorruptError(
          path,
          `revision ${record.revision} at byte ${offset} follows revision ${state.revision}`,
        );
      } else {
        const event = replay(path, state.data, record);
        state.revision = record.revision;
        state.compacted = remember(state.history, event, historyLimit, state.compacted);
        replayed++;
      }
      offset = unframed.end;
      records++;
    }
    state.lastRecords = records;
    state.lastBytes = offset;
  }
  return state;
}

/** Applies one log record to `data`; the watch event it made. */
function replay(path: string, data: Map<string, StoredValue>, record: LogRecord): WatchEvent {
  const { revision, key } = record;
  const prev = data.get(key);
  const inconsistent = (why: string) =>
    new StoreCorruptError(path, `revision ${revision} ${record.op}s ${key}, which ${why}`);
  switch (record.op) {
    case 'create': {
      if (prev) throw inconsistent('exists');
      const kv = { key, value: record.value, createRevision: revision, modRevision: revision };
      data.set(key, kv);
      return { type: 'put', kv };
    }
    case 'update': {
      if (!prev) throw inconsistent('does not exist');
      const kv = {
        key,
        value: record.value,
        createRevision: prev.createRevision,
        modRevision: revision,
      };
      data.set(key, kv);
      return { type: 'put', kv, prev };
    }
    case 'delete': {
      if (!prev) throw inconsistent('does not exist');
      data.delete(key);
      return { type: 'delete', kv: { ...prev, value: '', modRevision: revision }, prev };
    }
  }
}

/** Cuts `path` to `length` bytes and syncs, so the cut survives another crash. */
function truncateDurably(path: string, length: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, length);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
