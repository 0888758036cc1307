// What the CA service tests share: a real CA in a temporary directory, node
// tokens provisioned as `strata up` provisions them, pods held in memory as
// the controller's informer would hold them, the service on a unix socket,
// and a small HTTP client for it. It holds no tests of its own.
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeObject } from '../../src/api/types.js';
import { informerPodSource, type PodSource } from '../../src/mesh/ca-service/pods.js';
import { CaService } from '../../src/mesh/ca-service/service.js';
import { NodeTokenFile, provisionNodeTokens } from '../../src/mesh/ca-service/tokens.js';
import { CertificateAuthority } from '../../src/mesh/identity/ca.js';

/** A pod as the API holds it, bound to `node` (unscheduled when undefined). */
export function pod(
  name: string,
  options: {
    namespace?: string;
    serviceAccount?: string;
    node?: string;
    phase?: string;
    deleted?: boolean;
  } = {},
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: options.namespace ?? 'shop',
      ...(options.deleted === true ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: {
      serviceAccountName: options.serviceAccount ?? 'web',
      ...(options.node === undefined ? {} : { nodeName: options.node }),
      containers: [{ name: 'app', image: 'app' }],
    },
    status: { phase: options.phase ?? 'Running' },
  };
}

export interface CaFixture {
  dir: string;
  ca: CertificateAuthority;
  service: CaService;
  socketPath: string;
  /** What the informer cache holds; tests change it. */
  pods: KubeObject[];
  /** What a fresh listing from the API server holds when it differs from the cache (a cache behind). */
  apiPods: KubeObject[] | undefined;
  /** The token of node-1, node-2. */
  tokens: Record<string, string>;
  tokenFile(node: string): string;
  tokensFile: string;
  logs: string[];
  /** Starts serving (done by startCaFixture unless `listen: false`). */
  listen(): Promise<void>;
  close(): Promise<void>;
}

export const nodes = ['node-1', 'node-2'];

export async function startCaFixture(options: { listen?: boolean } = {}): Promise<CaFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-mesh-ca-'));
  const caDir = join(dir, 'ca');
  const tokensFile = join(caDir, 'node-tokens.json');
  const tokenFile = (node: string): string => join(dir, 'nodes', node, 'ca-token');
  await provisionNodeTokens({ nodes, tokensFile, tokenFile });
  const tokens: Record<string, string> = {};
  for (const node of nodes) tokens[node] = (await readFile(tokenFile(node), 'utf8')).trim();
  const ca = await CertificateAuthority.open({ dir: caDir });
  const logs: string[] = [];
  const fixture: CaFixture = {
    dir,
    ca,
    service: undefined as unknown as CaService,
    socketPath: join(dir, 'ca.sock'),
    pods: [],
    apiPods: undefined,
    tokens,
    tokenFile,
    tokensFile,
    logs,
    async listen() {
      await fixture.service.listen(fixture.socketPath);
    },
    async close() {
      await fixture.service.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  const cached = informerPodSource({ list: () => fixture.pods });
  const pods: PodSource = {
    cached: () => cached.cached(),
    boundTo: async (node) => {
      await Promise.resolve();
      const listed = (fixture.apiPods ?? fixture.pods).filter((p) => p.spec?.nodeName === node);
      return informerPodSource({ list: () => listed }).cached();
    },
  };
  fixture.service = new CaService({
    ca,
    tokens: await NodeTokenFile.open(tokensFile),
    pods,
    log: (line) => logs.push(line),
  });
  if (options.listen !== false) await fixture.listen();
  return fixture;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** One request to the service; `body` as an object is sent as JSON, a Buffer as is. */
export function call(
  socketPath: string,
  options: {
    method?: string;
    path?: string;
    token?: string;
    authorization?: string;
    body?: unknown;
    /** Send the body chunked, without a content-length. */
    chunked?: boolean;
  },
): Promise<Answer> {
  const payload =
    options.body === undefined
      ? undefined
      : Buffer.isBuffer(options.body)
        ? options.body
        : Buffer.from(JSON.stringify(options.body));
  const authorization =
    options.authorization ?? (options.token === undefined ? undefined : `Bearer ${options.token}`);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method: options.method ?? 'POST',
        path: options.path ?? '/v1/certificates',
        headers: {
          ...(authorization === undefined ? {} : { authorization }),
          ...(payload === undefined || options.chunked === true
            ? {}
            : { 'content-length': payload.length }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: Record<string, unknown>;
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            body = { text };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.once('error', reject);
    req.end(payload);
  });
}
