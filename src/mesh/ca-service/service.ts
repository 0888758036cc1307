/**
 * The CA service the controller runs, as istiod serves its CA to ztunnel:
 * a node authenticates (its bearer token, tokens.ts), names the identity it
 * wants and sends a CSR; the service signs only when some pod bound to that
 * node runs as that identity (mayIssue, over pods.ts), so a node can never
 * obtain another node's workloads' identities. The contract is
 * protocol.ts's. Each issuance is logged with the node, SPIFFE ID, serial
 * and expiry; keys never reach the service and tokens are never logged.
 */
import { X509Certificate } from 'node:crypto';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { mayIssue } from '../identity/authorize.js';
import { CertificateAuthority } from '../identity/ca.js';
import { IdentityError } from '../identity/errors.js';
import { formatSpiffeId, spiffeIdProblem, type SpiffeId } from '../identity/spiffe.js';
import type { PodSource } from './pods.js';
import {
  type CaServiceErrorBody,
  type CertificateResponseBody,
  type TrustBundleResponseBody,
  certificatesPath,
  maxRequestBodyBytes,
  parseCertificateRequest,
  trustBundlePath,
} from './protocol.js';
import { NodeTokenFile, bearerToken } from './tokens.js';

/** Who a bearer token belongs to: node-tokens.json (NodeTokenFile), or a test's table. */
export interface NodeAuthenticator {
  nodeFor(token: string): Promise<string | undefined> | string | undefined;
}

export interface CaServiceOptions {
  ca: CertificateAuthority;
  tokens: NodeAuthenticator;
  pods: PodSource;
  log: (line: string) => void;
}

/** One answer: a status, a JSON body, extra headers; `close` ends the connection after it. */
interface Answer {
  status: number;
  body: CertificateResponseBody | TrustBundleResponseBody | CaServiceErrorBody;
  headers?: Record<string, string>;
  close?: boolean;
}

function failure(
  status: number,
  code: CaServiceErrorBody['code'],
  message: string,
  headers?: Record<string, string>,
): Answer {
  return { status, body: { code, message }, ...(headers === undefined ? {} : { headers }) };
}

const routes: Record<string, string> = {
  [certificatesPath]: 'POST',
  [trustBundlePath]: 'GET',
};

/** The body, or 'too-large' as soon as it passes `limit` bytes (the rest is left unread). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve('too-large');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer): void => {
      length += chunk.length;
      if (length > limit) {
        req.off('data', onData);
        req.off('end', onEnd);
        req.pause();
        resolve('too-large');
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      resolve(Buffer.concat(chunks));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', reject);
  });
}

function send(res: ServerResponse, answer: Answer): void {
  const text = JSON.stringify(answer.body);
  res.writeHead(answer.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(answer.close === true ? { connection: 'close' } : {}),
    ...answer.headers,
  });
  res.end(text, () => {
    // A body left unread (too large) is never drained: the connection goes.
    if (answer.close === true) res.socket?.destroy();
  });
}

export class CaService {
  readonly #ca: CertificateAuthority;
  readonly #tokens: NodeAuthenticator;
  readonly #pods: PodSource;
  readonly #log: (line: string) => void;
  #server: Server | undefined;
  #socketPath: string | undefined;

  constructor(options: CaServiceOptions) {
    this.#ca = options.ca;
    this.#tokens = options.tokens;
    this.#pods = options.pods;
    this.#log = options.log;
  }

  get trustDomain(): string {
    return this.#ca.trustDomain;
  }

  /** The request listener, for `http.createServer` (listen() uses it). */
  readonly listener = (req: IncomingMessage, res: ServerResponse): void => {
    this.#answer(req).then(
      (answer) => {
        send(res, answer);
      },
      (error: unknown) => {
        this.#log(
          `ca: a request failed: ${error instanceof Error ? error.message : String(error)}`,
        );
        if (!res.headersSent) {
          send(res, {
            ...failure(500, 'STRATA_ERR_CA_INTERNAL', 'The CA service failed; its log says why'),
            close: true,
          });
        }
      },
    );
  };

  async #answer(req: IncomingMessage): Promise<Answer> {
    const path = new URL(req.url ?? '/', 'http://ca.invalid').pathname;
    const method = routes[path];
    if (method === undefined) {
      return failure(
        404,
        'STRATA_ERR_CA_NOT_FOUND',
        `No such path ${JSON.stringify(path)}: the CA service serves POST ${certificatesPath} and GET ${trustBundlePath}`,
      );
    }
    if (req.method !== method) {
      return failure(
        405,
        'STRATA_ERR_CA_METHOD_NOT_ALLOWED',
        `${path} takes ${method}, not ${req.method ?? 'no method'}`,
        { allow: method },
      );
    }
    const token = bearerToken(req.headers.authorization);
    const unauthenticated = { 'www-authenticate': 'Bearer' };
    if (token === undefined) {
      this.#log(`ca: refused ${req.method} ${path}: no bearer token`);
      return failure(
        401,
        'STRATA_ERR_CA_UNAUTHENTICATED',
        'The request has no "Authorization: Bearer <node token>" header',
        unauthenticated,
      );
    }
    const node = await this.#tokens.nodeFor(token);
    if (node === undefined) {
      this.#log(`ca: refused ${req.method} ${path}: a bearer token that is no node's`);
      return failure(
        401,
        'STRATA_ERR_CA_UNAUTHENTICATED',
        "The bearer token is not any node's token",
        unauthenticated,
      );
    }
    if (path === trustBundlePath) {
      return {
        status: 200,
        body: { rootCert: this.#ca.trustBundlePem(), trustDomain: this.#ca.trustDomain },
      };
    }
    return this.#issue(req, node);
  }

  async #issue(req: IncomingMessage, node: string): Promise<Answer> {
    const body = await readBody(req, maxRequestBodyBytes);
    if (body === 'too-large') {
      return {
        ...failure(
          413,
          'STRATA_ERR_CA_BODY_TOO_LARGE',
          `The request body is larger than ${maxRequestBodyBytes} bytes`,
        ),
        close: true,
      };
    }
    const parsed = parseCertificateRequest(body.toString('utf8'));
    if (!parsed.ok) return failure(400, 'STRATA_ERR_CA_BAD_REQUEST', parsed.message);
    const { csr, identity: asked, ttlSeconds } = parsed.request;
    const identity: SpiffeId = {
      trustDomain: asked.trustDomain ?? this.#ca.trustDomain,
      namespace: asked.namespace,
      serviceAccount: asked.serviceAccount,
    };
    const problem = spiffeIdProblem(identity);
    if (problem !== undefined) {
      return failure(400, 'STRATA_ERR_CA_BAD_REQUEST', `The identity is not valid: ${problem}`);
    }
    const spiffeId = formatSpiffeId(identity);
    const denied = await this.#deniedReason(node, identity);
    if (denied !== undefined) {
      this.#log(`ca: refused ${spiffeId} to node "${node}": ${denied}`);
      return failure(403, 'STRATA_ERR_CA_FORBIDDEN', denied);
    }

    let issued;
    try {
      issued = await this.#ca.sign(csr, identity, ttlSeconds === undefined ? {} : { ttlSeconds });
    } catch (error) {
      if (error instanceof IdentityError && error.code === 'STRATA_ERR_CSR_REFUSED') {
        this.#log(`ca: refused ${spiffeId} to node "${node}": ${error.message}`);
        return failure(400, error.code, error.message);
      }
      throw error;
    }
    const leaf = issued.certChainPem[0] ?? '';
    const serial = new X509Certificate(leaf).serialNumber.toLowerCase();
    this.#log(
      `ca: issued ${spiffeId} to node "${node}" (serial ${serial}, notAfter ${issued.notAfter.toISOString()})`,
    );
    return {
      status: 200,
      body: {
        certChain: issued.certChainPem,
        rootCert: issued.rootPem,
        notBefore: issued.notBefore.toISOString(),
        notAfter: issued.notAfter.toISOString(),
        spiffeId,
      },
    };
  }

  /** Why `node` may not obtain `identity`, or undefined when it may. */
  async #deniedReason(node: string, identity: SpiffeId): Promise<string | undefined> {
    const trustDomain = this.#ca.trustDomain;
    const cached = mayIssue(node, identity, this.#pods.cached(), trustDomain);
    if (cached.allowed) return undefined;
    if (this.#pods.boundTo === undefined || identity.trustDomain !== trustDomain) {
      return cached.reason;
    }
    // The cache may not have the binding yet (pods.ts): ask the API server before refusing.
    try {
      const fresh = mayIssue(node, identity, await this.#pods.boundTo(node), trustDomain);
      if (fresh.allowed) return undefined;
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      this.#log(`ca: cannot list the pods of node "${node}" to confirm a refusal: ${why}`);
    }
    return cached.reason;
  }

  /** Serves on the unix socket `socketPath` (mode 0600 unless `mode`), replacing a stale socket file. */
  async listen(socketPath: string, mode = 0o600): Promise<void> {
    if (this.#server !== undefined) throw new Error('The CA service is already listening');
    await removeStaleSocket(socketPath);
    const server = createServer(this.listener);
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(socketPath, mode);
    this.#server = server;
    this.#socketPath = socketPath;
  }

  /** Stops serving: open connections are closed and the socket file removed. */
  async close(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    server.closeAllConnections();
    await closed;
    if (this.#socketPath !== undefined) await unlink(this.#socketPath).catch(() => undefined);
  }
}

/** A socket file left by an earlier process is removed; anything else at the path is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let info;
  try {
    info = await lstat(path);
  } catch {
    return;
  }
  if (!info.isSocket()) {
    throw new Error(`Cannot serve the CA on ${path}: a file that is not a socket is there`);
  }
  await unlink(path);
}

/** Where the controller's CA service lives and what it signs for. */
export interface CaServiceConfig {
  /** The CA's directory: Istio's plug-in files, or where the self-signed root is kept. */
  caDir: string;
  /** The unix socket served. */
  socketPath: string;
  /** node-tokens.json: node → SHA-256 of its token. */
  nodeTokensFile: string;
  /** cluster.local unless given. */
  trustDomain?: string;
  /** The socket's mode; 0600 by default (the node agents run as root). */
  socketMode?: number;
}

/** Opens the CA and the node tokens (either failing throws); listen() serves. */
export async function openCaService(
  config: CaServiceConfig,
  pods: PodSource,
  log: (line: string) => void,
): Promise<{ service: CaService; listen(): Promise<void> }> {
  const ca = await CertificateAuthority.open({
    dir: config.caDir,
    ...(config.trustDomain === undefined ? {} : { trustDomain: config.trustDomain }),
  });
  const tokens = await NodeTokenFile.open(config.nodeTokensFile);
  const service = new CaService({ ca, tokens, pods, log });
  return {
    service,
    async listen() {
      await service.listen(config.socketPath, config.socketMode ?? 0o600);
      log(
        `ca: serving ${ca.source} CA for trust domain ${ca.trustDomain} on ${config.socketPath} (${tokens.nodes().length} node tokens)`,
      );
    },
  };
}
