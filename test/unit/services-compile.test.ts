// Services → one node's nftables table (src/services): the API objects
// reduced to inputs, the table's shape as kube-proxy's nftables mode lays it
// out (dispatch maps, DNAT spreads, affinity, reject for ports without
// endpoints, traffic policies), the incremental compiler against a whole
// compile, the differences written between two states, and, as root, the
// kernel's acceptance of the whole table and of a series of changes inside a
// throwaway network namespace.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import {
  compileServiceState,
  NodeServiceCompiler,
  type ServiceNode,
  type UdpFlow,
} from '../../src/services/compile.js';
import {
  type EndpointInput,
  endpointsOf,
  type ServiceInput,
  serviceInput,
  servicePortKey,
  usableEndpoints,
} from '../../src/services/input.js';
import {
  type NftTableState,
  renderTable,
  renderTableChange,
} from '../../src/services/nft-state.js';

const node: ServiceNode = {
  name: 'n1',
  clusterCidrs: ['10.244.0.0/16'],
  serviceCidrs: ['10.96.0.0/16'],
};

function service(overrides: Partial<ServiceInput> = {}): ServiceInput {
  return {
    namespace: 'shop',
    name: 'web',
    type: 'ClusterIP',
    clusterIps: ['10.96.0.20'],
    ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
    internalTrafficPolicy: 'Cluster',
    externalTrafficPolicy: 'Cluster',
    ...overrides,
  };
}

function endpoint(address: string, overrides: Partial<EndpointInput> = {}): EndpointInput {
  return {
    address,
    port: 8080,
    ready: true,
    serving: true,
    terminating: false,
    nodeName: 'n2',
    ...overrides,
  };
}

function compile(
  services: ServiceInput[],
  endpoints: Record<string, EndpointInput[]>,
): NftTableState {
  return compileServiceState({ services, endpoints: new Map(Object.entries(endpoints)) }, node);
}

const webPort = 'shop/web:http/TCP';

function elements(state: NftTableState, set: string): Record<string, string> {
  return Object.fromEntries(state.sets.get(set)?.elements ?? []);
}

/** The rules of the chain whose name starts with `prefix`. */
function chainStarting(state: NftTableState, prefix: string): string[] {
  const found = [...state.chains].filter(([name]) => name.startsWith(prefix));
  assert.equal(found.length, 1, `one chain named ${prefix}*: ${found.map(([n]) => n).join(', ')}`);
  return found[0]?.[1].rules ?? [];
}

describe('serviceInput and endpointsOf', () => {
  it('reads a Service as the data path needs it', () => {
    const object: KubeObject = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: 'shop', name: 'web' },
      spec: {
        type: 'NodePort',
        clusterIP: '10.96.0.20',
        clusterIPs: ['10.96.0.20', 'fd00:96::20'],
        ports: [
          { name: 'http', port: 80, protocol: 'TCP', nodePort: 30080, targetPort: 'http' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
        externalTrafficPolicy: 'Local',
      },
    };
    assert.deepEqual(serviceInput(object), {
      namespace: 'shop',
      name: 'web',
      type: 'NodePort',
      clusterIps: ['10.96.0.20', 'fd00:96::20'],
      ports: [
        { name: 'http', protocol: 'TCP', port: 80, nodePort: 30080 },
        { name: 'dns', protocol: 'UDP', port: 53 },
      ],
      affinitySeconds: 60,
      internalTrafficPolicy: 'Cluster',
      externalTrafficPolicy: 'Local',
    });
    const headless = serviceInput({ ...object, spec: { clusterIP: 'None', ports: [] } });
    assert.deepEqual(headless?.clusterIps, []);
  });

  it('merges a Service’s slices per port, an endpoint in two slices counting once', () => {
    const slice = (name: string, ready: boolean | undefined, addresses: string[]): KubeObject => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        namespace: 'shop',
        name,
        labels: { 'kubernetes.io/service-name': 'web' },
      },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      endpoints: addresses.map((a) => ({
        addresses: [a],
        conditions: ready === undefined ? {} : { ready, serving: ready, terminating: !ready },
        nodeName: 'n2',
      })),
    });
    const merged = endpointsOf('shop', 'web', [
      slice('web-a', false, ['10.244.1.5', '10.244.1.6']),
      slice('web-b', true, ['10.244.1.5']),
      slice('web-c', undefined, ['10.244.1.7']),
    ]);
    const list = merged.get(webPort) ?? [];
    assert.deepEqual(
      list.map((e) => [e.address, e.ready]),
      [
        ['10.244.1.5', true],
        ['10.244.1.6', false],
        ['10.244.1.7', true],
      ],
    );
  });

  it('falls back to serving terminating endpoints only when none is ready', () => {
    const old = endpoint('10.244.1.5', { ready: false, serving: true, terminating: true });
    const gone = endpoint('10.244.1.6', { ready: false, serving: false, terminating: true });
    assert.deepEqual(usableEndpoints([old, gone], 4), [old]);
    const fresh = endpoint('10.244.1.7');
    assert.deepEqual(usableEndpoints([old, gone, fresh], 4), [fresh]);
    assert.deepEqual(usableEndpoints([fresh], 4, 'n1'), []);
  });
});

describe('compileServiceState', () => {
  it('sends a cluster IP port to a chain that spreads new connections with numgen', () => {
    const state = compile([service()], {
      [webPort]: [endpoint('10.244.1.5'), endpoint('10.244.2.5', { port: 9090 })],
    });
    const map = elements(state, 'service-ips-v4');
    assert.deepEqual(Object.keys(map), ['10.96.0.20 . tcp . 80']);
    assert.match(map['10.96.0.20 . tcp . 80'] ?? '', /^goto svc-[A-Z2-7]{8}-shop\/web\/tcp\/http$/);
    assert.deepEqual(chainStarting(state, 'svc-'), [
      'ip daddr 10.96.0.20 ip saddr != 10.244.0.0/16 jump mark-for-masquerade',
      'meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.5 . 8080, 1 : 10.244.2.5 . 9090 }',
    ]);
    assert.deepEqual(Object.keys(elements(state, 'hairpin-v4')), [
      '10.244.1.5 . 10.244.1.5',
      '10.244.2.5 . 10.244.2.5',
    ]);
    assert.deepEqual(Object.keys(elements(state, 'cluster-ips-v4')), ['10.96.0.20']);
    assert.deepEqual(elements(state, 'no-endpoint-services-v4'), {});
  });

  it('rejects a port with no usable endpoint instead of programming it', () => {
    const state = compile(
      [
        service({
          ports: [
            { name: 'http', protocol: 'TCP', port: 80 },
            { name: 'dns', protocol: 'UDP', port: 53 },
          ],
        }),
      ],
      { [webPort]: [endpoint('10.244.1.5', { ready: false, serving: false })] },
    );
    assert.deepEqual(elements(state, 'service-ips-v4'), {});
    assert.deepEqual(elements(state, 'no-endpoint-services-v4'), {
      '10.96.0.20 . tcp . 80': 'goto reject-chain',
      '10.96.0.20 . udp . 53': 'goto reject-chain',
    });
    assert.deepEqual(state.chains.get('cluster-ips-check')?.rules, [
      'ip daddr @cluster-ips-v4 goto reject-chain',
      'ip6 daddr @cluster-ips-v6 goto reject-chain',
      'ip daddr { 10.96.0.0/16 } drop',
    ]);
    assert.deepEqual(state.chains.get('reject-chain')?.rules, [
      'meta l4proto tcp reject with tcp reset',
      'reject with icmpx port-unreachable',
    ]);
  });

  it('programs nothing for a headless Service', () => {
    const empty = compile([], {});
    const headless = compile([service({ clusterIps: [] })], {
      [webPort]: [endpoint('10.244.1.5')],
    });
    assert.equal(renderTableChange(empty, headless), '');
  });

  it('keeps ClientIP affinity per endpoint in timed sets, as kube-proxy does', () => {
    const state = compile([service({ affinitySeconds: 600 })], {
      [webPort]: [endpoint('10.244.1.5'), endpoint('10.244.2.5')],
    });
    const rules = chainStarting(state, 'svc-');
    assert.equal(rules.length, 4);
    assert.match(rules[1] ?? '', /^ip saddr @affinity-\S+ goto ep-\S+__10\.244\.1\.5\/8080$/);
    assert.match(rules[3] ?? '', /^numgen random mod 2 vmap \{ 0 : goto ep-/);
    const affinity = [...state.sets].filter(([name]) => name.startsWith('affinity-'));
    assert.equal(affinity.length, 2);
    assert.equal(
      affinity[0]?.[1].declaration,
      'type ipv4_addr; flags dynamic,timeout; timeout 600s;',
    );
    const endpointChain = chainStarting(state, 'ep-' + (rules[1]?.split('goto ep-')[1] ?? ''));
    assert.match(endpointChain[0] ?? '', /^update @affinity-\S+ \{ ip saddr \}$/);
    assert.equal(endpointChain[1], 'meta l4proto tcp dnat ip to 10.244.1.5:8080');
  });

  it('gives each family its own chain and DNAT', () => {
    const state = compile([service({ clusterIps: ['10.96.0.20', 'fd00:96::20'] })], {
      [webPort]: [endpoint('10.244.1.5'), endpoint('fd00:244::5')],
    });
    assert.deepEqual(Object.keys(elements(state, 'service-ips-v6')), ['fd00:96::20 . tcp . 80']);
    assert.deepEqual(chainStarting(state, 'svc6-'), [
      'meta l4proto tcp dnat ip6 to numgen random mod 1 map { 0 : fd00:244::5 . 8080 }',
    ]);
    assert.match(chainStarting(state, 'svc-')[1] ?? '', /map \{ 0 : 10\.244\.1\.5 \. 8080 \}$/);
  });

  it('sends NodePorts through an external chain that masquerades, or to local endpoints only', () => {
    const nodePort = service({
      type: 'NodePort',
      ports: [{ name: 'http', protocol: 'TCP', port: 80, nodePort: 30080 }],
    });
    const endpoints = {
      [webPort]: [endpoint('10.244.0.5', { nodeName: 'n1' }), endpoint('10.244.1.5')],
    };
    const cluster = compile([nodePort], endpoints);
    assert.match(elements(cluster, 'service-nodeports-v4')['tcp . 30080'] ?? '', /^goto ext-/);
    assert.deepEqual(chainStarting(cluster, 'ext-'), [
      'jump mark-for-masquerade',
      `goto ${[...cluster.chains.keys()].find((n) => n.startsWith('svc-')) ?? ''}`,
    ]);
    const local = compile([{ ...nodePort, externalTrafficPolicy: 'Local' }], endpoints);
    assert.deepEqual(chainStarting(local, 'ext-'), [
      'meta l4proto tcp dnat ip to numgen random mod 1 map { 0 : 10.244.0.5 . 8080 }',
    ]);
    const noneHere = compile([{ ...nodePort, externalTrafficPolicy: 'Local' }], {
      [webPort]: [endpoint('10.244.1.5')],
    });
    assert.deepEqual(elements(noneHere, 'no-endpoint-nodeports-v4'), { 'tcp . 30080': 'drop' });
    const internalLocal = compile([{ ...nodePort, internalTrafficPolicy: 'Local' }], {
      [webPort]: [endpoint('10.244.1.5')],
    });
    assert.deepEqual(elements(internalLocal, 'no-endpoint-services-v4'), {
      '10.96.0.20 . tcp . 80': 'goto reject-chain',
    });
  });
});

describe('NodeServiceCompiler and renderTableChange', () => {
  const base = (): [ServiceInput, Map<string, EndpointInput[]>][] =>
    Array.from({ length: 5 }, (_, i) => {
      const s = service({ name: `web${i}`, clusterIps: [`10.96.0.${20 + i}`] });
      const list = [endpoint(`10.244.1.${10 + i}`), endpoint(`10.244.2.${10 + i}`)];
      return [s, new Map([[servicePortKey(s, { name: 'http', protocol: 'TCP' }), list]])];
    });

  it('builds incrementally what a whole compile builds', () => {
    const compiler = new NodeServiceCompiler(node);
    const items = base();
    for (const [s, eps] of items) {
      compiler.setService(`shop/${s.name}`, s);
      compiler.setEndpoints(`shop/${s.name}`, eps);
    }
    compiler.build();
    const [changed, eps] = items[2] ?? assert.fail('five services');
    const moved = new Map([[[...eps.keys()][0] ?? '', [endpoint('10.244.3.3')]]]);
    compiler.setEndpoints(`shop/${changed.name}`, moved);
    items[2] = [changed, moved];
    compiler.setService('shop/web4', undefined);
    items.pop();
    const incremental = compiler.build();
    const whole = compileServiceState(
      {
        services: items.map(([s]) => s),
        endpoints: new Map(items.flatMap(([, e]) => [...e])),
      },
      node,
    );
    assert.equal(renderTable(incremental), renderTable(whole));
    assert.equal(renderTableChange(whole, incremental), '');
  });

  it('reports the UDP flows a change stops programming, for conntrack cleanup', () => {
    const dns = service({
      name: 'dns',
      type: 'NodePort',
      ports: [{ name: 'dns', protocol: 'UDP', port: 53, nodePort: 30053 }],
    });
    const key = 'shop/dns:dns/UDP';
    const compiler = new NodeServiceCompiler(node);
    compiler.setService('shop/dns', dns);
    compiler.setEndpoints(
      'shop/dns',
      new Map([
        [key, [endpoint('10.244.1.5', { port: 53 }), endpoint('10.244.2.5', { port: 53 })]],
      ]),
    );
    const none: UdpFlow[] = [];
    compiler.build(none);
    assert.deepEqual(none, []);
    compiler.setEndpoints('shop/dns', new Map([[key, [endpoint('10.244.2.5', { port: 53 })]]]));
    const stale: UdpFlow[] = [];
    compiler.build(stale);
    assert.deepEqual(stale, [
      { destination: { address: '10.96.0.20' }, endpoint: '10.244.1.5' },
      { destination: { nodePort: 30053 }, endpoint: '10.244.1.5' },
    ]);
  });

  it('writes one endpoint change as a chain rewrite and its hairpin element', () => {
    const items = base();
    const state = (list: typeof items) =>
      compileServiceState(
        { services: list.map(([s]) => s), endpoints: new Map(list.flatMap(([, e]) => [...e])) },
        node,
      );
    const before = state(items);
    const [s1, e1] = items[1] ?? assert.fail('five services');
    const key = [...e1.keys()][0] ?? '';
    items[1] = [s1, new Map([[key, (e1.get(key) ?? []).slice(0, 1)]])];
    const change = renderTableChange(before, state(items)).trim().split('\n');
    assert.equal(change.length, 4);
    assert.match(
      change[0] ?? '',
      /^flush chain inet strata_services svc-\S+-shop\/web1\/tcp\/http$/,
    );
    assert.match(change[2] ?? '', /numgen random mod 1 map \{ 0 : 10\.244\.1\.11 \. 8080 \}$/);
    assert.equal(
      change[3],
      'delete element inet strata_services hairpin-v4 { 10.244.2.11 . 10.244.2.11 }',
    );
  });

  it('deletes what a removed Service used, after the references to it are gone', () => {
    const one = compile([service({ affinitySeconds: 60 })], {
      [webPort]: [endpoint('10.244.1.5')],
    });
    const none = compile([], {});
    const lines = renderTableChange(one, none).trim().split('\n');
    const at = (pattern: RegExp): number => lines.findIndex((line) => pattern.test(line));
    assert.ok(at(/^delete element .* service-ips-v4/) >= 0);
    assert.ok(at(/^delete set .* affinity-/) > at(/^flush chain .* ep-/));
    assert.ok(at(/^delete chain .* ep-/) > at(/^delete set .* affinity-/));
    assert.ok(at(/^delete chain .* svc-/) > at(/^delete element .* service-ips-v4/));
  });

  it('declares a set again when its timeout changes, rewriting the chains that use it', () => {
    const eps = { [webPort]: [endpoint('10.244.1.5')] };
    const short = compile([service({ affinitySeconds: 60 })], eps);
    const long = compile([service({ affinitySeconds: 120 })], eps);
    const lines = renderTableChange(short, long).trim().split('\n');
    const deleteSet = lines.findIndex((l) => /^delete set .* affinity-/.test(l));
    const addSet = lines.findIndex((l) => /^add set .* affinity-.*timeout 120s/.test(l));
    assert.ok(deleteSet > 0 && addSet > deleteSet, lines.join('\n'));
    assert.ok(lines.slice(0, deleteSet).some((l) => /^flush chain .* svc-/.test(l)));
  });
});

const root = process.getuid?.() === 0;

describe(
  'the Services table in the kernel',
  { skip: !root && 'needs root for a network namespace' },
  () => {
    it('loads whole, then takes a series of changes, ending as a whole load would', () => {
      const ns = `strata-test-svc-${randomBytes(4).toString('hex')}`;
      execFileSync('ip', ['netns', 'add', ns]);
      const nft = (input: string, ...args: string[]): string =>
        execFileSync('ip', ['netns', 'exec', ns, 'nft', ...args], { input, encoding: 'utf8' });
      try {
        const nodePort = service({
          name: 'api',
          type: 'NodePort',
          clusterIps: ['10.96.0.30', 'fd00:96::30'],
          ports: [
            { name: 'http', protocol: 'TCP', port: 80, nodePort: 30080 },
            { name: 'dns', protocol: 'UDP', port: 53, nodePort: 30053 },
          ],
        });
        const steps: [ServiceInput[], Record<string, EndpointInput[]>][] = [
          [[service(), nodePort], { [webPort]: [endpoint('10.244.1.5')] }],
          [
            [service({ affinitySeconds: 30 }), nodePort],
            {
              [webPort]: [endpoint('10.244.1.5'), endpoint('10.244.2.5')],
              'shop/api:http/TCP': [endpoint('10.244.1.9'), endpoint('fd00:244::9')],
              'shop/api:dns/UDP': [endpoint('10.244.1.9', { port: 53 })],
            },
          ],
          [[service({ affinitySeconds: 90 }), { ...nodePort, externalTrafficPolicy: 'Local' }], {}],
          [[nodePort], { 'shop/api:http/TCP': [endpoint('10.244.0.9', { nodeName: 'n1' })] }],
          [[], {}],
        ];
        let state = compile(...(steps[0] ?? assert.fail('steps')));
        nft(renderTable(state), '-f', '-');
        for (const step of steps.slice(1)) {
          const next = compile(...step);
          nft(renderTableChange(state, next), '-f', '-');
          state = next;
          const listed = nft('', 'list', 'table', 'inet', 'strata_services');
          const scratch = `${ns}-whole`;
          execFileSync('ip', ['netns', 'add', scratch]);
          try {
            execFileSync('ip', ['netns', 'exec', scratch, 'nft', '-f', '-'], {
              input: renderTable(next),
            });
            const whole = execFileSync(
              'ip',
              ['netns', 'exec', scratch, 'nft', 'list', 'table', 'inet', 'strata_services'],
              {
                encoding: 'utf8',
              },
            );
            const normal = (text: string) =>
              text
                .split('\n')
                .map((l) => l.trim())
                .filter(Boolean)
                .sort()
                .join('\n');
            assert.equal(normal(listed), normal(whole));
          } finally {
            execFileSync('ip', ['netns', 'del', scratch]);
          }
        }
      } finally {
        execFileSync('ip', ['netns', 'del', ns]);
      }
    });
  },
);
