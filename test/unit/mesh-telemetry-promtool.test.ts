// The proxy's exposition is valid by Prometheus' own checker: `promtool
// check metrics` parses it and lints it (HELP present, counters named
// *_total, units in names) and must print nothing at all. promtool comes from
// scripts/setup.sh (.tools/bin), else PATH.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { TcpMetrics } from '../../src/mesh/telemetry/metrics.js';
import { inboundMtls, outboundMtls, productpage, reviews } from './mesh-telemetry-fixtures.test.js';

// dist/test/unit/ → the repository root.
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function findPromtool(): string | undefined {
  const bundled = join(repoRoot, '.tools/bin/promtool');
  if (existsSync(bundled)) return bundled;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && existsSync(join(dir, 'promtool'))) return join(dir, 'promtool');
  }
  return undefined;
}

const promtool = findPromtool();
const skip =
  promtool === undefined
    ? 'promtool is neither in .tools/bin (run scripts/setup.sh) nor on PATH'
    : false;

let scratch = '';
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'strata-mesh-telemetry-promtool-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Runs `promtool check metrics < file`. */
async function checkMetrics(file: string): Promise<{ status: number | null; output: string }> {
  const input = await open(file, 'r');
  try {
    const run = spawnSync(promtool ?? 'promtool', ['check', 'metrics'], {
      stdio: [input.fd, 'pipe', 'pipe'],
      encoding: 'utf8',
    });
    return { status: run.status, output: `${run.stdout}${run.stderr}` };
  } finally {
    await input.close();
  }
}

describe('promtool check metrics', { skip }, () => {
  it('passes the exposition of a proxy with a few connections, with no lint output', async () => {
    const metrics = new TcpMetrics();
    const ok = metrics.open(inboundMtls);
    ok.received(75);
    ok.sent(1574);
    ok.close();
    const outbound = metrics.open(outboundMtls);
    outbound.received(4096);
    metrics
      .open({
        reporter: 'destination',
        source: { ...productpage, identity: undefined },
        destination: reviews,
        security: 'unknown',
      })
      .close({ error: 'denied by policy', responseFlags: 'DENY' });
    metrics.open({ reporter: 'source', security: 'unknown' }).close({ responseFlags: 'CONNECT' });

    const file = join(scratch, 'with-connections.prom');
    await writeFile(file, await metrics.registry.metrics());
    const { status, output } = await checkMetrics(file);
    assert.equal(output, '', 'promtool printed lint problems');
    assert.equal(status, 0);
    outbound.close();
    metrics.stop();
  });

  it('passes the exposition of a proxy that has seen no connection yet', async () => {
    const file = join(scratch, 'empty.prom');
    await writeFile(file, await new TcpMetrics().registry.metrics());
    const { status, output } = await checkMetrics(file);
    assert.equal(output, '');
    assert.equal(status, 0);
  });

  it('is not a check that always passes: it flags a counter without _total', async () => {
    const file = join(scratch, 'bad.prom');
    await writeFile(file, '# HELP tcp_bytes Bytes.\n# TYPE tcp_bytes counter\ntcp_bytes 1\n');
    const { status, output } = await checkMetrics(file);
    assert.notEqual(status, 0);
    assert.match(output, /_total/);
  });
});
