// The cluster DNS zone built from Services and EndpointSlices (src/dns/records.ts):
// which names exist and what they hold, per the Kubernetes DNS spec as
// CoreDNS's kubernetes plugin answers it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  addressFromLabel,
  addressLabel,
  buildZoneRecords,
  isValidDomain,
  reverseName,
} from '../../src/dns/records.js';
import { formatIp, parseIp } from '../../src/netaddr/ip.js';
import {
  clusterIpService,
  endpointSlice,
  externalNameService,
  headlessService,
} from './dns-fixtures.js';

function ip(text: string) {
  const parsed = parseIp(text);
  assert.ok(parsed, `test setup: ${text}`);
  return parsed;
}

describe('buildZoneRecords', () => {
  it('gives a ClusterIP Service its cluster IPs per family, SRV per named port and PTRs', () => {
    const zone = buildZoneRecords(
      {
        services: [
          clusterIpService(
            'web',
            'shop',
            ['10.96.0.10', 'fd00:96::a'],
            [
              { name: 'http', port: 80 },
              { name: 'dns', port: 53, protocol: 'UDP' },
              { port: 9000 },
            ],
          ),
        ],
        endpointSlices: [],
      },
      'cluster.local',
    );
    const web = zone.get('web.shop.svc.cluster.local');
    assert.deepEqual(web?.a, ['10.96.0.10']);
    assert.deepEqual(web?.aaaa, ['fd00:96::a']);
    assert.deepEqual(zone.get('_http._tcp.web.shop.svc.cluster.local')?.srv, [
      { priority: 0, weight: 100, port: 80, target: 'web.shop.svc.cluster.local' },
    ]);
    assert.deepEqual(zone.get('_dns._udp.web.shop.svc.cluster.local')?.srv, [
      { priority: 0, weight: 100, port: 53, target: 'web.shop.svc.cluster.local' },
    ]);
    // The unnamed port has no SRV name; the service name holds every named port's SRV.
    assert.deepEqual(web?.srv.map((r) => r.port).sort(), [53, 80]);
    assert.deepEqual(zone.get('10.0.96.10.in-addr.arpa')?.ptr, ['web.shop.svc.cluster.local']);
    assert.deepEqual(zone.get(reverseName(ip('fd00:96::a')))?.ptr, ['web.shop.svc.cluster.local']);
    // No per-endpoint names for a ClusterIP Service, and empty non-terminals up to the zone.
    for (const name of [
      'shop.svc.cluster.local',
      'svc.cluster.local',
      '_tcp.web.shop.svc.cluster.local',
    ]) {
      assert.ok(zone.exists(name) && zone.get(name) === undefined, name);
    }
    assert.ok(!zone.exists('other.svc.cluster.local'));
  });

  it('gives a headless Service the addresses of its ready endpoints, deduplicated, one name each', () => {
    const zone = buildZoneRecords(
      {
        services: [headlessService('db', 'shop', [{ name: 'pg', port: 5432 }])],
        endpointSlices: [
          endpointSlice(
            'db-a',
            'shop',
            'db',
            'IPv4',
            [
              { addresses: ['10.244.1.5'], ready: true, hostname: 'db-0' },
              { addresses: ['10.244.2.7'] }, // no conditions.ready: counts as ready
              { addresses: ['10.244.3.9'], ready: false },
            ],
            [{ name: 'pg', port: 15432 }],
          ),
          // The same endpoint again in a second slice (a controller mid-move).
          endpointSlice(
            'db-b',
            'shop',
            'db',
            'IPv4',
            [{ addresses: ['10.244.1.5'], ready: true, hostname: 'db-0' }],
            [{ name: 'pg', port: 15432 }],
          ),
          endpointSlice(
            'db-c',
            'shop',
            'db',
            'IPv6',
            [{ addresses: ['fd00:244::5'], ready: true }],
            [{ name: 'pg', port: 15432 }],
          ),
        ],
      },
      'cluster.local',
    );
    const db = zone.get('db.shop.svc.cluster.local');
    assert.deepEqual(db?.a, ['10.244.1.5', '10.244.2.7']);
    assert.deepEqual(db?.aaaa, ['fd00:244::5']);
    assert.deepEqual(zone.get('db-0.db.shop.svc.cluster.local')?.a, ['10.244.1.5']);
    assert.deepEqual(zone.get('10-244-2-7.db.shop.svc.cluster.local')?.a, ['10.244.2.7']);
    assert.deepEqual(zone.get('fd00-244--5.db.shop.svc.cluster.local')?.aaaa, ['fd00:244::5']);
    assert.equal(zone.get('10-244-3-9.db.shop.svc.cluster.local'), undefined);
    assert.equal(zone.get('9.3.244.10.in-addr.arpa'), undefined, 'no PTR for a not-ready endpoint');
    assert.deepEqual(zone.get('5.1.244.10.in-addr.arpa')?.ptr, ['db-0.db.shop.svc.cluster.local']);
    // SRV per ready endpoint with the endpoint's port, weights sharing 100.
    assert.deepEqual(zone.get('_pg._tcp.db.shop.svc.cluster.local')?.srv, [
      { priority: 0, weight: 33, port: 15432, target: '10-244-2-7.db.shop.svc.cluster.local' },
      { priority: 0, weight: 33, port: 15432, target: 'db-0.db.shop.svc.cluster.local' },
      { priority: 0, weight: 33, port: 15432, target: 'fd00-244--5.db.shop.svc.cluster.local' },
    ]);
  });

  it('leaves slices of other Services and namespaces alone', () => {
    const zone = buildZoneRecords(
      {
        services: [headlessService('db', 'a'), headlessService('db', 'b')],
        endpointSlices: [
          endpointSlice('db-1', 'a', 'db', 'IPv4', [{ addresses: ['10.0.0.1'], ready: true }]),
          endpointSlice('other-1', 'a', 'other', 'IPv4', [
            { addresses: ['10.0.0.2'], ready: true },
          ]),
        ],
      },
      'cluster.local',
    );
    assert.deepEqual(zone.get('db.a.svc.cluster.local')?.a, ['10.0.0.1']);
    assert.deepEqual(zone.get('db.b.svc.cluster.local')?.a, []);
    assert.equal(zone.get('other.a.svc.cluster.local'), undefined);
  });

  it('gives an ExternalName Service a CNAME, and honours another cluster domain', () => {
    const zone = buildZoneRecords(
      { services: [externalNameService('mail', 'ops', 'Mail.Example.com.')], endpointSlices: [] },
      'Corp.Internal.',
    );
    assert.equal(zone.domain, 'corp.internal');
    assert.equal(zone.get('mail.ops.svc.corp.internal')?.cname, 'mail.example.com');
  });

  it('reports a change only when a record changed, whatever the object order', () => {
    const a = clusterIpService('a', 'x', ['10.96.0.1']);
    const b = clusterIpService('b', 'x', ['10.96.0.2']);
    const zone = buildZoneRecords({ services: [a, b], endpointSlices: [] }, 'cluster.local');
    assert.equal(zone.update({ services: [b, a], endpointSlices: [] }), false);
    // A new object with the same records (a status update) changes nothing either.
    const bAgain = { ...b, status: { loadBalancer: {} } };
    assert.equal(zone.update({ services: [a, bAgain], endpointSlices: [] }), false);
    assert.equal(
      zone.update({ services: [a, clusterIpService('b', 'x', ['10.96.0.3'])], endpointSlices: [] }),
      true,
    );
    assert.deepEqual(zone.get('b.x.svc.cluster.local')?.a, ['10.96.0.3']);
    assert.equal(zone.get('2.0.96.10.in-addr.arpa'), undefined, 'the old PTR is gone');
  });

  it('keeps names, PTRs and empty non-terminals right as Services come and go', () => {
    const slice = endpointSlice('db-1', 'x', 'db', 'IPv4', [
      { addresses: ['10.0.0.9'], ready: true },
    ]);
    const zone = buildZoneRecords(
      {
        // Two headless Services selecting the same pod: the address has a PTR to each.
        services: [headlessService('db', 'x'), headlessService('db2', 'x')],
        endpointSlices: [
          slice,
          endpointSlice('db2-1', 'x', 'db2', 'IPv4', [{ addresses: ['10.0.0.9'], ready: true }]),
        ],
      },
      'cluster.local',
    );
    assert.deepEqual(zone.get('9.0.0.10.in-addr.arpa')?.ptr, [
      '10-0-0-9.db.x.svc.cluster.local',
      '10-0-0-9.db2.x.svc.cluster.local',
    ]);
    assert.ok(zone.exists('x.svc.cluster.local'));
    zone.update({ services: [headlessService('db', 'x')], endpointSlices: [slice] });
    assert.deepEqual(zone.get('9.0.0.10.in-addr.arpa')?.ptr, ['10-0-0-9.db.x.svc.cluster.local']);
    assert.equal(zone.get('db2.x.svc.cluster.local'), undefined);
    assert.ok(!zone.exists('10-0-0-9.db2.x.svc.cluster.local'));
    // The endpoint turns not ready: its name and PTR go, the Service name stays.
    zone.update({
      services: [headlessService('db', 'x')],
      endpointSlices: [
        endpointSlice('db-1', 'x', 'db', 'IPv4', [{ addresses: ['10.0.0.9'], ready: false }]),
      ],
    });
    assert.deepEqual(zone.get('db.x.svc.cluster.local')?.a, []);
    assert.equal(zone.get('9.0.0.10.in-addr.arpa'), undefined);
    zone.update({ services: [], endpointSlices: [] });
    assert.ok(!zone.exists('x.svc.cluster.local'));
    assert.ok(zone.exists('svc.cluster.local'), 'svc.<zone> always exists');
    assert.deepEqual(zone.names(), []);
  });
});

describe('address names', () => {
  it('spells reverse names and endpoint labels per family', () => {
    assert.equal(reverseName(ip('10.244.1.5')), '5.1.244.10.in-addr.arpa');
    assert.equal(
      reverseName(ip('2001:db8::567:89ab')),
      'b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa',
    );
    assert.equal(addressLabel(ip('10.244.1.5')), '10-244-1-5');
    assert.equal(addressLabel(ip('fd00::1')), 'fd00--1');
  });

  it('reads pod names back into addresses, and nothing else', () => {
    assert.equal(formatIp(addressFromLabel('10-244-1-5') ?? ip('0.0.0.0')), '10.244.1.5');
    assert.equal(formatIp(addressFromLabel('fd00--1') ?? ip('0.0.0.0')), 'fd00::1');
    assert.equal(addressFromLabel('10-244-1'), undefined);
    assert.equal(addressFromLabel('web'), undefined);
    assert.equal(addressFromLabel('10-244-1-256'), undefined);
  });

  it('accepts cluster domains made of DNS labels only', () => {
    assert.ok(isValidDomain('cluster.local'));
    assert.ok(isValidDomain('cluster.local.'));
    assert.ok(!isValidDomain(''));
    assert.ok(!isValidDomain('bad..name'));
    assert.ok(!isValidDomain('under score!.local'));
  });
});
