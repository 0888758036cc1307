/**
 * One node's requests to the controller's CA service (src/mesh/ca-service/,
 * its contract in protocol.ts): HTTP over the unix socket, the node's token
 * read from its file for every request (so a replaced token is picked up),
 * answers checked for shape. A 403 becomes CertificateRefusedError; every
 * other failure a CertificateClientError the manager retries.
 */
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import {
  type CaServiceErrorBody,
  type CertificateRequestBody,
  type CertificateResponseBody,
  type TrustBundleResponseBody,
  certificatesPath,
  trustBundlePath,
} from '../ca-service/protocol.js';
import { formatSpiffeId, type SpiffeId } from '../identity/spiffe.js';
import { CertificateClientError, CertificateRefusedError } from './errors.js';

export interface CaClientOptions {
  /** The CA service's unix socket. */
  socketPath: string;
  /** The file holding this node's token (`<state dir>/nodes/<node>/ca-token`). */
  tokenFile: string;
  /** How long one request may take; 10 s by default. */
  timeoutMs?: number;
}

/** More than any answer of the service holds: a longer one is refused unread. */
const maxAnswerBytes = 1024 * 1024;

interface RawAnswer {
  status: number;
  text: string;
}

function requestError(message: string, options?: ErrorOptions & { status?: number }) {
  return new CertificateClientError('STRATA_ERR_CA_REQUEST', message, options);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function validDate(text: unknown): Date | undefined {
  if (typeof text !== 'string') return undefined;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** A certificate answer with its dates parsed. */
export interface CertificateAnswer {
  certChain: string[];
  rootCert: string;
  notBefore: Date;
  notAfter: Date;
}

export class CaClient {
  readonly #options: CaClientOptions;
  readonly #abort = new AbortController();

  constructor(options: CaClientOptions) {
    this.#options = options;
  }

  async #token(): Promise<string> {
    let text: string;
    try {
      text = await readFile(this.#options.tokenFile, 'utf8');
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw requestError(`Cannot read the node's CA token ${this.#options.tokenFile}: ${why}`, {
        cause: error,
      });
    }
    const token = text.trim();
    if (token === '') throw requestError(`The node's CA token ${this.#options.tokenFile} is empty`);
    return token;
  }

  async #call(method: string, path: string, body?: string): Promise<RawAnswer> {
    const token = await this.#token();
    const { socketPath } = this.#options;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath,
          method,
          path,
          signal: this.#abort.signal,
          timeout: this.#options.timeoutMs ?? 10_000,
          headers: {
            authorization: `Bearer ${token}`,
            ...(body === undefined
              ? {}
              : {
                  'content-type': 'application/json',
                  'content-length': Buffer.byteLength(body),
                }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let length = 0;
          res.on('data', (chunk: Buffer) => {
            length += chunk.length;
            if (length > maxAnswerBytes) {
              res.destroy(requestError(`The CA's answer is longer than ${maxAnswerBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.once('error', reject);
          res.once('end', () => {
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
          });
        },
      );
      req.once('timeout', () => {
        req.destroy(
          requestError(`The CA on ${socketPath} did not answer ${method} ${path} in time`),
        );
      });
      req.once('error', (error) => {
        reject(
          error instanceof CertificateClientError
            ? error
            : requestError(`Cannot reach the CA on ${socketPath}: ${error.message}`, {
                cause: error,
              }),
        );
      });
      req.end(body);
    });
  }

  /** The error an answer other than 200 means: 403 refuses `identity`, the rest are retried. */
  #failure(answer: RawAnswer, what: string, identity?: SpiffeId): Error {
    let message = answer.text.trim();
    let code: string | undefined;
    try {
      const parsed = JSON.parse(answer.text) as Partial<CaServiceErrorBody> | null;
      if (isRecord(parsed) && typeof parsed.message === 'string') {
        message = parsed.message;
        code = typeof parsed.code === 'string' ? parsed.code : undefined;
      }
    } catch {
      // Not the service's JSON: the text is the message.
    }
    if (answer.status === 403 && identity !== undefined) {
      return new CertificateRefusedError(identity, message);
    }
    return requestError(
      `The CA refused ${what} (${answer.status}${code === undefined ? '' : ` ${code}`}): ${message}`,
      { status: answer.status },
    );
  }

  /** Asks for a certificate for `identity` over the key of `csrPem`. */
  async requestCertificate(
    csrPem: string,
    identity: SpiffeId,
    ttlSeconds?: number,
  ): Promise<CertificateAnswer> {
    const body: CertificateRequestBody = {
      csr: csrPem,
      identity: {
        namespace: identity.namespace,
        serviceAccount: identity.serviceAccount,
        trustDomain: identity.trustDomain,
      },
      ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
    };
    const id = formatSpiffeId(identity);
    const answer = await this.#call('POST', certificatesPath, JSON.stringify(body));
    if (answer.status !== 200) throw this.#failure(answer, `a certificate for ${id}`, identity);
    let parsed: Partial<CertificateResponseBody> | null;
    try {
      parsed = JSON.parse(answer.text) as Partial<CertificateResponseBody> | null;
    } catch (error) {
      throw requestError(`The CA's answer for ${id} is not JSON`, { cause: error });
    }
    const notBefore = validDate(parsed?.notBefore);
    const notAfter = validDate(parsed?.notAfter);
    const chain = parsed?.certChain;
    if (
      !isRecord(parsed) ||
      !Array.isArray(chain) ||
      chain.length === 0 ||
      !chain.every((pem) => typeof pem === 'string') ||
      typeof parsed.rootCert !== 'string' ||
      notBefore === undefined ||
      notAfter === undefined
    ) {
      throw requestError(
        `The CA's answer for ${id} lacks certChain, rootCert, notBefore or notAfter`,
      );
    }
    return { certChain: chain, rootCert: parsed.rootCert, notBefore, notAfter };
  }

  /** The CA's trust bundle. */
  async trustBundle(): Promise<string> {
    const answer = await this.#call('GET', trustBundlePath);
    if (answer.status !== 200) throw this.#failure(answer, 'the trust bundle');
    let parsed: Partial<TrustBundleResponseBody> | null;
    try {
      parsed = JSON.parse(answer.text) as Partial<TrustBundleResponseBody> | null;
    } catch (error) {
      throw requestError("The CA's trust bundle answer is not JSON", { cause: error });
    }
    if (!isRecord(parsed) || typeof parsed.rootCert !== 'string') {
      throw requestError("The CA's trust bundle answer lacks rootCert");
    }
    return parsed.rootCert;
  }

  /** Cuts every request in flight short. */
  close(): void {
    this.#abort.abort();
  }
}
