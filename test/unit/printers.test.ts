// `strata get` output held against kubectl's: the columns of each kind
// (pkg/printers/internalversion/printers.go), tabwriter alignment (minwidth
// 6, padding 3), AGE as duration.HumanDuration prints it, and -o yaml/json/name.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resourceForKind } from '../../src/api/registry.js';
import type { KubeObject, ResourceType } from '../../src/api/types.js';
import { parseManifests } from '../../src/cli/manifests.js';
import {
  alignColumns,
  formatAge,
  humanDuration,
  objectName,
  printObjects,
  printTable,
} from '../../src/cli/printers.js';

const now = Date.parse('2026-01-10T12:00:00Z');
const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;
const day = 24 * hour;

/** An RFC 3339 time `ago` milliseconds before `now`. */
function ago(milliseconds: number): string {
  return new Date(now - milliseconds).toISOString().replace('.000Z', 'Z');
}

function kind(apiVersion: string, name: string): ResourceType {
  return resourceForKind(apiVersion, name) ?? assert.fail(`${apiVersion} ${name} is served`);
}

function object(
  apiVersion: string,
  kindName: string,
  metadata: KubeObject['metadata'],
  rest: Partial<KubeObject> = {},
): KubeObject {
  return { apiVersion, kind: kindName, metadata, ...rest };
}

const lines = (...rows: string[]) => rows.map((row) => `${row}\n`).join('');

describe('humanDuration (AGE)', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [-1 * second, '0s'], // clock skew of a second reads as now
    [-2 * second, '<invalid>'],
    [1500, '1s'],
    [45 * second, '45s'],
    [119 * second, '119s'],
    [2 * minute, '2m'],
    [3 * minute + 12 * second, '3m12s'],
    [10 * minute + 30 * second, '10m'],
    [179 * minute, '179m'],
    [3 * hour, '3h'],
    [5 * hour, '5h'],
    [5 * hour + 30 * minute, '5h30m'],
    [8 * hour + 30 * minute, '8h'],
    [47 * hour, '47h'],
    [2 * day, '2d'],
    [3 * day + 4 * hour, '3d4h'],
    [8 * day + 4 * hour, '8d'],
    [729 * day, '729d'],
    [730 * day, '2y'],
    [760 * day, '2y30d'],
    [8 * 365 * day, '8y'],
    [3650 * day, '10y'],
  ];
  for (const [duration, expected] of cases) {
    it(`prints ${duration} ms as ${expected}`, () => {
      assert.equal(humanDuration(duration), expected);
    });
  }

  it('prints <unknown> for a missing or unreadable timestamp', () => {
    assert.equal(formatAge(undefined, now), '<unknown>');
    assert.equal(formatAge('yesterday', now), '<unknown>');
    assert.equal(formatAge(ago(45 * second), now), '45s');
  });
});

describe('alignColumns', () => {
  it('pads each column to its widest cell plus 3, at least 6, leaving the last cell unpadded', () => {
    assert.equal(
      alignColumns([
        ['A', 'B', 'C'],
        ['xx', 'y', 'z'],
      ]),
      lines('A     B     C', 'xx    y     z'),
    );
    assert.equal(
      alignColumns([
        ['NAME', 'AGE'],
        ['naïve-café-𝔸', '1s'], // runes, as Go counts them: 𝔸 is two UTF-16 units
      ]),
      lines('NAME           AGE', 'naïve-café-𝔸   1s'),
    );
  });
});

describe('printTable', () => {
  const podKind = kind('v1', 'Pod');
  const running = { running: { startedAt: ago(hour) } };
  const pods: KubeObject[] = [
    object(
      'v1',
      'Pod',
      { name: 'web-1', namespace: 'default', creationTimestamp: ago(45 * second) },
      {
        spec: { nodeName: 'node-a', containers: [{ name: 'web' }] },
        status: {
          phase: 'Running',
          podIP: '10.244.1.5',
          containerStatuses: [{ name: 'web', ready: true, restartCount: 0, state: running }],
        },
      },
    ),
    object(
      'v1',
      'Pod',
      { name: 'web-2', namespace: 'shop', creationTimestamp: ago(3 * minute + 12 * second) },
      {
        spec: { nodeName: 'node-a', containers: [{ name: 'web' }, { name: 'sidecar' }] },
        status: {
          phase: 'Running',
          podIP: '10.244.1.6',
          containerStatuses: [
            { name: 'web', ready: true, restartCount: 0, state: running },
            {
              name: 'sidecar',
              ready: false,
              restartCount: 4,
              state: { waiting: { reason: 'CrashLoopBackOff' } },
              lastState: { terminated: { exitCode: 1, finishedAt: ago(2 * minute) } },
            },
          ],
        },
      },
    ),
    object(
      'v1',
      'Pod',
      {
        name: 'old-0',
        namespace: 'default',
        creationTimestamp: ago(5 * hour),
        deletionTimestamp: ago(10 * second),
      },
      {
        spec: { containers: [{ name: 'a' }] },
        status: {
          phase: 'Running',
          containerStatuses: [{ name: 'a', ready: true, restartCount: 0, state: running }],
        },
      },
    ),
    object(
      'v1',
      'Pod',
      { name: 'batch-x', namespace: 'default', creationTimestamp: ago(2 * day) },
      {
        spec: { containers: [{ name: 'job' }] },
        status: {
          phase: 'Succeeded',
          containerStatuses: [
            {
              name: 'job',
              ready: false,
              restartCount: 0,
              state: { terminated: { exitCode: 0, reason: 'Completed' } },
            },
          ],
        },
      },
    ),
    object(
      'v1',
      'Pod',
      { name: 'init-y', namespace: 'default', creationTimestamp: ago(30 * second) },
      {
        spec: { initContainers: [{ name: 'setup' }], containers: [{ name: 'app' }] },
        status: {
          phase: 'Pending',
          initContainerStatuses: [
            {
              name: 'setup',
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: 'PodInitializing' } },
            },
          ],
          containerStatuses: [
            {
              name: 'app',
              ready: false,
              restartCount: 0,
              state: { waiting: { reason: 'PodInitializing' } },
            },
          ],
        },
      },
    ),
    object(
      'v1',
      'Pod',
      { name: 'fresh', namespace: 'shop' },
      { spec: { containers: [{ name: 'a' }] } },
    ),
  ];

  it('prints pods: READY from ready containers, STATUS from phase and container states, RESTARTS summed', () => {
    assert.equal(
      printTable(podKind, pods, { now }),
      lines(
        'NAME      READY   STATUS             RESTARTS     AGE',
        'web-1     1/1     Running            0            45s',
        'web-2     1/2     CrashLoopBackOff   4 (2m ago)   3m12s',
        'old-0     1/1     Terminating        0            5h',
        'batch-x   0/1     Completed          0            2d',
        'init-y    0/1     Init:0/1           0            30s',
        'fresh     0/1     Pending            0            <unknown>',
      ),
    );
  });

  it('prints pods wide across all namespaces: NAMESPACE first, IP and NODE last', () => {
    const [web1, web2, , , , fresh] = pods;
    assert.ok(web1 && web2 && fresh);
    assert.equal(
      printTable(podKind, [web1, web2, fresh], {
        now: new Date(now),
        wide: true,
        allNamespaces: true,
      }),
      lines(
        'NAMESPACE   NAME    READY   STATUS             RESTARTS     AGE         IP           NODE',
        'default     web-1   1/1     Running            0            45s         10.244.1.5   node-a',
        'shop        web-2   1/2     CrashLoopBackOff   4 (2m ago)   3m12s       10.244.1.6   node-a',
        'shop        fresh   0/1     Pending            0            <unknown>   <none>       <none>',
      ),
    );
  });

  it('prints a pod’s failing init container, terminated containers without a reason, and a lost node', () => {
    const status = (pod: KubeObject) =>
      printTable(podKind, [pod], { now }).split('\n')[1]?.split(/\s+/)[2];
    const base = { name: 'p', creationTimestamp: ago(minute) };
    const initFailed = object('v1', 'Pod', base, {
      spec: { initContainers: [{ name: 'a' }, { name: 'b' }], containers: [{ name: 'c' }] },
      status: {
        phase: 'Pending',
        initContainerStatuses: [
          { name: 'a', state: { terminated: { exitCode: 0 } } },
          { name: 'b', state: { terminated: { exitCode: 3 } } },
        ],
      },
    });
    const killed = object('v1', 'Pod', base, {
      spec: { containers: [{ name: 'c' }] },
      status: {
        phase: 'Failed',
        containerStatuses: [{ name: 'c', state: { terminated: { exitCode: 137, signal: 9 } } }],
      },
    });
    const lost = object(
      'v1',
      'Pod',
      { ...base, deletionTimestamp: ago(0) },
      {
        spec: { containers: [{ name: 'c' }] },
        status: { phase: 'Running', reason: 'NodeLost' },
      },
    );
    assert.deepEqual([initFailed, killed, lost].map(status), [
      'Init:ExitCode:3',
      'Signal:9',
      'Unknown',
    ]);
  });

  const deployments = [
    object(
      'apps/v1',
      'Deployment',
      { name: 'web', namespace: 'default', creationTimestamp: ago(2 * day) },
      {
        spec: {
          replicas: 3,
          selector: {
            matchLabels: { app: 'web' },
            matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'edge'] }],
          },
          template: {
            spec: {
              containers: [
                { name: 'web', image: 'nginx:1.27' },
                { name: 'sidecar', image: 'envoy:v1' },
              ],
            },
          },
        },
        status: { replicas: 3, readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 },
      },
    ),
    object(
      'apps/v1',
      'Deployment',
      { name: 'api', namespace: 'default', creationTimestamp: ago(17 * minute) },
      {
        spec: {},
      },
    ),
  ];

  it('prints deployments: READY ready/desired (desired 1 by default), UP-TO-DATE, AVAILABLE', () => {
    const deployment = kind('apps/v1', 'Deployment');
    assert.equal(
      printTable(deployment, deployments, { now }),
      lines(
        'NAME   READY   UP-TO-DATE   AVAILABLE   AGE',
        'web    2/3     3            2           2d',
        'api    0/1     0            0           17m',
      ),
    );
    assert.equal(
      printTable(deployment, deployments, { now, wide: true }),
      lines(
        'NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS    IMAGES                SELECTOR',
        'web    2/3     3            2           2d    web,sidecar   nginx:1.27,envoy:v1   app=web,tier in (edge,front)',
        'api    0/1     0            0           17m                                       <none>',
      ),
    );
  });

  it('prints services: TYPE, CLUSTER-IP, EXTERNAL-IP per type, PORT(S), and SELECTOR when wide', () => {
    const created = { namespace: 'default', creationTimestamp: ago(10 * minute) };
    const services = [
      object(
        'v1',
        'Service',
        { name: 'web', ...created },
        {
          spec: {
            type: 'ClusterIP',
            clusterIP: '10.96.0.10',
            selector: { tier: 'front', app: 'web' },
            ports: [{ port: 80, protocol: 'TCP' }, { port: 443 }],
          },
        },
      ),
      object(
        'v1',
        'Service',
        { name: 'np', ...created },
        {
          spec: {
            type: 'NodePort',
            clusterIP: '10.96.0.11',
            externalIPs: ['192.0.2.7'],
            ports: [{ port: 80, nodePort: 30080 }],
          },
        },
      ),
      object(
        'v1',
        'Service',
        { name: 'lb', ...created },
        {
          spec: {
            type: 'LoadBalancer',
            clusterIP: '10.96.0.12',
            ports: [{ port: 80, nodePort: 31000 }],
          },
          status: {
            loadBalancer: { ingress: [{ ip: '192.168.100.200' }, { hostname: 'lb.example.com' }] },
          },
        },
      ),
      object(
        'v1',
        'Service',
        { name: 'lb-pending', ...created },
        {
          spec: {
            type: 'LoadBalancer',
            clusterIP: '10.96.0.13',
            ports: [{ port: 53, protocol: 'UDP' }],
          },
        },
      ),
      object(
        'v1',
        'Service',
        { name: 'db', ...created },
        {
          spec: { type: 'ExternalName', externalName: 'db.example.com' },
        },
      ),
      object(
        'v1',
        'Service',
        { name: 'dns', ...created },
        {
          spec: {
            clusterIP: 'None',
            selector: { 'k8s-app': 'kube-dns' },
            ports: [
              { port: 53, protocol: 'UDP' },
              { port: 53, protocol: 'TCP' },
            ],
          },
        },
      ),
    ];
    const service = kind('v1', 'Service');
    assert.equal(
      printTable(service, services, { now }),
      lines(
        'NAME         TYPE           CLUSTER-IP   EXTERNAL-IP        PORT(S)          AGE',
        'web          ClusterIP      10.96.0.10   <none>             80/TCP,443/TCP   10m',
        'np           NodePort       10.96.0.11   192.0.2.7          80:30080/TCP     10m',
        'lb           LoadBalancer   10.96.0.12   192.168.100.2...   80:31000/TCP     10m',
        'lb-pending   LoadBalancer   10.96.0.13   <pending>          53/UDP           10m',
        'db           ExternalName   <none>       db.example.com     <none>           10m',
        'dns          ClusterIP      None         <none>             53/UDP,53/TCP    10m',
      ),
    );
    assert.equal(
      printTable(service, services, { now, wide: true }),
      lines(
        'NAME         TYPE           CLUSTER-IP   EXTERNAL-IP                      PORT(S)          AGE   SELECTOR',
        'web          ClusterIP      10.96.0.10   <none>                           80/TCP,443/TCP   10m   app=web,tier=front',
        'np           NodePort       10.96.0.11   192.0.2.7                        80:30080/TCP     10m   <none>',
        'lb           LoadBalancer   10.96.0.12   192.168.100.200,lb.example.com   80:31000/TCP     10m   <none>',
        'lb-pending   LoadBalancer   10.96.0.13   <pending>                        53/UDP           10m   <none>',
        'db           ExternalName   <none>       db.example.com                   <none>           10m   <none>',
        'dns          ClusterIP      None         <none>                           53/UDP,53/TCP    10m   k8s-app=kube-dns',
      ),
    );
  });

  it('prints endpointslices: ports and endpoints, three at most then "+ N more..."', () => {
    const slices = [
      object(
        'discovery.k8s.io/v1',
        'EndpointSlice',
        { name: 'web-abc', namespace: 'default', creationTimestamp: ago(119 * second) },
        {
          addressType: 'IPv4',
          ports: [{ port: 80 }, { port: 443 }, { name: 'http' }, { port: 8080 }],
          endpoints: [
            { addresses: ['10.0.0.1', '10.0.0.2'] },
            { addresses: ['10.0.0.3'] },
            { addresses: ['10.0.0.4', '10.0.0.5'] },
          ],
        },
      ),
      object(
        'discovery.k8s.io/v1',
        'EndpointSlice',
        { name: 'web-v6', namespace: 'default', creationTimestamp: ago(2 * minute) },
        {
          addressType: 'IPv6',
          ports: [{}],
          endpoints: [{ addresses: ['fd00::1'] }],
        },
      ),
      object(
        'discovery.k8s.io/v1',
        'EndpointSlice',
        { name: 'empty', namespace: 'default', creationTimestamp: ago(2 * minute) },
        {
          addressType: 'IPv4',
          ports: [],
          endpoints: [],
        },
      ),
    ];
    assert.equal(
      printTable(kind('discovery.k8s.io/v1', 'EndpointSlice'), slices, { now }),
      lines(
        'NAME      ADDRESSTYPE   PORTS                     ENDPOINTS                                AGE',
        'web-abc   IPv4          80,443,http + 1 more...   10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...   119s',
        'web-v6    IPv6          *                         fd00::1                                  2m',
        'empty     IPv4          <unset>                   <unset>                                  2m',
      ),
    );
  });

  it('prints nodes: STATUS from the Ready condition, ROLES from labels, INTERNAL-IP and POD-CIDR when wide', () => {
    const nodes = [
      object(
        'v1',
        'Node',
        {
          name: 'node-a',
          creationTimestamp: ago(8 * day),
          labels: {
            'node-role.kubernetes.io/master': '',
            'node-role.kubernetes.io/control-plane': '',
          },
        },
        {
          spec: { podCIDR: '10.244.0.0/24' },
          status: {
            conditions: [
              { type: 'MemoryPressure', status: 'False' },
              { type: 'Ready', status: 'True' },
            ],
            addresses: [
              { type: 'Hostname', address: 'node-a' },
              { type: 'InternalIP', address: '10.0.0.1' },
            ],
            nodeInfo: { kubeletVersion: 'v1.31.0-strata' },
          },
        },
      ),
      object(
        'v1',
        'Node',
        { name: 'node-b', creationTimestamp: ago(3 * day + 4 * hour) },
        {
          spec: {
            unschedulable: true,
            podCIDR: '10.244.1.0/24',
            podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
          },
          status: { conditions: [{ type: 'Ready', status: 'Unknown' }] },
        },
      ),
      object(
        'v1',
        'Node',
        {
          name: 'node-c',
          creationTimestamp: ago(5 * hour + 30 * minute),
          labels: { 'kubernetes.io/role': 'worker' },
        },
        {
          status: {
            addresses: [{ type: 'InternalIP', address: '10.0.0.3' }],
            nodeInfo: { kubeletVersion: 'v1.31.0-strata' },
          },
        },
      ),
    ];
    const node = kind('v1', 'Node');
    assert.equal(
      printTable(node, nodes, { now }),
      lines(
        'NAME     STATUS                        ROLES                  AGE     VERSION',
        'node-a   Ready                         control-plane,master   8d      v1.31.0-strata',
        'node-b   NotReady,SchedulingDisabled   <none>                 3d4h    <none>',
        'node-c   Unknown                       worker                 5h30m   v1.31.0-strata',
      ),
    );
    // Nodes are not namespaced: no NAMESPACE column even with -A.
    assert.equal(
      printTable(node, nodes, { now, wide: true, allNamespaces: true }),
      lines(
        'NAME     STATUS                        ROLES                  AGE     VERSION          INTERNAL-IP   POD-CIDR',
        'node-a   Ready                         control-plane,master   8d      v1.31.0-strata   10.0.0.1      10.244.0.0/24',
        'node-b   NotReady,SchedulingDisabled   <none>                 3d4h    <none>           <none>        10.244.1.0/24,fd00:10:244:1::/64',
        'node-c   Unknown                       worker                 5h30m   v1.31.0-strata   10.0.0.3      <none>',
      ),
    );
  });

  it('prints namespaces with their phase', () => {
    const namespaces = [
      object(
        'v1',
        'Namespace',
        { name: 'default', creationTimestamp: ago(760 * day) },
        { status: { phase: 'Active' } },
      ),
      object(
        'v1',
        'Namespace',
        { name: 'leaving', creationTimestamp: ago(47 * hour) },
        { status: { phase: 'Terminating' } },
      ),
      object('v1', 'Namespace', { name: 'new', creationTimestamp: ago(0) }),
    ];
    assert.equal(
      printTable(kind('v1', 'Namespace'), namespaces, { now }),
      lines(
        'NAME      STATUS        AGE',
        'default   Active        2y30d',
        'leaving   Terminating   47h',
        'new       Active        0s',
      ),
    );
  });

  it('prints networkpolicies with their pod selector as a label selector string', () => {
    const policies = [
      object(
        'networking.k8s.io/v1',
        'NetworkPolicy',
        { name: 'deny-all', namespace: 'default', creationTimestamp: ago(3650 * day) },
        {
          spec: { podSelector: {}, policyTypes: ['Ingress'] },
        },
      ),
      object(
        'networking.k8s.io/v1',
        'NetworkPolicy',
        { name: 'allow-web', namespace: 'shop', creationTimestamp: ago(179 * minute) },
        {
          spec: {
            podSelector: {
              matchExpressions: [{ key: 'tier', operator: 'In', values: ['front', 'edge'] }],
              matchLabels: { app: 'web' },
            },
          },
        },
      ),
      object(
        'networking.k8s.io/v1',
        'NetworkPolicy',
        { name: 'complex', namespace: 'shop', creationTimestamp: ago(3 * hour) },
        {
          spec: {
            podSelector: {
              matchExpressions: [
                { key: 'team', operator: 'Exists' },
                { key: 'legacy', operator: 'DoesNotExist' },
                { key: 'env', operator: 'NotIn', values: ['dev'] },
              ],
            },
          },
        },
      ),
    ];
    assert.equal(
      printTable(kind('networking.k8s.io/v1', 'NetworkPolicy'), policies, {
        now,
        allNamespaces: true,
      }),
      lines(
        'NAMESPACE   NAME        POD-SELECTOR                   AGE',
        'default     deny-all    <none>                         10y',
        'shop        allow-web   app=web,tier in (edge,front)   179m',
        'shop        complex     env notin (dev),!legacy,team   3h',
      ),
    );
  });

  it('prints NAME and AGE for kinds without columns of their own', () => {
    const reviews = object('networking.istio.io/v1', 'VirtualService', {
      name: 'reviews',
      namespace: 'default',
      creationTimestamp: ago(8 * hour + 5 * minute),
    });
    const virtualService = kind('networking.istio.io/v1', 'VirtualService');
    assert.equal(
      printTable(virtualService, [reviews], { now }),
      lines('NAME      AGE', 'reviews   8h'),
    );
    assert.equal(
      printTable(virtualService, [reviews], { now, wide: true, allNamespaces: true }),
      lines('NAMESPACE   NAME      AGE', 'default     reviews   8h'),
    );
  });

  it('says no resources were found, naming the namespace for namespaced kinds', () => {
    assert.equal(printTable(podKind, []), 'No resources found in default namespace.\n');
    assert.equal(
      printTable(podKind, [], { namespace: 'shop' }),
      'No resources found in shop namespace.\n',
    );
    assert.equal(
      printTable(podKind, [], { namespace: 'shop', allNamespaces: true }),
      'No resources found\n',
    );
    assert.equal(printTable(kind('v1', 'Node'), []), 'No resources found\n');
  });
});

describe('printObjects', () => {
  const pod = object(
    'v1',
    'Pod',
    {
      name: 'web-1',
      namespace: 'default',
      labels: { enabled: 'yes', app: 'web' },
      creationTimestamp: '2026-01-10T11:00:00Z',
    },
    {
      status: { phase: 'Running' },
      spec: {
        containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 80 }], args: [] }],
      },
    },
  );
  const deployment = object(
    'apps/v1',
    'Deployment',
    { name: 'web', namespace: 'default' },
    { spec: { replicas: 2 } },
  );
  const policy = object('networking.k8s.io/v1', 'NetworkPolicy', {
    name: 'deny-all',
    namespace: 'default',
  });
  const gateway = object('gateway.networking.k8s.io/v1', 'Gateway', {
    name: 'edge',
    namespace: 'default',
  });

  it('prints -o name as kind.group/name, lowercase kind, core kinds without a group', () => {
    assert.equal(
      printObjects([pod, deployment, policy, gateway], 'name'),
      lines(
        'pod/web-1',
        'deployment.apps/web',
        'networkpolicy.networking.k8s.io/deny-all',
        'gateway.gateway.networking.k8s.io/edge',
      ),
    );
    assert.equal(objectName(object('v1', 'Namespace', { name: 'shop' })), 'namespace/shop');
    assert.equal(printObjects([], 'name'), '');
  });

  it('prints one object as YAML with keys sorted, sequences unindented, ambiguous strings quoted', () => {
    assert.equal(
      printObjects([pod], 'yaml'),
      lines(
        'apiVersion: v1',
        'kind: Pod',
        'metadata:',
        '  creationTimestamp: "2026-01-10T11:00:00Z"',
        '  labels:',
        '    app: web',
        '    enabled: "yes"',
        '  name: web-1',
        '  namespace: default',
        'spec:',
        '  containers:',
        '  - args: []',
        '    image: nginx',
        '    name: web',
        '    ports:',
        '    - containerPort: 80',
        'status:',
        '  phase: Running',
      ),
    );
  });

  it('prints YAML that reads back as the same object', () => {
    const [read] = parseManifests('out.yaml', printObjects([pod], 'yaml'));
    assert.deepEqual(read?.object, pod);
  });

  it('prints several objects, or a list asked for, as a v1 List', () => {
    const expected = lines(
      'apiVersion: v1',
      'items:',
      '- apiVersion: apps/v1',
      '  kind: Deployment',
      '  metadata:',
      '    name: web',
      '    namespace: default',
      '  spec:',
      '    replicas: 2',
      '- apiVersion: networking.k8s.io/v1',
      '  kind: NetworkPolicy',
      '  metadata:',
      '    name: deny-all',
      '    namespace: default',
      'kind: List',
      'metadata:',
      '  resourceVersion: ""',
    );
    assert.equal(printObjects([deployment, policy], 'yaml'), expected);
    assert.equal(
      printObjects([], 'yaml'),
      lines('apiVersion: v1', 'items: []', 'kind: List', 'metadata:', '  resourceVersion: ""'),
    );
    assert.match(
      printObjects([deployment], 'yaml', { list: true }),
      /^apiVersion: v1\nitems:\n- apiVersion: apps\/v1\n/,
    );
  });

  it('prints JSON indented by four spaces with keys sorted, one object or a List', () => {
    assert.equal(
      printObjects([deployment], 'json'),
      lines(
        '{',
        '    "apiVersion": "apps/v1",',
        '    "kind": "Deployment",',
        '    "metadata": {',
        '        "name": "web",',
        '        "namespace": "default"',
        '    },',
        '    "spec": {',
        '        "replicas": 2',
        '    }',
        '}',
      ),
    );
    const list = JSON.parse(printObjects([pod, deployment], 'json')) as unknown;
    assert.deepEqual(list, {
      apiVersion: 'v1',
      items: [pod, deployment],
      kind: 'List',
      metadata: { resourceVersion: '' },
    });
    assert.deepEqual(
      Object.keys((JSON.parse(printObjects([pod], 'json')) as { metadata: object }).metadata),
      ['creationTimestamp', 'labels', 'name', 'namespace'],
    );
  });
});
