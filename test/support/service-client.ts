/**
 * A steady stream of requests to a Service, run inside a client pod's
 * network namespace: RATE requests per second to URL, each on a new TCP
 * connection (no keep-alive agent), each given TIMEOUT_MS. One JSON line
 * per request on stdout as it completes:
 *
 *   {"at":1234,"ok":true,"pod":"web-abc","ms":3}
 *   {"at":1260,"ok":false,"error":"ECONNREFUSED","ms":1}
 *
 * (`at`: when it was sent, in ms since the client started). When stdin
 * closes it stops sending, waits for the requests in flight and exits.
 *
 *   node service-client.js URL RATE TIMEOUT_MS    (inside the pod's network namespace)
 */
import { request } from 'node:http';

const [url = '', rate = '40', timeout = '2000'] = process.argv.slice(2);
const timeoutMs = Number(timeout);
const started = performance.now();
let inFlight = 0;
let stopping = false;

function report(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function send(): void {
  const at = Math.round(performance.now() - started);
  inFlight += 1;
  let done = false;
  const finish = (outcome: { ok: boolean; pod?: string; error?: string }): void => {
    if (done) return;
    done = true;
    inFlight -= 1;
    report({ at, ...outcome, ms: Math.round(performance.now() - started - at) });
    if (stopping && inFlight === 0) process.exit(0);
  };
  const req = request(url, { agent: false, timeout: timeoutMs }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (body += chunk));
    res.on('end', () => {
      if (res.statusCode === 200) finish({ ok: true, pod: body.trim() });
      else finish({ ok: false, error: `HTTP ${res.statusCode ?? '?'}` });
    });
    res.on('error', (error: NodeJS.ErrnoException) => {
      finish({ ok: false, error: error.code ?? error.message });
    });
  });
  req.on('timeout', () => {
    req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' }));
  });
  req.on('error', (error: NodeJS.ErrnoException) => {
    finish({ ok: false, error: error.code ?? error.message });
  });
  req.end();
}

const timer = setInterval(send, 1000 / Number(rate));
process.stdin.resume();
process.stdin.on('end', () => {
  stopping = true;
  clearInterval(timer);
  if (inFlight === 0) process.exit(0);
});
