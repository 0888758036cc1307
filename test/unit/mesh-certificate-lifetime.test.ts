// `--workload-cert-ttl` of `strata up` and `strata agent` (src/mesh/certificates/lifetime.ts):
// Go-style durations in whole seconds, 10 s up to the CA's 90 days, 24 h (Istio's
// SECRET_TTL) when unset; a bad value is refused naming the flag, before anything runs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentUsageError, parseAgentArgs, resolveSettings } from '../../src/agent/options.js';
import { planCluster } from '../../src/cluster/config.js';
import {
  checkWorkloadCertTtl,
  defaultWorkloadCertTtlSeconds,
  formatWorkloadCertTtl,
  maxWorkloadCertTtlSeconds,
  parseWorkloadCertTtl,
} from '../../src/mesh/certificates/lifetime.js';
import { defaultMaxWorkloadTtlSeconds } from '../../src/mesh/identity/ca.js';

const agentArgs = [
  '--state-dir', '/tmp/s', '--api', '/tmp/s/api.sock', '--node', 'node-1',
  '--node-ip', '172.31.0.11', '--backend', 'host-gw',
  '--ca-socket', '/tmp/s/ca.sock', '--ca-token-file', '/tmp/s/token',
]; // prettier-ignore

describe('workload certificate lifetime', () => {
  it('reads h, m and s in that order, in whole seconds', () => {
    assert.equal(parseWorkloadCertTtl('90s'), 90);
    assert.equal(parseWorkloadCertTtl('30m'), 1800);
    assert.equal(parseWorkloadCertTtl('24h'), 86_400);
    assert.equal(parseWorkloadCertTtl('1h30m'), 5400);
    assert.equal(parseWorkloadCertTtl('1h0m5s'), 3605);
    for (const text of ['', '90', '1.5h', '1d', '30s1m', '-5s', ' 90s', '90S', '500ms']) {
      assert.equal(parseWorkloadCertTtl(text), undefined, text);
    }
  });

  it('writes the shortest spelling it reads back', () => {
    for (const seconds of [10, 90, 3600, 5400, 86_400, maxWorkloadCertTtlSeconds]) {
      assert.equal(parseWorkloadCertTtl(formatWorkloadCertTtl(seconds)), seconds);
    }
    assert.equal(formatWorkloadCertTtl(86_400), '24h');
    assert.equal(formatWorkloadCertTtl(90), '1m30s');
  });

  it("defaults to 24 h and goes up to the CA's maximum", () => {
    assert.equal(defaultWorkloadCertTtlSeconds, 24 * 3600);
    assert.equal(maxWorkloadCertTtlSeconds, defaultMaxWorkloadTtlSeconds);
    assert.deepEqual(checkWorkloadCertTtl('2160h'), { ok: true, seconds: 2160 * 3600 });
    assert.deepEqual(checkWorkloadCertTtl('10s'), { ok: true, seconds: 10 });
    const short = checkWorkloadCertTtl('9s');
    assert.equal(short.ok, false);
    assert.match(short.ok ? '' : short.problem, /must be from 10s to 2160h .*: got "9s"/);
    const long = checkWorkloadCertTtl('2161h');
    assert.equal(long.ok, false);
  });

  it('is checked by strata up before anything is made', () => {
    assert.doesNotThrow(() => planCluster({ workloadCertTtl: '90s' }));
    assert.throws(() => planCluster({ workloadCertTtl: '90' }), {
      code: 'STRATA_ERR_CLUSTER_OPTION',
      message:
        /^--workload-cert-ttl must be a duration in whole seconds such as 90s, 30m, 24h or 1h30m: got "90"$/,
    });
    assert.throws(() => planCluster({ workloadCertTtl: '5s' }), {
      code: 'STRATA_ERR_CLUSTER_OPTION',
      message: /^--workload-cert-ttl must be from 10s to 2160h/,
    });
  });

  it("reaches the agent's mesh settings, and is refused there when out of range", () => {
    const options = parseAgentArgs([...agentArgs, '--workload-cert-ttl', '20s']);
    assert.equal(options.workloadCertTtlSeconds, 20);
    assert.equal(resolveSettings(options).mesh?.workloadCertTtlSeconds, 20);
    // Unset: the CA's default lifetime (the agent asks for none).
    assert.equal(
      resolveSettings(parseAgentArgs(agentArgs)).mesh?.workloadCertTtlSeconds,
      undefined,
    );
    assert.throws(() => parseAgentArgs([...agentArgs, '--workload-cert-ttl', 'soon']), {
      name: 'AgentUsageError',
      message: /^--workload-cert-ttl must be a duration/,
    });
    assert.throws(
      () => resolveSettings({ ...options, workloadCertTtlSeconds: 3 }),
      (error: unknown) =>
        error instanceof AgentUsageError &&
        /--workload-cert-ttl must be from 10s/.test(error.message),
    );
  });
});
