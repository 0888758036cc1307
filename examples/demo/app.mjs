// strata's demo workload: two small HTTP services in one script, no dependencies.
//
//   ROLE=backend   answers with the pod it runs in and that pod's node.
//   ROLE=frontend  asks every ready backend pod and answers with its own line and theirs.
//
// There is no Service VIP or cluster DNS yet, so the frontend finds the backend pods
// the way kube-proxy does: from the backend Service's EndpointSlices, read from the
// API server over its unix socket (STRATA_API_SOCKET; a pod's processes share the
// machine's filesystem). Pod name, node and IP come from the downward API (env).
import console from 'node:console';
import { createServer, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import process from 'node:process';

const role = process.env.ROLE ?? 'backend';
const port = Number(process.env.PORT ?? '8080');
const self = {
  pod: process.env.POD_NAME ?? 'unknown-pod',
  namespace: process.env.POD_NAMESPACE ?? 'default',
  node: process.env.NODE_NAME ?? 'unknown-node',
  ip: process.env.POD_IP ?? '?',
};
const apiSocket = process.env.STRATA_API_SOCKET ?? '/var/lib/strata/default/api.sock';
const backendService = process.env.BACKEND_SERVICE ?? 'backend';

/**
 * One GET: over the API socket when `socketPath` is set, else over TCP.
 * @param {{ host?: string, port?: number, socketPath?: string, path: string }} target
 * @returns {Promise<{ status: number, body: string }>}
 */
function get(target) {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method: 'GET', timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (/** @type {string} */ chunk) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * @typedef {{ name?: string, port?: number }} SlicePort
 * @typedef {{ addresses?: string[], conditions?: { ready?: boolean } }} SliceEndpoint
 * @typedef {{ ports?: SlicePort[], endpoints?: SliceEndpoint[] }} EndpointSlice
 */

/**
 * The ready backend endpoints (`ip:port`), from the Service's EndpointSlices.
 * @returns {Promise<string[]>}
 */
async function backendEndpoints() {
  const selector = encodeURIComponent(`kubernetes.io/service-name=${backendService}`);
  const path = `/apis/discovery.k8s.io/v1/namespaces/${self.namespace}/endpointslices?labelSelector=${selector}`;
  const { status, body } = await get({ socketPath: apiSocket, path });
  if (status !== 200) throw new Error(`the API server answered ${status}: ${body.slice(0, 200)}`);
  /** @type {unknown} */
  const parsed = JSON.parse(body);
  const list = /** @type {{ items: EndpointSlice[] }} */ (parsed);
  return list.items.flatMap((slice) => {
    const slicePort = slice.ports?.find((p) => p.name === 'http') ?? slice.ports?.[0];
    if (slicePort?.port === undefined) return [];
    const portNumber = slicePort.port;
    return (slice.endpoints ?? [])
      .filter((endpoint) => endpoint.conditions?.ready !== false)
      .flatMap((endpoint) => endpoint.addresses?.slice(0, 1) ?? [])
      .map((address) => `${address}:${portNumber}`);
  });
}

/**
 * Asks one backend; a line either way.
 * @param {string} endpoint
 * @returns {Promise<{ ok: boolean, line: string }>}
 */
async function askBackend(endpoint) {
  const [host = '', portText = ''] = endpoint.split(':');
  const started = performance.now();
  try {
    const { status, body } = await get({ host, port: Number(portText), path: '/' });
    const ms = (performance.now() - started).toFixed(1);
    return { ok: status === 200, line: `  -> ${body.trim()}  [${endpoint}, ${ms} ms]` };
  } catch (error) {
    return { ok: false, line: `  -> ${endpoint} failed: ${/** @type {Error} */ (error).message}` };
  }
}

const whoami = `${role} ${self.pod} on ${self.node} (pod IP ${self.ip})`;

/**
 * The frontend's answer: its own line, then each backend's.
 * @returns {Promise<{ status: number, text: string }>}
 */
async function frontendAnswer() {
  let endpoints;
  try {
    endpoints = await backendEndpoints();
  } catch (error) {
    const why = /** @type {Error} */ (error).message;
    return { status: 503, text: `${whoami}\n  cannot list the backend's endpoints: ${why}\n` };
  }
  if (endpoints.length === 0) {
    return { status: 503, text: `${whoami}\n  no ready backend pods yet\n` };
  }
  const answers = await Promise.all(endpoints.sort().map(askBackend));
  const status = answers.some((a) => a.ok) ? 200 : 502;
  return { status, text: [whoami, ...answers.map((a) => a.line)].join('\n') + '\n' };
}

const server = createServer((req, res) => {
  const reply = (/** @type {number} */ status, /** @type {string} */ text) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(text);
    // Readiness probes come every second; only the requests worth reading are logged.
    if (req.url === '/healthz') return;
    console.log(
      `${new Date().toISOString()} ${req.method ?? ''} ${req.url ?? ''} from ${req.socket.remoteAddress ?? '?'}: ${status}`,
    );
  };
  if (req.url === '/healthz') {
    reply(200, 'ok\n');
  } else if (role === 'frontend') {
    void frontendAnswer().then(({ status, text }) => {
      reply(status, text);
    });
  } else {
    reply(200, `${whoami}\n`);
  }
});

server.listen(port, () => {
  console.log(`${new Date().toISOString()} ${whoami} listening on :${port}`);
});

for (const signal of /** @type {const} */ (['SIGTERM', 'SIGINT'])) {
  process.once(signal, () => {
    console.log(`${new Date().toISOString()} ${signal}: stopping`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
