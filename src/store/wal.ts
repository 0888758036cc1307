/**
 * The on-disk formats of FileStore: the write-ahead log's records and the
 * snapshot, both framed the same way so a reader can tell a whole record
 * from one a crash cut short:
 *
 *   [payload length: u32 LE][CRC-32 of the payload: u32 LE][payload: UTF-8 JSON]
 *
 * A log segment is a run of framed records; the snapshot is one framed record.
 */
import { crc32 } from 'node:zlib';
import type { StoredValue } from './store.js';

const headerBytes = 8;

/** One write, as the log holds it: enough to replay it onto the state before it. */
export type LogRecord =
  | { revision: number; op: 'create' | 'update'; key: string; value: string }
  | { revision: number; op: 'delete'; key: string };

/** Every key at one revision. */
export interface Snapshot {
  format: 1;
  revision: number;
  items: StoredValue[];
}

/** `payload` as JSON in a frame. */
export function frame(payload: LogRecord | Snapshot): Buffer {
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  const framed = Buffer.allocUnsafe(headerBytes + body.length);
  framed.writeUInt32LE(body.length, 0);
  framed.writeUInt32LE(crc32(body), 4);
  body.copy(framed, headerBytes);
  return framed;
}

/** What unframe found at an offset. */
export type Unframed =
  | { kind: 'record'; body: string; end: number }
  | { kind: 'end' }
  /** Not a whole record: what a crash in the middle of an append leaves. */
  | { kind: 'torn'; reason: string };

/** The frame starting at `offset` of `bytes`. */
export function unframe(bytes: Buffer, offset: number): Unframed {
  if (offset === bytes.length) return { kind: 'end' };
  if (bytes.length - offset < headerBytes) {
    return { kind: 'torn', reason: `a partial header of ${bytes.length - offset} bytes` };
  }
  const length = bytes.readUInt32LE(offset);
  const checksum = bytes.readUInt32LE(offset + 4);
  const start = offset + headerBytes;
  // A zero length is what a file extended with zeros (but not yet written) shows.
  if (length === 0) return { kind: 'torn', reason: 'a zero length' };
  if (start + length > bytes.length) {
    return {
      kind: 'torn',
      reason: `a record of ${length} bytes with ${bytes.length - start} on disk`,
    };
  }
  const body = bytes.subarray(start, start + length);
  if (crc32(body) !== checksum) return { kind: 'torn', reason: 'a checksum mismatch' };
  return { kind: 'record', body: body.toString('utf8'), end: start + length };
}

function isRevision(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `payload` as a LogRecord, or undefined if it is not one. */
export function asLogRecord(payload: unknown): LogRecord | undefined {
  if (!isObject(payload)) return undefined;
  const { revision, op, key, value } = payload;
  if (!isRevision(revision) || revision === 0 || typeof key !== 'string') return undefined;
  if (op === 'delete') return { revision, op, key };
  if ((op === 'create' || op === 'update') && typeof value === 'string') {
    return { revision, op, key, value };
  }
  return undefined;
}

function isStoredValue(value: unknown): value is StoredValue {
  return (
    isObject(value) &&
    typeof value.key === 'string' &&
    typeof value.value === 'string' &&
    isRevision(value.createRevision) &&
    isRevision(value.modRevision)
  );
}

/** `payload` as a Snapshot, or undefined if it is not one. */
export function asSnapshot(payload: unknown): Snapshot | undefined {
  if (!isObject(payload)) return undefined;
  const { format, revision, items } = payload;
  if (format !== 1 || !isRevision(revision) || !Array.isArray(items)) return undefined;
  if (!items.every(isStoredValue)) return undefined;
  return { format, revision, items };
}
