// The container runtime's side of CNI, without running a plugin: loading and
// validating network configuration lists (CNI spec 1.1.0, section 1
// "Network configuration format"; libcni conf.go; kubelet's choice of the
// lexically first valid file), deriving each plugin's configuration (section
// 3 "Deriving execution configuration from plugin configuration"), and the
// libcni-format result cache.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CniErrorCode } from '../../src/cni/errors.js';
import type { CniResult } from '../../src/cni/result.js';
import {
  cacheAdd,
  cacheFilePath,
  getCachedAttachments,
  getCachedResult,
} from '../../src/cni/runtime/cache.js';
import {
  listConfigFiles,
  loadDefaultNetwork,
  loadNetworkConfigFile,
  parseNetworkConfig,
  parseNetworkConfigList,
} from '../../src/cni/runtime/conflist.js';
import {
  deriveExecConfig,
  deriveGcConfig,
  deriveRuntimeConfig,
  deriveStatusConfig,
} from '../../src/cni/runtime/request.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'strata-cni-runtime-'));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function write(dir: string, file: string, body: unknown): void {
  writeFileSync(join(dir, file), typeof body === 'string' ? body : JSON.stringify(body));
}

const bridge = { type: 'strata-cni', bridge: 'cni0', ipam: { type: 'strata-ipam' } };
const portmap = { type: 'portmap', capabilities: { portMappings: true } };
const listHeader = { cniVersion: '1.0.0', name: 'podnet' };
const validList = { ...listHeader, plugins: [bridge, portmap] };

function parse(body: unknown): ReturnType<typeof parseNetworkConfigList> {
  return parseNetworkConfigList(JSON.stringify(body), 'test.conflist');
}

describe('parseNetworkConfigList', () => {
  it('reads name, cniVersion, flags and plugins, keeping each plugin object as written', () => {
    const list = parse({ ...validList, disableCheck: true });
    assert.equal(list.name, 'podnet');
    assert.equal(list.cniVersion, '1.0.0');
    assert.equal(list.disableCheck, true);
    assert.equal(list.disableGC, false);
    assert.deepEqual(
      list.plugins.map((p) => p.type),
      ['strata-cni', 'portmap'],
    );
    assert.deepEqual(list.plugins[1]?.capabilities, ['portMappings']);
    assert.deepEqual(list.plugins[0]?.raw, bridge);
  });

  // libcni readBool: a boolean or the strings "true"/"false" in any case.
  for (const [value, expected] of [
    [true, true],
    ['TRUE', true],
    ['false', false],
  ] as const) {
    it(`reads disableGC ${JSON.stringify(value)} as ${expected}`, () => {
      assert.equal(parse({ ...validList, disableGC: value }).disableGC, expected);
    });
  }

  // Spec 1.1.0 "Configuration format", cniVersions; libcni picks the highest version it
  // implements and ignores newer ones.
  for (const [label, fields, expected] of [
    ['cniVersions alone', { cniVersions: ['0.4.0', '1.0.0'] }, '1.0.0'],
    ['cniVersions with a newer spec', { cniVersions: ['1.1.0', '2.0.0'] }, '1.1.0'],
    [
      'cniVersion higher than cniVersions',
      { cniVersion: '1.1.0', cniVersions: ['1.0.0'] },
      '1.1.0',
    ],
    [
      'cniVersions higher than cniVersion',
      { cniVersion: '0.4.0', cniVersions: ['1.0.0'] },
      '1.0.0',
    ],
    ['unsorted cniVersions', { cniVersions: ['1.0.0', '0.3.1', '1.1.0', '0.4.0'] }, '1.1.0'],
  ] as const) {
    it(`selects ${expected} from ${label}`, () => {
      assert.equal(parse({ name: 'podnet', plugins: [bridge], ...fields }).cniVersion, expected);
    });
  }

  for (const [label, body, code, message] of [
    ['no name', { cniVersion: '1.0.0', plugins: [bridge] }, 7, /name is missing/],
    ['a name with a space', { ...validList, name: 'pod net' }, 7, /name must start/],
    ['a name that is not a string', { ...validList, name: 7 }, 7, /name must start/],
    ['no version at all', { name: 'podnet', plugins: [bridge] }, 7, /cniVersion is missing/],
    ['cniVersion not a string', { ...validList, cniVersion: 1 }, 7, /cniVersion must be a string/],
    [
      'a version older than results we read',
      { ...validList, cniVersion: '0.2.0' },
      1,
      /"0\.2\.0" is not supported/,
    ],
    [
      'a version newer than the runtime',
      { ...validList, cniVersion: '1.2.0' },
      1,
      /"1\.2\.0" is not supported/,
    ],
    [
      'cniVersions not a list',
      { ...validList, cniVersions: '1.0.0' },
      7,
      /cniVersions must be a list/,
    ],
    [
      'a malformed cniVersions entry',
      { ...validList, cniVersions: ['1.0'] },
      7,
      /cniVersions\[0\] must be a version/,
    ],
    [
      'only newer cniVersions and no cniVersion',
      { name: 'podnet', cniVersions: ['2.0.0'], plugins: [bridge] },
      7,
      /cniVersion is missing/,
    ],
    [
      'disableCheck "yes"',
      { ...validList, disableCheck: 'yes' },
      7,
      /disableCheck must be true or false/,
    ],
    ['plugins not a list', { ...validList, plugins: bridge }, 7, /plugins must be a list/],
    ['an empty plugins list', { ...validList, plugins: [] }, 7, /plugins must not be empty/],
    [
      'a plugin without type',
      { ...validList, plugins: [bridge, { capabilities: {} }] },
      7,
      /plugins\[1\]\.type must name/,
    ],
    [
      'a plugin type with a path',
      { ...validList, plugins: [{ type: '../bin/evil' }] },
      7,
      /plugins\[0\]\.type must be a file name/,
    ],
    [
      'a capability that is not a boolean',
      { ...validList, plugins: [{ type: 'portmap', capabilities: { portMappings: 'yes' } }] },
      7,
      /plugins\[0\]\.capabilities\.portMappings must be true or false/,
    ],
    [
      'an ipam that is not an object',
      { ...validList, plugins: [{ type: 'bridge', ipam: 'host-local' }] },
      7,
      /plugins\[0\]\.ipam must be an object/,
    ],
    [
      'loadOnlyInlinedPlugins without plugins',
      { cniVersion: '1.0.0', name: 'podnet', loadOnlyInlinedPlugins: true },
      7,
      /plugins is missing and loadOnlyInlinedPlugins is true/,
    ],
  ] as const) {
    it(`refuses ${label} with code ${code}, naming the field`, () => {
      assert.throws(() => parse(body), {
        name: 'CniError',
        code,
        message: new RegExp(`^test\\.conflist: .*${message.source}`),
      });
    });
  }

  it('refuses text that is not a JSON object with code 6', () => {
    for (const text of ['{', '[]', '"podnet"']) {
      assert.throws(() => parseNetworkConfigList(text, 'x.conflist'), {
        code: CniErrorCode.DecodingFailure,
        message: /cannot decode x\.conflist: /,
      });
    }
  });
});

describe('parseNetworkConfig (a single-plugin .conf)', () => {
  it('becomes a list of one plugin with its name and version (libcni ConfListFromConf)', () => {
    const list = parseNetworkConfig(
      JSON.stringify({ cniVersion: '0.4.0', name: 'single', ...bridge }),
      'a.conf',
    );
    assert.equal(list.name, 'single');
    assert.equal(list.cniVersion, '0.4.0');
    assert.equal(list.plugins.length, 1);
    assert.equal(list.plugins[0]?.type, 'strata-cni');
  });

  it('refuses a .conf without type, suggesting it is a conflist', () => {
    assert.throws(() => parseNetworkConfig(JSON.stringify(validList), 'a.conf'), {
      code: CniErrorCode.InvalidNetworkConfig,
      message: /a\.conf: type is missing \(is this a \.conflist\?\)/,
    });
  });
});

describe('loading from a directory', () => {
  it('lists .conf, .conflist and .json files in lexical order, not directories or other files', () => {
    const dir = tempDir();
    for (const file of [
      '20-b.conf',
      '10-a.conflist',
      '30-c.json',
      '05-notes.txt',
      '00-backup.conflist.bak',
    ]) {
      write(dir, file, '{}');
    }
    mkdirSync(join(dir, '01-dir.conflist'));
    assert.deepEqual(
      listConfigFiles(dir).map((f) => f.slice(dir.length + 1)),
      ['10-a.conflist', '20-b.conf', '30-c.json'],
    );
    assert.deepEqual(listConfigFiles(join(dir, 'missing')), []);
  });

  it('uses the lexically first file (kubelet), not the first written', () => {
    const dir = tempDir();
    write(dir, '20-second.conflist', { ...validList, name: 'second' });
    write(dir, '10-first.conflist', { ...validList, name: 'first' });
    const { list, skipped } = loadDefaultNetwork(dir);
    assert.equal(list.name, 'first');
    assert.equal(list.source, join(dir, '10-first.conflist'));
    assert.deepEqual(skipped, []);
  });

  it('skips invalid files with their reasons and uses the first valid one', () => {
    const dir = tempDir();
    write(dir, '10-broken.conflist', '{"name": "broken",');
    write(dir, '20-empty.conflist', { ...validList, name: 'empty', plugins: [] });
    write(dir, '30-list-as-conf.conf', { ...validList, name: 'mislabelled' });
    write(dir, '40-good.conf', { cniVersion: '1.0.0', name: 'good', ...bridge });
    const { list, skipped } = loadDefaultNetwork(dir);
    assert.equal(list.name, 'good');
    assert.deepEqual(
      skipped.map((s) => s.file.slice(dir.length + 1)),
      ['10-broken.conflist', '20-empty.conflist', '30-list-as-conf.conf'],
    );
    assert.match(skipped[0]?.reason ?? '', /cannot decode .*10-broken/);
    assert.match(skipped[1]?.reason ?? '', /plugins must not be empty/);
    assert.match(skipped[2]?.reason ?? '', /type is missing/);
  });

  it('fails naming every reason when no file is valid, and says so when there is none', () => {
    const dir = tempDir();
    write(dir, '10-bad.conflist', { ...validList, cniVersion: '9.9.9' });
    assert.throws(() => loadDefaultNetwork(dir), {
      code: CniErrorCode.InvalidNetworkConfig,
      message: /no valid network configuration in .*10-bad\.conflist: cniVersion "9\.9\.9"/,
    });
    assert.throws(() => loadDefaultNetwork(tempDir()), {
      code: CniErrorCode.InvalidNetworkConfig,
      message: /no network configuration in .* \(looked for \.conf, \.conflist, \.json files\)/,
    });
  });

  it('appends plugins from <dir>/<network>/*.conf unless loadOnlyInlinedPlugins (spec 1.1.0; libcni)', () => {
    const dir = tempDir();
    const header = listHeader;
    write(dir, '10-agg.conflist', { ...header, plugins: [bridge] });
    mkdirSync(join(dir, 'podnet'));
    write(join(dir, 'podnet'), '20-tuning.conf', { type: 'tuning' });
    write(join(dir, 'podnet'), '10-portmap.conf', portmap);
    write(join(dir, 'podnet'), 'ignored.json', { type: 'firewall' });
    assert.deepEqual(
      loadNetworkConfigFile(join(dir, '10-agg.conflist')).plugins.map((p) => p.type),
      ['strata-cni', 'portmap', 'tuning'],
    );
    write(dir, '20-inline.conflist', {
      ...header,
      loadOnlyInlinedPlugins: true,
      plugins: [bridge],
    });
    assert.deepEqual(
      loadNetworkConfigFile(join(dir, '20-inline.conflist')).plugins.map((p) => p.type),
      ['strata-cni'],
    );
    // Without a plugins key, the directory alone may supply them.
    write(dir, '30-dir-only.conflist', header);
    assert.deepEqual(
      loadNetworkConfigFile(join(dir, '30-dir-only.conflist')).plugins.map((p) => p.type),
      ['portmap', 'tuning'],
    );
    write(dir, '40-none.conflist', { ...header, name: 'nothing-here' });
    assert.throws(() => loadNetworkConfigFile(join(dir, '40-none.conflist')), {
      message: /plugins is missing and .*nothing-here\/ holds no \*\.conf/,
    });
  });
});

const prevResult: CniResult = {
  interfaces: [{ name: 'eth0', mac: '0a:58:0a:00:00:05', sandbox: '/var/run/netns/pod' }],
  ips: [{ address: '10.96.0.5/24', gateway: '10.96.0.1', interface: 0 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.96.0.1' }],
  dns: {},
};

describe('deriving a plugin’s configuration (spec 1.1.0 section 3)', () => {
  const list = parse({
    ...validList,
    plugins: [
      { ...bridge, name: 'stale', cniVersion: '0.3.0' },
      { type: 'tuning', capabilities: { mac: true, ips: false }, sysctl: { a: '1' } },
      { type: 'firewall', runtimeConfig: { static: true } },
    ],
  });
  const [strata, tuning, firewall] = list.plugins;
  assert.ok(strata && tuning && firewall);
  const capabilityArgs = {
    mac: '0a:58:00:00:00:01',
    ips: ['10.96.0.9/24'],
    portMappings: [{ hostPort: 80, containerPort: 8080, protocol: 'tcp' }],
  };

  it('injects the list’s name and cniVersion over the plugin’s own, and removes capabilities', () => {
    const config = deriveExecConfig(list, tuning);
    assert.equal(config.name, 'podnet');
    assert.equal(config.cniVersion, '1.0.0');
    assert.equal('capabilities' in config, false);
    assert.deepEqual(config.sysctl, { a: '1' }, 'other fields pass through');
    assert.equal(deriveExecConfig(list, strata).name, 'podnet');
    assert.equal(deriveExecConfig(list, strata).cniVersion, '1.0.0');
  });

  it('puts only declared, enabled capabilities into runtimeConfig', () => {
    assert.deepEqual(deriveRuntimeConfig(tuning, capabilityArgs), { mac: capabilityArgs.mac });
    assert.deepEqual(deriveExecConfig(list, tuning, { capabilityArgs }).runtimeConfig, {
      mac: capabilityArgs.mac,
    });
    assert.equal('runtimeConfig' in deriveExecConfig(list, strata, { capabilityArgs }), false);
    // libcni: a runtimeConfig in the file stays when the runtime has nothing for the plugin.
    assert.deepEqual(deriveExecConfig(list, firewall, { capabilityArgs }).runtimeConfig, {
      static: true,
    });
  });

  it('adds prevResult in the list’s version, and no prevResult when there is none', () => {
    const config = deriveExecConfig(list, tuning, { prevResult });
    assert.deepEqual(config.prevResult, {
      cniVersion: '1.0.0',
      interfaces: prevResult.interfaces,
      ips: prevResult.ips,
      routes: prevResult.routes,
    });
    assert.equal('prevResult' in deriveExecConfig(list, tuning), false);
    const older = parse({ ...validList, cniVersion: '0.4.0' });
    const legacy = deriveExecConfig(older, tuning, { prevResult }).prevResult as {
      cniVersion: string;
      ips: { version: string }[];
    };
    assert.equal(legacy.cniVersion, '0.4.0');
    assert.equal(legacy.ips[0]?.version, '4', '0.4.0 results carry the IP version');
  });

  it('gives GC the valid attachments under both keys, and STATUS only name and version', () => {
    const gc = deriveGcConfig(list, tuning, [{ containerId: 'c1', ifname: 'eth0' }]);
    const expected = [{ containerID: 'c1', ifname: 'eth0' }];
    assert.deepEqual(gc['cni.dev/valid-attachments'], expected);
    assert.deepEqual(gc['cni.dev/attachments'], expected);
    assert.equal('runtimeConfig' in gc || 'prevResult' in gc || 'capabilities' in gc, false);
    const status = deriveStatusConfig(list, tuning);
    assert.deepEqual(status, {
      type: 'tuning',
      sysctl: { a: '1' },
      name: 'podnet',
      cniVersion: '1.0.0',
    });
  });
});

describe('the result cache (libcni format)', () => {
  const attachment = {
    containerId: 'c1',
    ifname: 'eth0',
    network: 'podnet',
    netns: '/var/run/netns/pod',
    args: [['K8S_POD_NAME', 'web']] as [string, string][],
    capabilityArgs: { mac: '0a:58:00:00:00:01' },
    config: JSON.stringify(validList),
    result: { cniVersion: '1.0.0', ips: [{ address: '10.96.0.5/24' }] },
  };

  it('writes <cacheDir>/results/<network>-<containerID>-<ifname> as cniCacheV1 and reads it back', async () => {
    const cacheDir = tempDir();
    await cacheAdd(cacheDir, attachment);
    const file = cacheFilePath(cacheDir, 'podnet', attachment);
    assert.equal(file, join(cacheDir, 'results', 'podnet-c1-eth0'));
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    assert.equal(raw.kind, 'cniCacheV1');
    assert.equal(raw.ifName, 'eth0');
    assert.equal(raw.networkName, 'podnet');
    // Go marshals the []byte config as base64.
    assert.equal(Buffer.from(raw.config as string, 'base64').toString(), attachment.config);
    const result = await getCachedResult(cacheDir, 'podnet', attachment);
    assert.deepEqual(result?.ips, [{ address: '10.96.0.5/24' }]);
    assert.deepEqual(await getCachedAttachments(cacheDir), [attachment]);
    assert.deepEqual(await getCachedAttachments(cacheDir, 'other'), []);
    assert.equal(
      await getCachedResult(cacheDir, 'podnet', { containerId: 'c2', ifname: 'eth0' }),
      undefined,
    );
  });

  it('reads a bare result file, the format before cniCacheV1 (libcni getLegacyCachedResult)', async () => {
    const cacheDir = tempDir();
    mkdirSync(join(cacheDir, 'results'));
    write(join(cacheDir, 'results'), 'podnet-c1-eth0', attachment.result);
    const result = await getCachedResult(cacheDir, 'podnet', attachment);
    assert.deepEqual(result?.ips, [{ address: '10.96.0.5/24' }]);
  });
});
