/**
 * One JSON line per closed connection, with the fields of ztunnel's
 * "connection complete" access log (istio/ztunnel src/proxy/metrics.rs,
 * ConnectionResult::record): who talked to whom, the identities mutual TLS
 * proved, the bytes each way from the local workload's side, and how long it
 * lasted. Fields the proxy does not know are left out, as ztunnel leaves them.
 *
 * Where the lines go is the caller's: any writable stream, or a file opened
 * with openAccessLogFile(). Rotation is the caller's too: move the file, then
 * hand the log a fresh stream with switchTo().
 */
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { ClosedConnection } from './metrics.js';

/** A closed connection's access log entry, field names as ztunnel writes them. */
export interface AccessLogEntry {
  timestamp: string;
  /** "error" when the connection failed. */
  level: 'info' | 'error';
  scope: 'access';
  message: 'connection complete';
  'src.addr'?: string;
  'src.workload'?: string;
  'src.namespace'?: string;
  'src.identity'?: string;
  'dst.addr'?: string;
  'dst.hbone_addr'?: string;
  'dst.service'?: string;
  'dst.workload'?: string;
  'dst.namespace'?: string;
  'dst.identity'?: string;
  /** "outbound" at the source's proxy, "inbound" at the destination's. */
  direction: 'inbound' | 'outbound';
  /** Bytes the local workload sent: the client's at the source, the server's at the destination. */
  bytes_sent: number;
  /** Bytes the local workload received. */
  bytes_recv: number;
  /** `<milliseconds>ms`, as ztunnel writes it. */
  duration: string;
  error?: string;
}

/** The entry ztunnel would write for `connection`. */
export function accessLogEntry(connection: ClosedConnection): AccessLogEntry {
  const { source, destination, destinationService } = connection;
  // Identities are logged only when mutual TLS proved them.
  const mtls = connection.security === 'mutual_tls';
  const outbound = connection.reporter === 'source';
  const durationMs = connection.closedAt.getTime() - connection.openedAt.getTime();
  return {
    timestamp: connection.closedAt.toISOString(),
    level: connection.error === undefined ? 'info' : 'error',
    scope: 'access',
    message: 'connection complete',
    ...field('src.addr', connection.sourceAddress),
    // The pod's name, else its canonical service (ztunnel's fallback).
    ...field('src.workload', source?.pod || source?.canonicalService),
    ...field('src.namespace', source?.namespace),
    ...field('src.identity', mtls ? source?.identity : undefined),
    ...field('dst.addr', connection.destinationAddress),
    ...field('dst.hbone_addr', connection.hboneAddress),
    ...field('dst.service', destinationService?.hostname),
    ...field('dst.workload', destination?.pod || destination?.canonicalService),
    ...field('dst.namespace', destination?.namespace),
    ...field('dst.identity', mtls ? destination?.identity : undefined),
    direction: outbound ? 'outbound' : 'inbound',
    // The counters count from the client's side at both ends (istio/istio#32399);
    // the log counts from the local workload's, as ztunnel "unflips" it.
    bytes_sent: outbound ? connection.receivedBytes : connection.sentBytes,
    bytes_recv: outbound ? connection.sentBytes : connection.receivedBytes,
    duration: `${Math.max(0, durationMs)}ms`,
    ...field('error', connection.error),
  };
}

/** The entry as one line of JSON, newline included. */
export function formatAccessLogLine(connection: ClosedConnection): string {
  return `${JSON.stringify(accessLogEntry(connection))}\n`;
}

// A field only when it has a value.
function field<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined || value === '' ? {} : ({ [key]: value } as Record<K, string>);
}

export interface AccessLogOptions {
  /** Called when the stream fails; a warning on the process by default. The proxy carries on. */
  onError?: (error: Error) => void;
}

/** Writes each closed connection as a line to a stream. */
export class AccessLog {
  #out: Writable;
  readonly #onError: (error: Error) => void;

  constructor(out: Writable, options: AccessLogOptions = {}) {
    this.#onError =
      options.onError ??
      ((error) => {
        process.emitWarning(`The access log could not be written: ${error.message}`);
      });
    this.#out = this.#watch(out);
  }

  /** Writes one line for `connection`; the shape TcpMetrics' onClose takes. */
  write(connection: ClosedConnection): void {
    if (this.#out.writable) this.#out.write(formatAccessLogLine(connection));
  }

  /** Writes go to `out` from now on; the previous stream is ended (after a rotation). */
  switchTo(out: Writable): void {
    const previous = this.#out;
    this.#out = this.#watch(out);
    previous.end();
  }

  /** Ends the stream once what was written is flushed. */
  close(): Promise<void> {
    const out = this.#out;
    return new Promise((resolve) => {
      if (out.writableFinished || out.destroyed) {
        resolve();
        return;
      }
      out.once('close', () => {
        resolve();
      });
      out.once('finish', () => {
        resolve();
      });
      out.end();
    });
  }

  #watch(out: Writable): Writable {
    // A failing log must not take the proxy down with an unhandled 'error'.
    out.on('error', this.#onError);
    return out;
  }
}

/** A stream appending to `path` (created 0640 if missing), for an AccessLog. */
export function openAccessLogFile(path: string): Writable {
  return createWriteStream(path, { flags: 'a', mode: 0o640 });
}
