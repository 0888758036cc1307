/**
 * HTTP to the API server over a keep-alive Agent, by TCP (`http://host:port`)
 * or a unix socket (`unix:///run/strata/api.sock`, or a bare socket path).
 */
import { Agent, type IncomingMessage, type OutgoingHttpHeaders, request } from 'node:http';
import { ApiError, statusFromResponse } from './errors.js';

/** Where the API server is: a base URL or a unix socket path. */
export type ApiTarget = string | { socketPath: string };

interface Endpoint {
  socketPath?: string;
  host?: string;
  port?: number;
  /** A path prefix the base URL carried (`http://proxy/k8s` → `/k8s`). */
  pathPrefix: string;
}

function parseTarget(target: ApiTarget): Endpoint {
  if (typeof target !== 'string') return { socketPath: target.socketPath, pathPrefix: '' };
  if (target.startsWith('/')) return { socketPath: target, pathPrefix: '' };
  if (target.startsWith('unix://'))
    return { socketPath: target.slice('unix://'.length), pathPrefix: '' };
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new Error(
      `Cannot use API server address "${target}": expected http://host:port, unix:///path or a socket path`,
    );
  }
  if (url.protocol !== 'http:') {
    throw new Error(
      `Cannot use API server address "${target}": only http and unix sockets are supported`,
    );
  }
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 80 : Number(url.port),
    pathPrefix: url.pathname.replace(/\/+$/, ''),
  };
}

export interface HttpResponse {
  code: number;
  body: string;
}

export interface RequestOptions {
  body?: string;
  contentType?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class HttpTransport {
  readonly #endpoint: Endpoint;
  readonly #agent = new Agent({ keepAlive: true });
  readonly #timeoutMs: number;

  constructor(target: ApiTarget, options: { timeoutMs?: number } = {}) {
    this.#endpoint = parseTarget(target);
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  #open(method: string, path: string, options: RequestOptions): Promise<IncomingMessage> {
    const headers: OutgoingHttpHeaders = { Accept: 'application/json', 'User-Agent': 'strata' };
    if (options.body !== undefined) {
      headers['Content-Type'] = options.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(options.body);
    }
    const { socketPath, host, port, pathPrefix } = this.#endpoint;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.#agent,
          method,
          path: pathPrefix + path,
          headers,
          signal: options.signal,
          ...(socketPath === undefined ? { host, port } : { socketPath }),
        },
        resolve,
      );
      req.once('error', (error: NodeJS.ErrnoException) => {
        // An idle keep-alive connection the server closed just as it was reused
        // (Node's documented retry case); a create is not repeated blindly.
        if (req.reusedSocket && error.code === 'ECONNRESET' && method !== 'POST') {
          this.#open(method, path, options).then(resolve, reject);
        } else {
          reject(error);
        }
      });
      if (options.timeoutMs !== undefined) {
        req.setTimeout(options.timeoutMs, () => {
          req.destroy(new Error(`${method} ${path}: no response within ${options.timeoutMs} ms`));
        });
      }
      req.end(options.body);
    });
  }

  /** A whole request and response; ApiError when the server answers with a failure. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<HttpResponse> {
    const res = await this.#open(method, path, { timeoutMs: this.#timeoutMs, ...options });
    const chunks: Buffer[] = [];
    for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
    const body = Buffer.concat(chunks).toString('utf8');
    const code = res.statusCode ?? 0;
    if (code < 200 || code > 299)
      throw new ApiError(statusFromResponse(code, body), `${method} ${path}`);
    return { code, body };
  }

  /** A GET whose response is read as a stream (a watch); ApiError when it fails before streaming. */
  async stream(path: string, signal: AbortSignal): Promise<IncomingMessage> {
    const res = await this.#open('GET', path, { signal });
    const code = res.statusCode ?? 0;
    if (code >= 200 && code <= 299) return res;
    const chunks: Buffer[] = [];
    for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
    throw new ApiError(
      statusFromResponse(code, Buffer.concat(chunks).toString('utf8')),
      `GET ${path}`,
    );
  }

  /** Closes pooled connections. */
  close(): void {
    this.#agent.destroy();
  }
}
