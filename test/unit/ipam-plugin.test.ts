// strata-ipam's commands over a temporary data directory, fed what the
// runtime feeds them: a NetConf from parseNetConf and a CniEnvironment from
// readEnvironment.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type CniEnvironment, readEnvironment } from '../../src/cni/environment.js';
import { CniErrorCode } from '../../src/cni/errors.js';
import { type NetConf, parseNetConf } from '../../src/cni/netconf.js';
import {
  ipamAdd,
  ipamAddresses,
  ipamCheck,
  ipamDel,
  ipamGc,
  ipamPlugin,
  ipamStatus,
  parseResolvConf,
} from '../../src/ipam/plugin.js';
import { parseIp } from '../../src/netaddr/ip.js';

let dataDir = '';
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'strata-ipam-'));
});
afterEach(() => {
  rmSync(dataDir, { recursive: true, force: true });
});

function conf(ipam: Record<string, unknown>, extra: Record<string, unknown> = {}): NetConf {
  return parseNetConf({
    cniVersion: '1.1.0',
    name: 'podnet',
    type: 'strata-ipam',
    ipam: { type: 'strata-ipam', dataDir, ...ipam },
    ...extra,
  });
}

function env(
  containerId: string,
  ifname = 'eth0',
  extra: Record<string, string> = {},
): CniEnvironment {
  return readEnvironment({
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: containerId,
    CNI_NETNS: `/var/run/netns/${containerId}`,
    CNI_IFNAME: ifname,
    ...extra,
  });
}

function storeDir(): string {
  return join(dataDir, 'podnet');
}

function addressFiles(): string[] {
  return readdirSync(storeDir())
    .filter((name) => parseIp(name) !== undefined)
    .sort();
}

const v4 = { ranges: [[{ subnet: '10.1.0.0/24' }]] };
const dual = { ranges: [[{ subnet: '10.1.0.0/24' }], [{ subnet: 'fd00::/64' }]] };

describe('ipamAdd', () => {
  it('returns the address with its prefix length and the gateway, and records it on disk', async () => {
    const result = await ipamAdd(conf(v4), env('c1'));
    assert.deepEqual(result, {
      interfaces: [],
      ips: [{ address: '10.1.0.2/24', gateway: '10.1.0.1' }],
      routes: [],
      dns: {},
    });
    assert.equal(readFileSync(join(storeDir(), '10.1.0.2'), 'utf8'), 'c1\r\neth0');
    assert.equal(readFileSync(join(storeDir(), 'last_reserved_ip.0'), 'utf8'), '10.1.0.2');
  });

  // host-local: one address from each range set.
  it('gives one address per range set: dual stack', async () => {
    const result = await ipamAdd(conf(dual), env('c1'));
    assert.deepEqual(result.ips, [
      { address: '10.1.0.2/24', gateway: '10.1.0.1' },
      { address: 'fd00::2/64', gateway: 'fd00::1' },
    ]);
    assert.equal(readFileSync(join(storeDir(), 'last_reserved_ip.1'), 'utf8'), 'fd00::2');
  });

  it('returns the configured routes and the DNS of resolvConf', async () => {
    const resolvConf = join(dataDir, 'resolv.conf');
    writeFileSync(
      resolvConf,
      '# generated\nnameserver 10.96.0.10\nnameserver fd00::a\nsearch svc.cluster.local cluster.local\noptions ndots:5 edns0\ndomain example\n',
    );
    const result = await ipamAdd(
      conf({
        ...v4,
        routes: [{ dst: '0.0.0.0/0' }, { dst: '192.0.2.0/24', gw: '10.1.0.254' }],
        resolvConf,
      }),
      env('c1'),
    );
    assert.deepEqual(result.routes, [
      { dst: '0.0.0.0/0' },
      { dst: '192.0.2.0/24', gw: '10.1.0.254' },
    ]);
    assert.deepEqual(result.dns, {
      nameservers: ['10.96.0.10', 'fd00::a'],
      search: ['svc.cluster.local', 'cluster.local'],
      options: ['ndots:5', 'edns0'],
      domain: 'example',
    });
  });

  it('refuses an unreadable resolvConf with code 7 and allocates nothing', async () => {
    await assert.rejects(
      ipamAdd(conf({ ...v4, resolvConf: join(dataDir, 'missing') }), env('c1')),
      {
        code: CniErrorCode.InvalidNetworkConfig,
        message: /ipam\.resolvConf: cannot read/,
      },
    );
    assert.equal(existsSync(storeDir()), false);
  });

  it('hands out the next address to the next container', async () => {
    const c = conf(v4);
    const got = [];
    for (const id of ['c1', 'c2', 'c3']) got.push((await ipamAdd(c, env(id))).ips[0]?.address);
    assert.deepEqual(got, ['10.1.0.2/24', '10.1.0.3/24', '10.1.0.4/24']);
  });

  it('refuses a second ADD for the same attachment, but not for another ifname', async () => {
    const c = conf(v4);
    await ipamAdd(c, env('c1'));
    await assert.rejects(ipamAdd(c, env('c1')), {
      code: CniErrorCode.InvalidNetworkConfig,
      message: /duplicate allocation is not allowed/,
    });
    assert.deepEqual((await ipamAdd(c, env('c1', 'net1'))).ips, [
      { address: '10.1.0.3/24', gateway: '10.1.0.1' },
    ]);
  });

  // The runtime asks for addresses through the `ips` capability
  // (runtimeConfig.ips), args.cni.ips, or CNI_ARGS IP= (host-local's three ways).
  const requests: { name: string; extra: Record<string, unknown>; env?: Record<string, string> }[] =
    [
      { name: 'runtimeConfig.ips', extra: { runtimeConfig: { ips: ['10.1.0.9/24'] } } },
      { name: 'args.cni.ips', extra: { args: { cni: { ips: ['10.1.0.9'] } } } },
      { name: 'CNI_ARGS IP=', extra: {}, env: { CNI_ARGS: 'IP=10.1.0.9' } },
    ];
  for (const r of requests) {
    it(`honours an address requested through ${r.name}`, async () => {
      const result = await ipamAdd(conf(v4, r.extra), env('c1', 'eth0', r.env));
      assert.deepEqual(result.ips, [{ address: '10.1.0.9/24', gateway: '10.1.0.1' }]);
      assert.deepEqual(addressFiles(), ['10.1.0.9']);
    });
  }

  it('honours requested addresses of both families, each in its own range set', async () => {
    const result = await ipamAdd(
      conf(dual),
      env('c1', 'eth0', { CNI_ARGS: 'IP=fd00::99,10.1.0.99' }),
    );
    assert.deepEqual(
      result.ips.map((i) => i.address),
      ['10.1.0.99/24', 'fd00::99/64'],
    );
  });

  it('refuses a requested address outside every range and releases what it had claimed', async () => {
    await assert.rejects(
      ipamAdd(conf(dual, { runtimeConfig: { ips: ['10.1.0.9/24', 'fd99::5/64'] } }), env('c1')),
      {
        code: CniErrorCode.InvalidNetworkConfig,
        message: /requested IP address fd99::5 is not in any configured range/,
      },
    );
    assert.deepEqual(addressFiles(), []);
  });

  it('refuses a requested gateway and leaves no address behind', async () => {
    await assert.rejects(ipamAdd(conf(dual, { runtimeConfig: { ips: ['fd00::1'] } }), env('c1')), {
      code: CniErrorCode.InvalidNetworkConfig,
      message: /fd00::1 is the gateway/,
    });
    assert.deepEqual(addressFiles(), []);
  });

  it('refuses a requested address that is not an address, naming where it came from', async () => {
    await assert.rejects(ipamAdd(conf(v4, { runtimeConfig: { ips: ['10.1.0'] } }), env('c1')), {
      code: CniErrorCode.InvalidNetworkConfig,
      message: /runtimeConfig\.ips\[0\]: not an IP address: "10\.1\.0"/,
    });
    await assert.rejects(ipamAdd(conf(v4, { runtimeConfig: { ips: '10.1.0.9' } }), env('c1')), {
      message: /runtimeConfig\.ips must be a list/,
    });
  });

  it('fails with code 11 when the range is full', async () => {
    const c = conf({ ranges: [[{ subnet: '10.1.0.0/30' }]] });
    await ipamAdd(c, env('c1'));
    await assert.rejects(ipamAdd(c, env('c2')), { code: CniErrorCode.TryAgainLater });
  });

  it('refuses a configuration without an ipam section, with code 7', async () => {
    const bare = parseNetConf({ cniVersion: '1.1.0', name: 'podnet', type: 'strata-ipam' });
    await assert.rejects(ipamAdd(bare, env('c1')), {
      code: CniErrorCode.InvalidNetworkConfig,
      message: /^ipam: the section is missing/,
    });
  });
});

describe('ipamDel', () => {
  it("releases the attachment's addresses and nothing else", async () => {
    const c = conf(dual);
    await ipamAdd(c, env('c1'));
    await ipamAdd(c, env('c2'));
    const released = await ipamDel(c, env('c1'));
    assert.deepEqual(released.sort(), ['10.1.0.2/24', 'fd00::2/64']);
    assert.deepEqual(addressFiles(), ['10.1.0.3', 'fd00::3']);
  });

  // CNI spec 1.1.0, DEL: "Plugins should generally complete a DEL action without error even if some resources are missing."
  it('succeeds when there is nothing to release, twice over', async () => {
    const c = conf(v4);
    assert.deepEqual(await ipamDel(c, env('never-added')), []);
    await ipamAdd(c, env('c1'));
    await ipamDel(c, env('c1'));
    assert.deepEqual(await ipamDel(c, env('c1')), []);
  });

  it('releases a file of the older ID-only format', async () => {
    const c = conf(v4);
    await ipamAdd(c, env('c9'));
    writeFileSync(join(storeDir(), '10.1.0.50'), 'c1');
    assert.deepEqual(await ipamDel(c, env('c1')), ['10.1.0.50/24']);
    assert.deepEqual(addressFiles(), ['10.1.0.2']);
  });
});

describe('ipamCheck and ipamAddresses', () => {
  it("finds the attachment's addresses with their prefix lengths", async () => {
    const c = conf(dual);
    await ipamAdd(c, env('c1'));
    await ipamCheck(c, env('c1'));
    assert.deepEqual((await ipamAddresses(c, env('c1'))).sort(), ['10.1.0.2/24', 'fd00::2/64']);
  });

  it('CHECK fails when no address is held for the attachment', async () => {
    await assert.rejects(ipamCheck(conf(v4), env('c1')), {
      message: /no address is allocated to c1\/eth0 in network podnet/,
    });
  });
});

describe('ipamGc', () => {
  // CNI spec 1.1.0, GC: release everything not in cni.dev/valid-attachments.
  it('releases allocations whose attachment is not listed, and returns them', async () => {
    const c = conf(v4);
    await ipamAdd(c, env('keep'));
    await ipamAdd(c, env('stale'));
    await ipamAdd(c, env('keep', 'net1'));
    writeFileSync(join(storeDir(), '10.1.0.100'), 'old-keep');
    writeFileSync(join(storeDir(), '10.1.0.101'), 'old-stale');
    const released = await ipamGc(c, [
      { containerId: 'keep', ifname: 'eth0' },
      { containerId: 'old-keep', ifname: 'eth0' },
    ]);
    assert.deepEqual(released.map((a) => a.name).sort(), ['10.1.0.101', '10.1.0.3', '10.1.0.4']);
    assert.deepEqual(addressFiles(), ['10.1.0.100', '10.1.0.2']);
    // The bookkeeping files survive.
    assert.ok(existsSync(join(storeDir(), 'last_reserved_ip.0')));
    assert.ok(existsSync(join(storeDir(), 'lock')));
  });

  it('through the plugin, refuses a GC without valid attachments rather than release everything', async () => {
    const c = conf(v4);
    await ipamAdd(c, env('c1'));
    await assert.rejects(ipamPlugin.gc(c, env('c1'), ''), {
      code: CniErrorCode.InvalidNetworkConfig,
      message: /cni\.dev\/valid-attachments/,
    });
    assert.deepEqual(addressFiles(), ['10.1.0.2']);
    const withList = conf(v4, { 'cni.dev/valid-attachments': [] });
    await ipamPlugin.gc(withList, readEnvironment({ CNI_COMMAND: 'GC' }), '');
    assert.deepEqual(addressFiles(), []);
  });
});

describe('ipamStatus', () => {
  it('succeeds while every range set has a free address', async () => {
    const c = conf({ ranges: [[{ subnet: '10.1.0.0/29' }], [{ subnet: 'fd00::/64' }]] });
    await ipamAdd(c, env('c1'));
    await ipamStatus(c);
  });

  // CNI spec 1.1.0, STATUS: code 50 "The plugin is not available".
  it('fails with code 50 naming the full range set', async () => {
    const c = conf({ ranges: [[{ subnet: 'fd00::/64' }], [{ subnet: '10.1.0.0/30' }]] });
    await ipamAdd(c, env('c1'));
    await assert.rejects(ipamStatus(c), {
      code: CniErrorCode.PluginNotAvailable,
      message: /no free address in ipam\.ranges\[1\] \(10\.1\.0\.1-10\.1\.0\.2\)/,
    });
  });
});

describe('parseResolvConf', () => {
  it('keeps the last search line and every nameserver and option', () => {
    const path = join(dataDir, 'resolv.conf');
    writeFileSync(
      path,
      'search a.example\nnameserver 192.0.2.1\n  nameserver   192.0.2.2  \nsearch b.example c.example\noptions rotate\noptions ndots:2\n',
    );
    assert.deepEqual(parseResolvConf(path), {
      nameservers: ['192.0.2.1', '192.0.2.2'],
      search: ['b.example', 'c.example'],
      options: ['rotate', 'ndots:2'],
    });
  });
});
