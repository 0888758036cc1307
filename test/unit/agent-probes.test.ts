// The agent's probes (src/agent/probes.ts) without a pod: a probe Node refuses to even
// start (a path with a space, a header value with a newline, a port out of range) is a
// failed probe with a message, never a rejection that would take the agent down.
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ProbeSpec } from '../../src/agent/launch.js';
import {
  ProbeLoop,
  type ProbeResult,
  type ProbeTarget,
  probeOnce,
} from '../../src/agent/probes.js';

const target = (port = 1): ProbeTarget => ({
  podIP: '127.0.0.1',
  enter: ['/nonexistent/ip', 'netns', 'exec', 'none'],
  env: {},
  workingDir: '/',
  ports: [{ name: 'web', containerPort: port }],
});

describe('probeOnce', () => {
  let server: Server;
  let port = 0;
  before(async () => {
    server = createServer((req, res) => {
      res.statusCode = req.url === '/ok' ? 200 : 500;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.close();
  });

  it('turns a path Node refuses (ERR_UNESCAPED_CHARACTERS) into a failure with its reason', async () => {
    const outcome = await probeOnce({ httpGet: { path: '/a b', port: 'web' } }, target(port));
    assert.equal(outcome.ok, false);
    assert.match(outcome.message ?? '', /^the probe cannot be run: .*unescaped characters/i);
  });

  it('turns a header value with a newline (ERR_INVALID_CHAR) into a failure', async () => {
    const probe: ProbeSpec = {
      httpGet: { path: '/ok', port, httpHeaders: [{ name: 'X-Test', value: 'a\nb' }] },
    };
    const outcome = await probeOnce(probe, target(port));
    assert.equal(outcome.ok, false);
    assert.match(outcome.message ?? '', /^the probe cannot be run: .*X-Test/);
  });

  it('turns a port out of range into a failure', async () => {
    const outcome = await probeOnce({ tcpSocket: { port: 70000 } }, target());
    assert.equal(outcome.ok, false);
    assert.match(outcome.message ?? '', /^the probe cannot be run: /);
  });

  it('says why an ordinary probe failed, and succeeds on 2xx', async () => {
    assert.deepEqual(await probeOnce({ httpGet: { path: '/ok', port } }, target()), { ok: true });
    assert.deepEqual(await probeOnce({ httpGet: { path: '/bad', port } }, target()), {
      ok: false,
      message: 'HTTP probe failed with statuscode: 500',
    });
    assert.deepEqual(await probeOnce({ httpGet: { port: 'metrics' } }, target()), {
      ok: false,
      message: 'port "metrics" is not a named port of the container',
    });
    assert.deepEqual(await probeOnce({}, target()), {
      ok: false,
      message: 'the probe has no handler',
    });
    const exec = await probeOnce({ exec: { command: ['true'] } }, target());
    assert.equal(exec.ok, false);
    assert.match(exec.message ?? '', /^cannot run \["true"\]: /);
  });
});

describe('ProbeLoop', () => {
  it('counts an unrunnable probe as a failure, logs why once, and keeps probing', async () => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown): void => {
      rejections.push(reason);
    };
    process.on('unhandledRejection', onRejection);
    const results: ProbeResult[] = [];
    const lines: string[] = [];
    const loop = new ProbeLoop(
      'liveness',
      { httpGet: { path: '/a b', port: 1 }, periodSeconds: 1, failureThreshold: 2 },
      target(),
      (result) => results.push(result),
      undefined,
      (line) => lines.push(line),
    );
    try {
      loop.start();
      const deadline = Date.now() + 5000;
      while (results.length === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.deepEqual(results, ['failure'], 'two failures in a row fail the liveness probe');
      assert.equal(loop.result, 'failure');
      assert.equal(lines.length, 1, `logged once: ${lines.join(' | ')}`);
      assert.match(lines[0] ?? '', /^liveness probe failed: the probe cannot be run: /);
      assert.deepEqual(rejections, []);
    } finally {
      loop.stop();
      process.off('unhandledRejection', onRejection);
    }
  });
});
