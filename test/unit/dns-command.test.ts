// `strata dns` on the command line (src/dns/command.ts, src/dns/endpoints.ts):
// the flags, their defaults, and the usage errors (exit code 2) for bad ones.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DnsUsageError, dnsCommand, parseDnsArgs } from '../../src/dns/command.js';
import { formatEndpoint, parseEndpoint } from '../../src/dns/endpoints.js';
import { main } from '../../src/cli/main.js';

function capture(): { write(text: string): boolean; text: () => string } {
  let text = '';
  return {
    write(chunk: string) {
      text += chunk;
      return true;
    },
    text: () => text,
  };
}

describe('parseEndpoint', () => {
  it('reads IPv4 and bracketed IPv6 with ports, and bare IPs with a default port', () => {
    assert.deepEqual(parseEndpoint('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353, family: 4 });
    assert.deepEqual(parseEndpoint('[::1]:53'), { host: '::1', port: 53, family: 6 });
    assert.deepEqual(parseEndpoint('8.8.8.8', 53), { host: '8.8.8.8', port: 53, family: 4 });
    assert.deepEqual(parseEndpoint('2001:db8::53', 53), {
      host: '2001:db8::53',
      port: 53,
      family: 6,
    });
    assert.equal(formatEndpoint({ host: '::1', port: 53 }), '[::1]:53');
  });

  it('refuses names, missing ports and ports out of range', () => {
    for (const text of ['dns.google:53', '127.0.0.1', '127.0.0.1:70000', '[::1]', '1.2.3:53', '']) {
      assert.equal(parseEndpoint(text), undefined, text);
    }
  });
});

describe('parseDnsArgs', () => {
  it("fills CoreDNS's defaults", () => {
    const settings = parseDnsArgs(['--api', '/run/api.sock']);
    assert.deepEqual(settings, {
      api: '/run/api.sock',
      domain: 'cluster.local',
      listen: { host: '0.0.0.0', port: 53, family: 4 },
      upstreams: [],
      ttl: 5,
      healthPort: 8080,
      readyPort: 8181,
    });
  });

  it('takes every flag, upstreams repeated in order', () => {
    const settings = parseDnsArgs([
      '--api=http://127.0.0.1:6443',
      '--domain',
      'Corp.Internal.',
      '--listen',
      '[::]:0',
      '--upstream',
      '10.0.0.53',
      '--upstream',
      '[2001:db8::53]:5353',
      '--ttl',
      '30',
      '--health-port',
      '0',
      '--ready-port',
      '9181',
    ]);
    assert.notEqual(settings, 'help');
    if (settings === 'help') return;
    assert.equal(settings.domain, 'corp.internal');
    assert.deepEqual(settings.listen, { host: '::', port: 0, family: 6 });
    assert.deepEqual(
      settings.upstreams.map((u) => formatEndpoint(u)),
      ['10.0.0.53:53', '[2001:db8::53]:5353'],
    );
    assert.equal(settings.ttl, 30);
    assert.equal(settings.healthPort, 0);
    assert.equal(settings.readyPort, 9181);
  });

  it('names the flag and what it wants when a value is bad', () => {
    const cases: [string[], RegExp][] = [
      [['--listen', 'localhost:53'], /--listen "localhost:53": expected IP:PORT/],
      [['--upstream', 'dns.google'], /--upstream "dns.google": expected an IP address/],
      [['--upstream', '10.0.0.1:0'], /--upstream "10.0.0.1:0"/],
      [['--ttl=-1'], /--ttl "-1": expected a number of seconds/],
      [['--domain', 'a..b'], /--domain "a..b": expected a DNS name/],
      [['--health-port', 'http'], /--health-port "http": expected a port number/],
      [['--bogus'], /Unknown option '--bogus'/],
      [['extra'], /Unexpected argument 'extra'/],
    ];
    for (const [args, message] of cases) {
      assert.throws(
        () => parseDnsArgs(['--api', '/x.sock', ...args]),
        (error: unknown) => error instanceof DnsUsageError && message.test(error.message),
        args.join(' '),
      );
    }
  });
});

describe('dnsCommand', () => {
  it('exits 2 with the usage for a bad command line, and 0 for --help', async () => {
    const out = capture();
    const err = capture();
    assert.equal(await dnsCommand(['--listen', 'nowhere'], { out, err }), 2);
    assert.match(err.text(), /^strata dns: --listen "nowhere"/);
    assert.match(err.text(), /Usage: strata dns/);
    assert.equal(await dnsCommand(['--help'], { out, err }), 0);
    assert.match(out.text(), /--upstream IP:PORT/);
  });

  it('is reachable as `strata dns` and stays out of the help text', async () => {
    const out = capture();
    const err = capture();
    assert.equal(await main(['dns', '--ttl', 'soon'], out, err), 2);
    assert.match(err.text(), /--ttl "soon"/);
    assert.equal(await main(['help'], out, err), 0);
    // No `dns` command line (the help does mention `up --no-dns` and the cluster DNS).
    assert.doesNotMatch(out.text(), /^ {2}dns\b/m);
  });
});
