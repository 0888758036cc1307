// get, describe, delete, logs and the dispatcher, against a real API server: what a
// user reads. Pods are created bound to a node with a status, as an agent reports it.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../src/client/index.js';
import { resourceForKind } from '../../src/api/registry.js';
import type { KubeObject } from '../../src/api/types.js';
import { errorLine } from '../../src/cli/main.js';
import { lastLines } from '../../src/cli/logs.js';
import { TestCluster, strata } from '../support/cli.js';

/** AGE cells and times depend on when the test runs. */
function steady(text: string): string {
  return text
    .replace(/\b\d+s\b/g, 'AGE')
    .replace(/[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d \+0000/g, 'TIME');
}

const lines = (...rows: string[]): string => rows.map((row) => `${row}\n`).join('');

describe('strata get, describe, delete, logs', () => {
  let cluster: TestCluster;
  let client: ApiClient;
  let podUid = '';
  before(async () => {
    cluster = await TestCluster.start();
    client = new ApiClient({ socketPath: join(cluster.stateDir, 'api.sock') });
    const apply = await cluster.run(
      ['apply', '-f', '-'],
      `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  nodeName: node-1
  containers:
    - name: web
      image: node
      command: [node, server.mjs]
      ports: [{containerPort: 8080}]
      env: [{name: ROLE, value: web}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
`,
    );
    assert.equal(apply.code, 0, apply.stderr);
    const pods = resourceForKind('v1', 'Pod');
    if (!pods) throw new Error('no v1 Pod');
    const pod = await client.get(pods, 'web');
    podUid = pod.metadata.uid ?? '';
    const status = {
      phase: 'Running',
      hostIP: '172.31.0.11',
      podIP: '10.244.0.5',
      podIPs: [{ ip: '10.244.0.5' }],
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [
        {
          name: 'web',
          ready: true,
          restartCount: 0,
          state: { running: { startedAt: '2026-01-01T00:00:00Z' } },
        },
      ],
    };
    await client.updateStatus({ ...pod, status });
  });
  after(async () => {
    client.close();
    await cluster.stop();
  });

  it('get: a table of the namespace, wide with -o wide', async () => {
    const run = await cluster.run(['get', 'pods']);
    assert.equal(run.code, 0);
    assert.equal(
      steady(run.stdout),
      lines('NAME   READY   STATUS    RESTARTS   AGE', 'web    1/1     Running   0          AGE'),
    );
    const wide = await cluster.run(['get', 'po', '-o', 'wide']);
    assert.match(wide.stdout, /^NAME +READY +STATUS +RESTARTS +AGE +IP +NODE/);
    assert.match(wide.stdout, /10\.244\.0\.5 +node-1/);
  });

  it('get: -A adds the namespace; an empty namespace says so', async () => {
    const all = await cluster.run(['get', 'services', '-A', '-o', 'name']);
    assert.equal(all.stdout, 'service/web\n');
    const table = await cluster.run(['get', 'svc', '--all-namespaces']);
    assert.match(table.stdout, /^NAMESPACE +NAME +TYPE/);
    const empty = await cluster.run(['get', 'pods', '-n', 'other']);
    assert.equal(empty.stdout, 'No resources found in other namespace.\n');
  });

  it('get: one object as yaml or json; a list for a kind', async () => {
    const yaml = await cluster.run(['get', 'pod', 'web', '-o', 'yaml']);
    assert.match(yaml.stdout, /^apiVersion: v1\nkind: Pod\nmetadata:\n/);
    const list = JSON.parse((await cluster.run(['get', 'pods', '-o', 'json'])).stdout) as {
      kind: string;
      items: KubeObject[];
    };
    assert.equal(list.kind, 'List');
    assert.deepEqual(
      list.items.map((p) => [p.kind, p.metadata.name]),
      [['Pod', 'web']],
    );
    const selected = await cluster.run(['get', 'pods', '-l', 'app=other', '-o', 'name']);
    assert.equal(selected.stdout, '');
  });

  it('get: kind/name form, and kubectl errors for what is not there', async () => {
    const both = await cluster.run(['get', 'pod/web', 'svc/web', '-o', 'name']);
    assert.equal(both.stdout, 'pod/web\nservice/web\n');
    const missing = await cluster.run(['get', 'pod', 'nope']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'Error from server (NotFound): pods "nope" not found\n');
    const kind = await cluster.run(['get', 'widgets']);
    assert.equal(kind.code, 1);
    assert.equal(kind.stderr, 'error: the server doesn\'t have a resource type "widgets"\n');
    const format = await cluster.run(['get', 'pods', '-o', 'toml']);
    assert.equal(format.code, 2);
  });

  it('describe pod: kubectl describe layout', async () => {
    const run = await cluster.run(['describe', 'pod', 'web']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(
      steady(run.stdout),
      lines(
        'Name:         web',
        'Namespace:    default',
        'Node:         node-1/172.31.0.11',
        'Labels:       app=web',
        'Annotations:  <none>',
        'Status:       Running',
        'IP:           10.244.0.5',
        'IPs:',
        '  IP:  10.244.0.5',
        'Containers:',
        '  web:',
        '    Image:  node',
        '    Port:   8080/TCP',
        '    Command:',
        '      node',
        '      server.mjs',
        '    State:          Running',
        '      Started:      TIME',
        '    Ready:          True',
        '    Restart Count:  0',
        '    Environment:',
        '      ROLE:  web',
        'Conditions:',
        // Go's tabwriter aligns the block from "  Type" to "Events:" as one column.
        '  Type   Status',
        '  ----   ------',
        '  Ready  True',
        'Events:  <none>',
      ),
    );
  });

  it('describe service: its endpoints come from the EndpointSlices', async () => {
    const slices = resourceForKind('discovery.k8s.io/v1', 'EndpointSlice');
    if (!slices) throw new Error('no EndpointSlice');
    await client.create({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: 'web-abc',
        namespace: 'default',
        labels: { 'kubernetes.io/service-name': 'web' },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.244.0.5'], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    });
    const run = await cluster.run(['describe', 'svc/web']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Name: +web\nNamespace: +default\n/);
    assert.match(
      run.stdout,
      /\nPort: +http {2}80\/TCP\nTargetPort: +8080\/TCP\nEndpoints: +10\.244\.0\.5:8080\n/,
    );
    assert.doesNotMatch(run.stdout, /last-applied/);
  });

  it('describe: other kinds get the generic layout; a missing object is an error', async () => {
    const ns = await cluster.run(['describe', 'namespace', 'other']);
    assert.equal(
      ns.stdout,
      lines(
        'Name:         other',
        'Labels:       kubernetes.io/metadata.name=other',
        'Annotations:  <none>',
        'Status:       Active',
        '',
        'No resource quota.',
        '',
        'No LimitRange resource.',
      ),
    );
    const missing = await cluster.run(['describe', 'pod', 'nope']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'Error from server (NotFound): pods "nope" not found\n');
  });

  it('logs: the file the agent writes for the container, --tail lines of it', async () => {
    const dir = join(cluster.stateDir, 'nodes', 'node-1', 'pods', podUid);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'web.log'), 'one\ntwo\nthree\n');
    assert.equal((await cluster.run(['logs', 'web'])).stdout, 'one\ntwo\nthree\n');
    assert.equal((await cluster.run(['logs', 'pod/web', '--tail', '2'])).stdout, 'two\nthree\n');
    const wrong = await cluster.run(['logs', 'web', '-c', 'sidecar']);
    assert.equal(wrong.code, 1);
    assert.equal(
      wrong.stderr,
      'error: container sidecar is not valid for pod web: choose one of web\n',
    );
  });

  it('delete: by name and from manifests, kubectl lines; NotFound is an error unless ignored', async () => {
    const svc = await cluster.run(['delete', 'service', 'web']);
    assert.equal(svc.stdout, 'service "web" deleted\n');
    const again = await cluster.run(['delete', 'service', 'web']);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, 'Error from server (NotFound): services "web" not found\n');
    const ignored = await cluster.run(['delete', 'service', 'web', '--ignore-not-found']);
    assert.deepEqual([ignored.code, ignored.stdout, ignored.stderr], [0, '', '']);
    const file = join(cluster.stateDir, 'ns.yaml');
    writeFileSync(file, 'apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n');
    const fromFile = await cluster.run(['delete', '-f', file]);
    assert.equal(fromFile.stdout, 'namespace "other" deleted\n');
  });

  it('a cluster that is not up is one clear line', async () => {
    const run = await strata([
      'get',
      'pods',
      '--name',
      'nothere',
      '--state-dir',
      '/nonexistent/strata',
    ]);
    assert.equal(run.code, 1);
    assert.equal(
      run.stderr,
      'error: no cluster "nothere" is up (/nonexistent/strata/api.sock does not exist): start one with "strata up --name nothere --state-dir /nonexistent/strata"\n',
    );
  });
});

describe('the dispatcher', () => {
  it('exits 2 with usage for an unknown command or flag', async () => {
    const unknown = await strata(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^strata: unknown command "frobnicate"\n\nstrata — /);
    const flag = await strata(['get', 'pods', '--bogus']);
    assert.equal(flag.code, 2);
    assert.equal(
      flag.stderr,
      'error: strata get: Unknown option \'--bogus\'\nSee "strata help" for usage.\n',
    );
  });

  it('lists every command in help', async () => {
    const help = await strata(['help']);
    for (const command of [
      'up',
      'down',
      'status',
      'apply',
      'delete',
      'get',
      'describe',
      'logs',
      'exec',
      'version',
    ]) {
      assert.match(help.stdout, new RegExp(`\\n {2}${command} `), command);
    }
    assert.doesNotMatch(help.stdout, /apiserver|agent /, 'components are not user commands');
  });

  it('prints errors as one line with their causes, kubectl-style for the server', () => {
    const cause = new Error('EACCES: permission denied');
    assert.equal(
      errorLine(new Error('cannot read x', { cause })),
      'error: cannot read x: EACCES: permission denied',
    );
    const refused = Object.assign(new Error('connect ECONNREFUSED /s/api.sock'), {
      code: 'ECONNREFUSED',
      address: '/s/api.sock',
    });
    assert.equal(
      errorLine(refused),
      'error: the API server is not answering on /s/api.sock: is the cluster up? (strata status)',
    );
  });

  it('lastLines keeps the last n lines', () => {
    assert.equal(lastLines('a\nb\nc\n', 2), 'b\nc\n');
    assert.equal(lastLines('a\nb\nc', 1), 'c');
    assert.equal(lastLines('a\nb\n', -1), 'a\nb\n');
    assert.equal(lastLines('a\nb\n', 0), '');
  });
});
