// The node proxy (src/mesh/proxy/) end to end on one node in routed pod mode
// (docs/mesh.md): a node namespace with a bridge of isolated ports and proxy
// ARP, three pod namespaces, the capture table and policy routing applied by
// the proxy process itself (test/support/mesh-node-proxy.ts), and a CA in a
// temporary directory. Pod A and pod B are enrolled (namespace label), pod C
// is not. A → B goes A → 15001 → HBONE to B's address on 15008 (captured back
// into the same proxy through lo) → a transparent connection to B from A's
// address.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { KubeObject } from '../../src/api/types.js';
import { Lab, inNetns, sh } from '../support/netns.js';
import { routedLab } from '../support/routed-lab.js';

const root = process.getuid?.() === 0;
const proxyScript = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'support',
  'mesh-node-proxy.js',
);

const ambient = { 'istio.io/dataplane-mode': 'ambient' };
const podIp = { a: '10.250.0.2', b: '10.250.0.3', c: '10.250.0.4' } as const;

function pod(namespace: string, name: string, ip: string, serviceAccount: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace, name, labels: { app: name } },
    spec: { nodeName: 'node-1', serviceAccountName: serviceAccount },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: '10.250.0.1' },
  };
}

function peerAuthentication(mode: string): KubeObject {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { namespace: 'mesh', name: 'mtls', creationTimestamp: '2024-01-01T00:00:00Z' },
    spec: { mtls: { mode } },
  };
}

const denyClient: KubeObject = {
  apiVersion: 'security.istio.io/v1',
  kind: 'AuthorizationPolicy',
  metadata: { namespace: 'mesh', name: 'deny-client' },
  spec: {
    action: 'DENY',
    rules: [{ from: [{ source: { principals: ['cluster.local/ns/mesh/sa/client'] } }] }],
  },
};

describe('the node proxy on one node', { skip: !root && 'needs root' }, () => {
  const lab = new Lab();
  let node = '';
  const pods: Record<'a' | 'b' | 'c', string> = { a: '', b: '', c: '' };
  let accessLogPath = '';
  let proxy: ChildProcess | undefined;
  const lines: Record<string, unknown>[] = [];

  const waitFor = async <T>(
    find: () => T | undefined,
    what: string,
    timeoutMs = 5000,
  ): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  const send = (command: unknown) => {
    proxy?.stdin?.write(`${JSON.stringify(command)}\n`);
  };
  const status = async (): Promise<{ counts: Record<string, number> }> => {
    const seen = lines.length;
    send({ status: 1 });
    const line = await waitFor(
      () => lines.slice(seen).find((l) => l.status !== undefined),
      'the proxy status',
    );
    return line.status as { counts: Record<string, number> };
  };
  const setPolicies = async (policies: {
    peerAuthentications?: KubeObject[];
    authorizationPolicies?: KubeObject[];
  }) => {
    const seen = lines.length;
    send({ policies });
    await waitFor(() => lines.slice(seen).find((l) => l.applied !== undefined), 'policies');
  };
  /** What B answers a client in `from`: the address it saw the connection come from. */
  const ask = (from: string, to: string = podIp.b): string =>
    inNetns(from, ['ncat', '--recv-only', '-w', '2', to, '8080'], {
      timeoutMs: 4000,
    }).stdout.trim();

  before(async () => {
    const made = routedLab(lab, 'mp', '10.250.0.0/24', podIp);
    node = made.node;
    Object.assign(pods, made.pods);
    lab.serveTcp(pods.b, '0.0.0.0', 8080, '$NCAT_REMOTE_ADDR');
    lab.serveTcp(pods.c, '0.0.0.0', 8080, '$NCAT_REMOTE_ADDR');
    const dir = lab.dir('strata-mesh-proxy-');
    accessLogPath = join(dir, 'access.log');
    const config = {
      nodeName: 'node-1',
      caDir: join(dir, 'ca'),
      accessLogPath,
      namespaces: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'mesh', labels: ambient } },
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'plain' } },
      ],
      pods: [
        pod('mesh', 'a', podIp.a, 'client'),
        pod('mesh', 'b', podIp.b, 'server'),
        pod('plain', 'c', podIp.c, 'default'),
      ],
    };
    const child = spawn('ip', ['netns', 'exec', node, process.execPath, proxyScript], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, MESH_PROXY_CONFIG: JSON.stringify(config) },
    });
    proxy = child;
    lab.onCleanup(() => child.kill('SIGKILL'));
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const part of parts) lines.push(JSON.parse(part) as Record<string, unknown>);
    });
    await waitFor(() => lines.find((l) => l.ready !== undefined), 'the proxy to start', 10_000);
  });

  after(async () => {
    if (proxy !== undefined && proxy.exitCode === null) {
      const exited = new Promise((resolve) => proxy?.once('exit', resolve));
      proxy.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
    }
    lab.cleanup();
  });

  it('carries A → B over HBONE: B sees A’s address, the log and the metrics name A’s identity', async () => {
    assert.equal(ask(pods.a), podIp.a);
    const counts = (await status()).counts;
    assert.equal(counts['outbound/hbone'], 1);
    assert.equal(counts['inbound-hbone/allow'], 1);
    const logged = await waitFor(() => {
      const text = existsSync(accessLogPath) ? readFileSync(accessLogPath, 'utf8') : '';
      const entries = text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      return entries.length >= 2 ? entries : undefined;
    }, 'two access log lines');
    const text = JSON.stringify(logged);
    assert.match(text, /spiffe:\/\/cluster\.local\/ns\/mesh\/sa\/client/);
    assert.match(text, /spiffe:\/\/cluster\.local\/ns\/mesh\/sa\/server/);
    const metrics = inNetns(node, ['curl', '-sf', 'http://127.0.0.1:15020/metrics']).stdout;
    const opened = metrics
      .split('\n')
      .filter((l) => l.startsWith('istio_tcp_connections_opened_total{'));
    const inbound = opened.find(
      (l) =>
        l.includes('reporter="destination"') &&
        l.includes('source_principal="spiffe://cluster.local/ns/mesh/sa/client"') &&
        l.includes('connection_security_policy="mutual_tls"'),
    );
    assert.ok(inbound?.endsWith(' 1'), metrics);
    assert.ok(
      opened.some((l) => l.includes('reporter="source"') && l.endsWith(' 1')),
      metrics,
    );
  });

  it('refuses A → B when an AuthorizationPolicy denies A’s principal', async () => {
    await setPolicies({ authorizationPolicies: [denyClient] });
    assert.equal(ask(pods.a), '');
    const counts = (await status()).counts;
    assert.equal(counts['inbound-hbone/deny'], 1);
    assert.equal(counts['outbound/deny'], 1);
    await setPolicies({});
    assert.equal(ask(pods.a), podIp.a);
  });

  it('refuses plaintext from C under STRICT and passes it on under PERMISSIVE', async () => {
    await setPolicies({ peerAuthentications: [peerAuthentication('STRICT')] });
    assert.equal(ask(pods.c), '');
    assert.equal((await status()).counts['inbound-plaintext/deny'], 1);
    // STRICT does not touch HBONE.
    assert.equal(ask(pods.a), podIp.a);
    await setPolicies({ peerAuthentications: [peerAuthentication('PERMISSIVE')] });
    assert.equal(ask(pods.c), podIp.c);
    assert.equal((await status()).counts['inbound-plaintext/allow'], 1);
  });

  it('sends A → C (not in the mesh) straight on from A’s address', async () => {
    assert.equal(ask(pods.a, podIp.c), podIp.a);
    assert.equal((await status()).counts['outbound/passthrough'], 1);
  });

  it('carries the HBONE leg as TLS records only', () => {
    // tcpdump is not installed on these machines: an nftables probe in the node's output hook
    // (both directions of the tunnel leave through it) classifies every segment to or from port
    // 15008 that carries data by its first byte, a TLS record type (20-23) or anything else.
    sh(
      'ip',
      ['netns', 'exec', node, 'nft', '-f', '-'],
      `table inet mesh_probe {
        counter tls { }
        counter other { }
        chain output {
          type filter hook output priority raw; policy accept;
          tcp dport 15008 @ih,0,8 { 0x14, 0x15, 0x16, 0x17 } counter name tls
          tcp sport 15008 @ih,0,8 { 0x14, 0x15, 0x16, 0x17 } counter name tls
          tcp dport 15008 @ih,0,8 != { 0x14, 0x15, 0x16, 0x17 } counter name other
          tcp sport 15008 @ih,0,8 != { 0x14, 0x15, 0x16, 0x17 } counter name other
        }
      }`,
    );
    assert.equal(ask(pods.a), podIp.a);
    const listed = JSON.parse(
      sh('ip', [
        'netns',
        'exec',
        node,
        'nft',
        '-j',
        'list',
        'counters',
        'table',
        'inet',
        'mesh_probe',
      ]),
    ) as { nftables: { counter?: { name: string; packets: number } }[] };
    const packets = (name: string) =>
      listed.nftables.find((entry) => entry.counter?.name === name)?.counter?.packets;
    assert.ok((packets('tls') ?? 0) > 0, JSON.stringify(listed));
    assert.equal(packets('other'), 0);
  });
});
