// runPlugin, libcni's skel for strata: environment and stdin in, the result
// or the spec's error object out on stdout, and the exit code.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CniEnvironment } from '../../src/cni/environment.js';
import { CniError, CniErrorCode } from '../../src/cni/errors.js';
import type { NetConf } from '../../src/cni/netconf.js';
import { type CniResult, emptyResult } from '../../src/cni/result.js';
import { type CniPlugin, type PluginIo, runPlugin } from '../../src/cni/skel.js';

interface Call {
  command: string;
  conf: NetConf;
  env: CniEnvironment;
  stdin: string;
}

/** A plugin that records its calls and returns `result`, or fails with `failure`. */
function fakePlugin(options: { result?: CniResult; failure?: Error } = {}): {
  plugin: CniPlugin;
  calls: Call[];
} {
  const calls: Call[] = [];
  const settle = <T>(call: Call, value: T): Promise<T> => {
    calls.push(call);
    return options.failure ? Promise.reject(options.failure) : Promise.resolve(value);
  };
  const plugin: CniPlugin = {
    add: (conf, env, stdin) =>
      settle({ command: 'ADD', conf, env, stdin }, options.result ?? emptyResult()),
    del: (conf, env, stdin) => settle({ command: 'DEL', conf, env, stdin }, undefined),
    check: (conf, env, stdin) => settle({ command: 'CHECK', conf, env, stdin }, undefined),
    status: (conf, env, stdin) => settle({ command: 'STATUS', conf, env, stdin }, undefined),
    gc: (conf, env, stdin) => settle({ command: 'GC', conf, env, stdin }, undefined),
  };
  return { plugin, calls };
}

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as one JSON value. */
  json: Record<string, unknown> | undefined;
}

async function run(
  plugin: CniPlugin,
  env: Record<string, string>,
  stdin: unknown,
): Promise<Outcome> {
  let stdout = '';
  let stderr = '';
  const io: PluginIo = {
    env,
    readStdin: () => (typeof stdin === 'string' ? stdin : JSON.stringify(stdin)),
    writeStdout: (text) => {
      stdout += text;
    },
    writeStderr: (text) => {
      stderr += text;
    },
  };
  const code = await runPlugin(plugin, io);
  return {
    code,
    stdout,
    stderr,
    json: stdout === '' ? undefined : (JSON.parse(stdout) as Record<string, unknown>),
  };
}

const attachment = {
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/var/run/netns/pod',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
};

function conf(cniVersion: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cniVersion, name: 'podnet', type: 'strata-cni', ...extra };
}

const result: CniResult = {
  ...emptyResult(),
  interfaces: [
    { name: 'eth0', mac: '02:00:00:00:00:05', mtu: 1450, sandbox: '/var/run/netns/pod' },
  ],
  ips: [{ address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 0 }],
};

describe('runPlugin: VERSION', () => {
  // CNI spec 1.1.0, VERSION: prints {cniVersion, supportedVersions}.
  for (const stdin of ['', JSON.stringify({ cniVersion: '0.4.0' }), 'not json']) {
    it(`prints the supported versions and exits 0 (stdin ${JSON.stringify(stdin)})`, async () => {
      const { plugin, calls } = fakePlugin();
      const out = await run(plugin, { CNI_COMMAND: 'VERSION' }, stdin);
      assert.equal(out.code, 0);
      assert.deepEqual(out.json, {
        cniVersion: '1.1.0',
        supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
      });
      assert.ok(out.stdout.endsWith('}\n'));
      assert.equal(calls.length, 0);
    });
  }
});

describe('runPlugin: commands', () => {
  it("ADD prints the result in the configuration's version and exits 0", async () => {
    const { plugin, calls } = fakePlugin({ result });
    const stdin = conf('1.1.0');
    const out = await run(plugin, { CNI_COMMAND: 'ADD', ...attachment }, stdin);
    assert.equal(out.code, 0);
    assert.deepEqual(out.json, {
      cniVersion: '1.1.0',
      interfaces: result.interfaces,
      ips: result.ips,
    });
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.command, 'ADD');
    assert.equal(calls[0]?.conf.name, 'podnet');
    assert.equal(calls[0]?.env.containerId, 'c0ffee');
    assert.equal(calls[0]?.stdin, JSON.stringify(stdin));
  });

  it('ADD on 0.3.1 prints a 0.3.1 result', async () => {
    const { plugin } = fakePlugin({ result });
    const out = await run(plugin, { CNI_COMMAND: 'ADD', ...attachment }, conf('0.3.1'));
    assert.equal(out.code, 0);
    assert.deepEqual(out.json, {
      cniVersion: '0.3.1',
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:00:05', sandbox: '/var/run/netns/pod' }],
      ips: [{ version: '4', address: '10.1.0.5/24', gateway: '10.1.0.1', interface: 0 }],
    });
  });

  // Success for DEL, CHECK, STATUS and GC is exit 0 with nothing on stdout.
  const silent: { command: string; version: string; env: Record<string, string> }[] = [
    { command: 'DEL', version: '0.3.1', env: { CNI_CONTAINERID: 'c0ffee', CNI_IFNAME: 'eth0' } },
    { command: 'CHECK', version: '0.4.0', env: attachment },
    { command: 'CHECK', version: '1.0.0', env: attachment },
    { command: 'STATUS', version: '1.1.0', env: {} },
    { command: 'GC', version: '1.1.0', env: {} },
  ];
  for (const c of silent) {
    it(`${c.command} on ${c.version} calls the plugin, prints nothing, exits 0`, async () => {
      const { plugin, calls } = fakePlugin();
      const out = await run(plugin, { CNI_COMMAND: c.command, ...c.env }, conf(c.version));
      assert.equal(out.code, 0);
      assert.equal(out.stdout, '');
      assert.deepEqual(
        calls.map((x) => x.command),
        [c.command],
      );
    });
  }
});

describe('runPlugin: errors', () => {
  it('prints {cniVersion, code, msg} and exits 1 when the plugin fails with a CniError', async () => {
    const { plugin } = fakePlugin({
      failure: new CniError(CniErrorCode.TryAgainLater, 'no IP addresses available'),
    });
    const out = await run(plugin, { CNI_COMMAND: 'ADD', ...attachment }, conf('1.0.0'));
    assert.equal(out.code, 1);
    assert.deepEqual(out.json, { cniVersion: '1.0.0', code: 11, msg: 'no IP addresses available' });
    assert.equal(out.stderr, '');
  });

  it('includes details when the error has them', async () => {
    const { plugin } = fakePlugin({
      failure: new CniError(CniErrorCode.Internal, 'cannot create bridge cni0', {
        details: 'RTNETLINK answers: File exists',
      }),
    });
    const out = await run(plugin, { CNI_COMMAND: 'DEL', ...attachment }, conf('0.4.0'));
    assert.equal(out.code, 1);
    assert.deepEqual(out.json, {
      cniVersion: '0.4.0',
      code: 999,
      msg: 'cannot create bridge cni0',
      details: 'RTNETLINK answers: File exists',
    });
  });

  it('reports any other error as code 999 with its whole cause chain', async () => {
    const { plugin } = fakePlugin({
      failure: new Error('cannot attach', { cause: new Error('ip failed (exit 2)') }),
    });
    const out = await run(plugin, { CNI_COMMAND: 'ADD', ...attachment }, conf('1.1.0'));
    assert.equal(out.code, 1);
    assert.deepEqual(out.json, {
      cniVersion: '1.1.0',
      code: 999,
      msg: 'cannot attach: ip failed (exit 2)',
    });
  });

  it('prints the stack on stderr only when STRATA_CNI_DEBUG is set', async () => {
    const { plugin } = fakePlugin({ failure: new Error('boom') });
    const out = await run(
      plugin,
      { CNI_COMMAND: 'ADD', ...attachment, STRATA_CNI_DEBUG: '1' },
      conf('1.1.0'),
    );
    assert.equal(out.code, 1);
    assert.match(out.stderr, /^Error: boom\n\s+at /);
  });

  // CNI spec 1.1.0: CHECK arrived in 0.4.0, STATUS and GC in 1.1.0; asking
  // for them in an older version is code 1, "Incompatible CNI version".
  const tooOld: { command: string; version: string; env: Record<string, string> }[] = [
    { command: 'CHECK', version: '0.3.1', env: attachment },
    { command: 'CHECK', version: '0.3.0', env: attachment },
    { command: 'GC', version: '1.0.0', env: {} },
    { command: 'STATUS', version: '1.0.0', env: {} },
    { command: 'GC', version: '0.4.0', env: {} },
  ];
  for (const c of tooOld) {
    it(`${c.command} on ${c.version} is refused with code 1, without calling the plugin`, async () => {
      const { plugin, calls } = fakePlugin();
      const out = await run(plugin, { CNI_COMMAND: c.command, ...c.env }, conf(c.version));
      assert.equal(out.code, 1);
      assert.equal(out.json?.code, CniErrorCode.IncompatibleVersion);
      assert.equal(out.json?.cniVersion, c.version);
      assert.match(String(out.json?.msg), new RegExp(`^${c.command} needs cniVersion`));
      assert.equal(calls.length, 0);
    });
  }

  const refused: {
    name: string;
    env: Record<string, string>;
    stdin: unknown;
    expected: { cniVersion: string; code: number; msg: RegExp };
  }[] = [
    {
      name: 'stdin that is not JSON: code 6',
      env: { CNI_COMMAND: 'ADD', ...attachment },
      stdin: '{"cniVersion": "1.0.0",',
      expected: { cniVersion: '1.1.0', code: 6, msg: /cannot decode the network configuration/ },
    },
    {
      name: 'empty stdin on ADD: code 6',
      env: { CNI_COMMAND: 'ADD', ...attachment },
      stdin: '',
      expected: { cniVersion: '1.1.0', code: 6, msg: /cannot decode/ },
    },
    {
      name: 'an unsupported cniVersion: code 1, answered in the current version',
      env: { CNI_COMMAND: 'ADD', ...attachment },
      stdin: conf('0.2.0'),
      expected: {
        cniVersion: '1.1.0',
        code: 1,
        msg: /incompatible CNI versions: config is "0\.2\.0"/,
      },
    },
    {
      name: "a missing variable: code 4, answered in the configuration's version",
      env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c0ffee', CNI_IFNAME: 'eth0' },
      stdin: conf('0.4.0'),
      expected: { cniVersion: '0.4.0', code: 4, msg: /CNI_NETNS is required for ADD/ },
    },
    {
      name: 'no CNI_COMMAND: code 4',
      env: {},
      stdin: conf('1.0.0'),
      expected: { cniVersion: '1.0.0', code: 4, msg: /CNI_COMMAND is not set/ },
    },
    {
      name: 'an invalid network name: code 7',
      env: { CNI_COMMAND: 'DEL', ...attachment },
      stdin: conf('1.0.0', { name: 'pod net' }),
      expected: { cniVersion: '1.0.0', code: 7, msg: /^name must start/ },
    },
  ];
  for (const c of refused) {
    it(c.name, async () => {
      const { plugin, calls } = fakePlugin();
      const out = await run(plugin, c.env, c.stdin);
      assert.equal(out.code, 1);
      assert.ok(out.json);
      assert.deepEqual(Object.keys(out.json).sort(), ['cniVersion', 'code', 'msg']);
      assert.equal(out.json.cniVersion, c.expected.cniVersion);
      assert.equal(out.json.code, c.expected.code);
      assert.match(String(out.json.msg), c.expected.msg);
      assert.equal(calls.length, 0);
      assert.ok(out.stdout.endsWith('\n'));
    });
  }
});
