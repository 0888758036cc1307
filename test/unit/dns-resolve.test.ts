// Queries in, responses out (src/dns/resolve.ts), over a zone of hand-made
// Services and EndpointSlices: every rule of the cluster DNS server that a
// client can see, from the records to the rcodes, EDNS and truncation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type OptAnswer, encode } from 'dns-packet';
import { type DnsZone, buildZoneRecords } from '../../src/dns/records.js';
import { type ResolveOptions, resolveQuery } from '../../src/dns/resolve.js';
import {
  type DecodedResponse,
  clusterIpService,
  decodeResponse,
  endpointSlice,
  externalNameService,
  headlessService,
  manyEndpoints,
  query,
} from './dns-fixtures.js';

const zone: DnsZone = {
  records: buildZoneRecords(
    {
      services: [
        clusterIpService('web', 'shop', ['10.96.0.10', 'fd00:96::a'], [{ name: 'http', port: 80 }]),
        headlessService('db', 'shop', [{ name: 'pg', port: 5432 }]),
        headlessService('big', 'shop'),
        headlessService('four', 'shop', [{ name: 'x', port: 1 }]),
        externalNameService('mail', 'shop', 'mail.example.com'),
        externalNameService('alias', 'shop', 'web.shop.svc.cluster.local'),
      ],
      endpointSlices: [
        endpointSlice(
          'db-1',
          'shop',
          'db',
          'IPv4',
          [
            { addresses: ['10.244.1.5'], ready: true, hostname: 'db-0' },
            { addresses: ['10.244.2.7'], ready: true },
            { addresses: ['10.244.3.9'], ready: false, hostname: 'db-2' },
          ],
          [{ name: 'pg', port: 15432 }],
        ),
        endpointSlice('big-1', 'shop', 'big', 'IPv4', manyEndpoints(60)),
        endpointSlice('four-1', 'shop', 'four', 'IPv4', manyEndpoints(4, 8), [
          { name: 'x', port: 1001 },
        ]),
      ],
    },
    'cluster.local',
  ),
  ttl: 5,
  serial: 42,
};

const udp: ResolveOptions = { transport: 'udp', forwarding: false };

function respond(message: Buffer, options: ResolveOptions = udp, from: DnsZone = zone): Buffer {
  const resolution = resolveQuery(message, from, options);
  assert.equal(resolution.action, 'reply');
  return resolution.action === 'reply' ? resolution.response : Buffer.alloc(0);
}

function ask(
  message: Buffer,
  options: ResolveOptions = udp,
  from: DnsZone = zone,
): DecodedResponse {
  return decodeResponse(respond(message, options, from));
}

const soaLine = 'cluster.local SOA ns.dns.cluster.local hostmaster.cluster.local 5';

describe('answers from Services', () => {
  it('answers a ClusterIP Service with its cluster IP, authoritatively, TTL 5, the id echoed', () => {
    const response = ask(query('web.shop.svc.cluster.local', 'A', { id: 777 }));
    assert.equal(response.rcode, 'NOERROR');
    assert.equal(response.packet.id, 777);
    assert.ok(response.packet.flag_aa);
    assert.ok(response.packet.flag_rd, 'RD is echoed');
    assert.ok(!response.packet.flag_ra, 'no recursion without an upstream');
    assert.deepEqual(response.answers, ['web.shop.svc.cluster.local A 10.96.0.10']);
    assert.equal(response.packet.answers?.[0]?.type === 'A' && response.packet.answers[0].ttl, 5);
  });

  it('answers AAAA with the IPv6 cluster IP of a dual-stack Service', () => {
    const response = ask(query('web.shop.svc.cluster.local', 'AAAA'));
    assert.deepEqual(response.answers, ['web.shop.svc.cluster.local AAAA fd00:96::a']);
  });

  it('answers a headless Service with its ready endpoints only', () => {
    const response = ask(query('db.shop.svc.cluster.local', 'A'));
    assert.deepEqual(response.answers.sort(), [
      'db.shop.svc.cluster.local A 10.244.1.5',
      'db.shop.svc.cluster.local A 10.244.2.7',
    ]);
  });

  it('names each ready endpoint by its hostname, else by its address with dashes', () => {
    assert.deepEqual(ask(query('db-0.db.shop.svc.cluster.local', 'A')).answers, [
      'db-0.db.shop.svc.cluster.local A 10.244.1.5',
    ]);
    assert.deepEqual(ask(query('10-244-2-7.db.shop.svc.cluster.local', 'A')).answers, [
      '10-244-2-7.db.shop.svc.cluster.local A 10.244.2.7',
    ]);
    assert.equal(ask(query('db-2.db.shop.svc.cluster.local', 'A')).rcode, 'NXDOMAIN');
  });

  it('answers SRV of a ClusterIP Service with the Service port and its addresses as additionals', () => {
    const response = ask(query('_http._tcp.web.shop.svc.cluster.local', 'SRV'));
    assert.deepEqual(response.answers, [
      '_http._tcp.web.shop.svc.cluster.local SRV 0 100 80 web.shop.svc.cluster.local',
    ]);
    assert.deepEqual(response.additionals, [
      'web.shop.svc.cluster.local A 10.96.0.10',
      'web.shop.svc.cluster.local AAAA fd00:96::a',
    ]);
  });

  it('answers SRV of a headless Service per ready endpoint with the endpoint port', () => {
    const response = ask(query('_pg._tcp.db.shop.svc.cluster.local', 'SRV'));
    assert.deepEqual(response.answers, [
      '_pg._tcp.db.shop.svc.cluster.local SRV 0 50 15432 10-244-2-7.db.shop.svc.cluster.local',
      '_pg._tcp.db.shop.svc.cluster.local SRV 0 50 15432 db-0.db.shop.svc.cluster.local',
    ]);
    assert.deepEqual(response.additionals, [
      '10-244-2-7.db.shop.svc.cluster.local A 10.244.2.7',
      'db-0.db.shop.svc.cluster.local A 10.244.1.5',
    ]);
  });

  it('answers SRV on the Service name itself with every named port', () => {
    assert.deepEqual(ask(query('web.shop.svc.cluster.local', 'SRV')).answers, [
      'web.shop.svc.cluster.local SRV 0 100 80 web.shop.svc.cluster.local',
    ]);
    assert.equal(ask(query('db.shop.svc.cluster.local', 'SRV')).answers.length, 2);
  });

  it('answers PTR for cluster IPs and headless endpoints', () => {
    assert.deepEqual(ask(query('10.0.96.10.in-addr.arpa', 'PTR')).answers, [
      '10.0.96.10.in-addr.arpa PTR web.shop.svc.cluster.local',
    ]);
    assert.deepEqual(ask(query('5.1.244.10.in-addr.arpa', 'PTR')).answers, [
      '5.1.244.10.in-addr.arpa PTR db-0.db.shop.svc.cluster.local',
    ]);
    const v6 = 'a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa';
    assert.deepEqual(ask(query(v6, 'PTR')).answers, [`${v6} PTR web.shop.svc.cluster.local`]);
  });

  it('answers an ExternalName Service with a CNAME, followed when it stays in the zone', () => {
    assert.deepEqual(ask(query('mail.shop.svc.cluster.local', 'A')).answers, [
      'mail.shop.svc.cluster.local CNAME mail.example.com',
    ]);
    assert.deepEqual(ask(query('alias.shop.svc.cluster.local', 'A')).answers, [
      'alias.shop.svc.cluster.local CNAME web.shop.svc.cluster.local',
      'web.shop.svc.cluster.local A 10.96.0.10',
    ]);
  });

  it('answers pod names with the address they spell, without looking anything up', () => {
    assert.deepEqual(ask(query('10-244-7-9.anything.pod.cluster.local', 'A')).answers, [
      '10-244-7-9.anything.pod.cluster.local A 10.244.7.9',
    ]);
    assert.deepEqual(ask(query('fd00--7.ns.pod.cluster.local', 'AAAA')).answers, [
      'fd00--7.ns.pod.cluster.local AAAA fd00::7',
    ]);
    const wrongFamily = ask(query('10-244-7-9.ns.pod.cluster.local', 'AAAA'));
    assert.equal(wrongFamily.rcode, 'NOERROR');
    assert.deepEqual(wrongFamily.answers, []);
    assert.equal(ask(query('not-an-ip.ns.pod.cluster.local', 'A')).rcode, 'NXDOMAIN');
    assert.equal(ask(query('a.10-244-7-9.ns.pod.cluster.local', 'A')).rcode, 'NXDOMAIN');
    assert.equal(ask(query('ns.pod.cluster.local', 'A')).rcode, 'NOERROR');
  });

  it('answers SOA and NS at the apex', () => {
    const soa = ask(query('cluster.local', 'SOA'));
    assert.equal(soa.packet.answers?.[0]?.type, 'SOA');
    const data = soa.packet.answers?.[0]?.type === 'SOA' ? soa.packet.answers[0].data : undefined;
    assert.equal(data?.serial, 42);
    assert.deepEqual(ask(query('cluster.local', 'NS')).answers, [
      'cluster.local NS ns.dns.cluster.local',
    ]);
  });
});

describe('negative answers', () => {
  it('answers an unknown name in the zone NXDOMAIN with the SOA', () => {
    for (const name of [
      'nope.shop.svc.cluster.local',
      'web.nowhere.svc.cluster.local',
      'x.web.shop.svc.cluster.local',
      'other.cluster.local',
    ]) {
      const response = ask(query(name, 'A'));
      assert.equal(response.rcode, 'NXDOMAIN', name);
      assert.ok(response.packet.flag_aa);
      assert.deepEqual(response.answers, []);
      assert.deepEqual(response.authorities, [soaLine], name);
    }
  });

  it('answers NODATA (NOERROR, SOA, no answers) for names that exist without that type', () => {
    for (const [name, type] of [
      ['web.shop.svc.cluster.local', 'TXT'],
      ['db-0.db.shop.svc.cluster.local', 'AAAA'],
      ['shop.svc.cluster.local', 'A'],
      ['svc.cluster.local', 'A'],
      ['_tcp.web.shop.svc.cluster.local', 'SRV'],
      ['cluster.local', 'A'],
      ['web.shop.svc.cluster.local', 'UNKNOWN_65280'],
    ] as const) {
      const response = ask(query(name, type));
      assert.equal(response.rcode, 'NOERROR', `${name} ${type}`);
      assert.deepEqual(response.answers, [], `${name} ${type}`);
      assert.deepEqual(response.authorities, [soaLine], `${name} ${type}`);
    }
  });

  it('gives the SOA of the reverse zone with a known reverse name asked for another type', () => {
    const response = ask(query('10.0.96.10.in-addr.arpa', 'A'));
    assert.equal(response.rcode, 'NOERROR');
    assert.match(response.authorities[0] ?? '', /^in-addr\.arpa SOA /);
  });

  it('answers SERVFAIL for names in the zone until the source has listed', () => {
    const unsynced: DnsZone = { ...zone, synced: false };
    assert.equal(ask(query('web.shop.svc.cluster.local', 'A'), udp, unsynced).rcode, 'SERVFAIL');
    assert.equal(ask(query('example.com', 'A'), udp, unsynced).rcode, 'REFUSED');
  });
});

describe('names in any case', () => {
  it('matches names case-insensitively and echoes the question as asked', () => {
    const message = query('WEB.Shop.SVC.cluster.LOCAL', 'A');
    const response = respond(message);
    const decoded = decodeResponse(response);
    assert.deepEqual(decoded.answers, ['WEB.Shop.SVC.cluster.LOCAL A 10.96.0.10']);
    assert.deepEqual(response.subarray(12, message.length), message.subarray(12));
    assert.deepEqual(ask(query('NOPE.shop.svc.cluster.local', 'A')).authorities, [soaLine]);
  });
});

describe('names outside the zone', () => {
  it('refuses them without an upstream, and asks for forwarding with one', () => {
    const refused = ask(query('example.com', 'A'));
    assert.equal(refused.rcode, 'REFUSED');
    assert.ok(!refused.packet.flag_aa);
    assert.deepEqual(refused.answers, []);
    assert.equal(ask(query('9.9.9.9.in-addr.arpa', 'PTR')).rcode, 'REFUSED');
    assert.equal(ask(query('local', 'SOA')).rcode, 'REFUSED');
    const forwarding = { transport: 'udp', forwarding: true } as const;
    assert.deepEqual(resolveQuery(query('example.com', 'A'), zone, forwarding), {
      action: 'forward',
    });
    assert.deepEqual(resolveQuery(query('9.9.9.9.in-addr.arpa', 'PTR'), zone, forwarding), {
      action: 'forward',
    });
    const own = ask(query('web.shop.svc.cluster.local', 'A'), forwarding);
    assert.ok(own.packet.flag_ra, 'recursion available with an upstream');
  });
});

describe('message size', () => {
  it('truncates a large answer over UDP without EDNS: TC set, answers emptied, within 512 bytes', () => {
    const response = ask(query('big.shop.svc.cluster.local', 'A'));
    assert.ok(response.packet.flag_tc);
    assert.equal(response.rcode, 'NOERROR');
    assert.deepEqual(response.answers, []);
    assert.ok(response.size <= 512, `${response.size} bytes`);
  });

  it('sends every record of the same answer over TCP', () => {
    const response = ask(query('big.shop.svc.cluster.local', 'A'), {
      transport: 'tcp',
      forwarding: false,
    });
    assert.ok(!response.packet.flag_tc);
    assert.equal(response.answers.length, 60);
  });

  it('honours the EDNS payload size the client advertises, and advertises 1232', () => {
    const small = ask(query('big.shop.svc.cluster.local', 'A', { edns: 1232 }));
    assert.ok(small.packet.flag_tc, 'about 2,700 bytes do not fit in 1232');
    assert.deepEqual(small.additionals, ['OPT 1232']);
    const large = ask(query('big.shop.svc.cluster.local', 'A', { edns: 4096 }));
    assert.ok(!large.packet.flag_tc);
    assert.equal(large.answers.length, 60);
    assert.deepEqual(large.additionals, ['OPT 1232']);
    assert.ok(large.size <= 4096);
    // A size below 512 means 512 (RFC 6891 section 6.2.5).
    assert.ok(!ask(query('web.shop.svc.cluster.local', 'A', { edns: 100 })).packet.flag_tc);
  });

  it('drops additional records before it truncates answers', () => {
    const plain = ask(query('_x._tcp.four.shop.svc.cluster.local', 'SRV'));
    assert.ok(!plain.packet.flag_tc);
    assert.equal(plain.answers.length, 4);
    assert.deepEqual(plain.additionals, []);
    const edns = ask(query('_x._tcp.four.shop.svc.cluster.local', 'SRV', { edns: 1232 }));
    assert.equal(edns.additionals.length, 5, 'four addresses and the OPT record');
  });
});

describe('malformed and unsupported queries', () => {
  it('drops what has no readable header, and responses', () => {
    assert.deepEqual(resolveQuery(Buffer.from([1, 2, 3]), zone, udp), { action: 'drop' });
    const response = respond(query('web.shop.svc.cluster.local', 'A'));
    assert.deepEqual(resolveQuery(response, zone, udp), { action: 'drop' });
  });

  it('answers FORMERR to a question that does not decode, keeping the id', () => {
    const message = query('web.shop.svc.cluster.local', 'A', { id: 99 }).subarray(0, 20);
    const response = respond(message);
    assert.equal(response.readUInt16BE(0), 99);
    assert.equal(response.readUInt16BE(2) & 0x800f, 0x8001);
  });

  it('answers FORMERR to more than one question, or to two OPT records', () => {
    const two = encode({
      type: 'query',
      id: 5,
      questions: [
        { name: 'web.shop.svc.cluster.local', type: 'A' },
        { name: 'db.shop.svc.cluster.local', type: 'A' },
      ],
    });
    assert.equal(ask(two).rcode, 'FORMERR');
    const opt = {
      name: '.',
      type: 'OPT',
      udpPayloadSize: 1232,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: 0,
      flag_do: false,
      options: [],
    } satisfies OptAnswer;
    const twoOpts = encode({
      type: 'query',
      id: 6,
      questions: [{ name: 'web.shop.svc.cluster.local', type: 'A' }],
      additionals: [opt, opt],
    });
    assert.equal(ask(twoOpts).rcode, 'FORMERR');
  });

  it('answers NOTIMP to opcodes other than QUERY', () => {
    for (const opcode of [1, 2, 4, 5]) {
      const message = encode({
        type: 'query',
        id: 7,
        flags: opcode << 11,
        questions: [{ name: 'web.shop.svc.cluster.local', type: 'A' }],
      });
      const response = respond(message);
      assert.equal(response.readUInt16BE(2) & 0xf, 4, `opcode ${opcode}`);
      assert.equal((response.readUInt16BE(2) >> 11) & 0xf, opcode, 'the opcode is echoed');
    }
  });

  it('answers BADVERS to an EDNS version above 0', () => {
    const response = ask(query('web.shop.svc.cluster.local', 'A', { edns: 1232, ednsVersion: 1 }));
    const opt = response.packet.additionals?.find((r) => r.type === 'OPT');
    assert.equal(opt?.type === 'OPT' && opt.extendedRcode, 1);
    assert.equal(opt?.type === 'OPT' && opt.ednsVersion, 0);
    assert.deepEqual(response.answers, []);
  });
});
