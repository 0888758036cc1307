// strata's demo workload: two small HTTP services in one script, no dependencies.
//
//   ROLE=backend   answers with the pod it runs in and that pod's node.
//   ROLE=frontend  asks the backend Service a few times and answers with its own line and
//                  the backends' answers.
//
// The frontend reaches the backend the way any Kubernetes client does: by the
// Service's name (`backend`, resolved by the cluster DNS through the pod's resolv.conf
// search path), which leads to the Service's virtual IP, which the node's nftables
// rules spread over the ready backend pods. Pod name, node and IP come from the
// downward API (env).
import console from 'node:console';
import { lookup } from 'node:dns/promises';
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
const backendService = process.env.BACKEND_SERVICE ?? 'backend';
/** How many requests the frontend sends the backend Service per answer, each on a new connection. */
const fanOut = Number(process.env.BACKEND_REQUESTS ?? '4');

/**
 * One GET on a connection of its own (no keep-alive: each request is a new
 * connection, which the Service spreads anew).
 * @param {{ host: string, port: number, path: string }} target
 * @returns {Promise<{ status: number, body: string }>}
 */
function get(target) {
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method: 'GET', timeout: 2000, agent: false }, (res) => {
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
 * Asks the backend Service once; a line either way.
 * @param {string} address the Service's address, as the cluster DNS gave it
 * @returns {Promise<{ ok: boolean, line: string }>}
 */
async function askBackend(address) {
  const started = performance.now();
  try {
    const { status, body } = await get({ host: address, port: 80, path: '/' });
    const ms = (performance.now() - started).toFixed(1);
    return { ok: status === 200, line: `  -> ${body.trim()}  [${ms} ms]` };
  } catch (error) {
    return { ok: false, line: `  -> failed: ${/** @type {Error} */ (error).message}` };
  }
}

const whoami = `${role} ${self.pod} on ${self.node} (pod IP ${self.ip})`;

/**
 * The frontend's answer: its own line, then each backend's.
 * @returns {Promise<{ status: number, text: string }>}
 */
async function frontendAnswer() {
  let address;
  try {
    // getaddrinfo, as any program resolves: the short name goes through the search path.
    ({ address } = await lookup(backendService, { family: 4 }));
  } catch (error) {
    const why = /** @type {Error} */ (error).message;
    return { status: 503, text: `${whoami}\n  cannot resolve ${backendService}: ${why}\n` };
  }
  const answers = [];
  for (let i = 0; i < fanOut; i++) answers.push(await askBackend(address));
  const status = answers.some((a) => a.ok) ? 200 : 502;
  const header = `${whoami}\n  ${backendService} is ${address}; ${fanOut} requests, each on a new connection:`;
  return { status, text: [header, ...answers.map((a) => a.line)].join('\n') + '\n' };
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
