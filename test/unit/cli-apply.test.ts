// `strata apply`: kubectl's client-side apply. The three-way patch (apply-patch.ts)
// case by case, then the command against a real API server: validation before
// anything is sent, and kubectl's created / configured / unchanged lines.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../../src/api/types.js';
import {
  appliedConfiguration,
  applyPatch,
  lastAppliedAnnotation,
  withLastApplied,
} from '../../src/cli/apply-patch.js';
import { TestCluster } from '../support/cli.js';

function deployment(
  spec: Record<string, unknown>,
  metadata: Partial<KubeObject['metadata']> = {},
): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', ...metadata },
    spec,
  };
}

/** The object as the server keeps it after an apply of `config`, with defaults of its own. */
function stored(config: KubeObject, defaults: Record<string, unknown> = {}): KubeObject {
  const object = withLastApplied(config);
  return {
    ...object,
    metadata: { ...object.metadata, namespace: 'default', uid: 'u1', resourceVersion: '7' },
    spec: { ...defaults, ...object.spec },
    status: { replicas: 2 },
  };
}

describe('appliedConfiguration', () => {
  it("drops the server's fields and status, and any recorded configuration", () => {
    const manifest = deployment(
      { replicas: 1 },
      {
        uid: 'x',
        resourceVersion: '3',
        creationTimestamp: '2026-01-01T00:00:00Z',
        generation: 2,
        annotations: { [lastAppliedAnnotation]: '{}', team: 'a' },
      },
    );
    manifest.status = { replicas: 1 };
    assert.deepEqual(appliedConfiguration(manifest), {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', annotations: { team: 'a' } },
      spec: { replicas: 1 },
    });
  });

  it('records the configuration in the annotation kubectl uses', () => {
    const config = deployment({ replicas: 1 });
    const object = withLastApplied(config);
    assert.equal(object.metadata.annotations?.[lastAppliedAnnotation], JSON.stringify(config));
    assert.equal(config.metadata.annotations, undefined, 'the configuration itself is not changed');
  });
});

describe('applyPatch', () => {
  const template = { containers: [{ name: 'web', image: 'node', command: ['node', 'a.mjs'] }] };

  it('is nothing to send when the object is as applied, whatever the server added', () => {
    const config = deployment({ replicas: 2, template });
    const current = stored(config, {
      strategy: { type: 'RollingUpdate' },
      revisionHistoryLimit: 10,
    });
    const spec = current.spec as { template: { containers: Record<string, unknown>[] } };
    spec.template = structuredClone(template);
    Object.assign(spec.template.containers[0] ?? {}, { imagePullPolicy: 'Always' });
    assert.equal(applyPatch(current, config), undefined);
  });

  it('sets a changed field and the new recorded configuration', () => {
    const before = deployment({ replicas: 2, template });
    const config = deployment({ replicas: 3, template });
    assert.deepEqual(applyPatch(stored(before), config), {
      metadata: { annotations: { [lastAppliedAnnotation]: JSON.stringify(config) } },
      spec: { replicas: 3 },
    });
  });

  it('deletes a field the last apply set and this one dropped', () => {
    const before = deployment({ replicas: 2, paused: true, template });
    const config = deployment({ replicas: 2, template });
    const patch = applyPatch(stored(before), config);
    assert.deepEqual(patch?.spec, { paused: null });
  });

  it('keeps fields others set that no apply ever named', () => {
    const config = deployment({ replicas: 2 });
    const current = stored(config);
    (current.spec as Record<string, unknown>).paused = true;
    assert.equal(applyPatch(current, config), undefined);
  });

  it('replaces a list whose item lost a field, though the current list contains the new one', () => {
    const before = deployment({ template });
    const trimmed = { containers: [{ name: 'web', image: 'node' }] };
    const config = deployment({ template: trimmed });
    assert.deepEqual(applyPatch(stored(before), config)?.spec, { template: trimmed });
  });

  it('sets what someone else changed back to the manifest', () => {
    const config = deployment({ replicas: 2 });
    const current = stored(config);
    (current.spec as Record<string, unknown>).replicas = 5;
    assert.deepEqual(applyPatch(current, config)?.spec, { replicas: 2 });
  });

  it('patches an object that was never applied without deleting anything', () => {
    const config = deployment({ replicas: 2 });
    const current: KubeObject = { ...deployment({ replicas: 2, paused: false }), status: {} };
    assert.deepEqual(applyPatch(current, config), {
      metadata: { annotations: { [lastAppliedAnnotation]: JSON.stringify(config) } },
    });
  });
});

const manifests = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: node
          command: [node, server.mjs]
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
`;

describe('strata apply', () => {
  let cluster: TestCluster;
  let file: string;
  before(async () => {
    cluster = await TestCluster.start();
    file = join(cluster.stateDir, 'shop.yaml');
    writeFileSync(file, manifests);
  });
  after(async () => {
    await cluster.stop();
  });

  it('creates every object, printing kubectl lines', async () => {
    const run = await cluster.run(['apply', '-f', file]);
    assert.equal(run.stderr, '');
    assert.equal(run.code, 0);
    assert.equal(
      run.stdout,
      'namespace/shop created\ndeployment.apps/web created\nservice/web created\n',
    );
  });

  it('leaves them unchanged when applied again', async () => {
    const run = await cluster.run(['apply', '-f', file]);
    assert.equal(run.code, 0);
    assert.equal(
      run.stdout,
      'namespace/shop unchanged\ndeployment.apps/web unchanged\nservice/web unchanged\n',
    );
  });

  it('configures what changed, and only that', async () => {
    writeFileSync(file, manifests.replace('replicas: 2', 'replicas: 4'));
    const run = await cluster.run(['apply', '-f', file]);
    assert.equal(
      run.stdout,
      'namespace/shop unchanged\ndeployment.apps/web configured\nservice/web unchanged\n',
    );
    const get = await cluster.run(['get', 'deployment', 'web', '-n', 'shop', '-o', 'json']);
    const stored = JSON.parse(get.stdout) as KubeObject;
    assert.equal(stored.spec?.replicas, 4);
    assert.equal(stored.metadata.generation, 2);
  });

  it('reads manifests from stdin with -f -', async () => {
    const pod =
      'apiVersion: v1\nkind: Pod\nmetadata: {name: solo}\nspec:\n  containers: [{name: c, image: busybox, command: [sleep, "60"]}]\n';
    const run = await cluster.run(['apply', '-f', '-'], pod);
    assert.equal(run.stdout, 'pod/solo created\n');
  });

  it('rejects bad manifests with file, document, object and field, and applies none of them', async () => {
    const bad = join(cluster.stateDir, 'bad.yaml');
    writeFileSync(
      bad,
      `apiVersion: v1
kind: ConfigMap
metadata: {name: fresh}
---
apiVersion: v1
kind: Service
metadata: {name: fresh, namespace: shop}
spec:
  ports: [{port: 70000, targetPort: 8080}]
---
apiVersion: v1
kind: Namespace
metadata: {name: fresh}
`,
    );
    const run = await cluster.run(['apply', '-f', bad]);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    const lines = run.stderr.trimEnd().split('\n');
    assert.match(
      lines[0] ?? '',
      new RegExp(`^error: ${bad} document 1 \\(ConfigMap fresh\\): kind: .*ConfigMap`),
    );
    assert.match(
      lines[1] ?? '',
      new RegExp(
        `^error: ${bad} document 2 \\(Service shop/fresh\\): spec\\.ports\\[0\\]\\.port: Invalid value: 70000`,
      ),
    );
    assert.equal(lines.at(-1), 'error: 2 problems found; nothing was applied');
    // The valid Namespace in the same file was not created either.
    const get = await cluster.run(['get', 'namespace', 'fresh']);
    assert.equal(get.code, 1);
    assert.equal(get.stderr, 'Error from server (NotFound): namespaces "fresh" not found\n');
  });

  it('reports a missing path and a missing -f as errors', async () => {
    const missing = await cluster.run(['apply', '-f', '/nonexistent/x.yaml']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'error: the path "/nonexistent/x.yaml" does not exist\n');
    const usage = await cluster.run(['apply']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /-f is required/);
  });

  it('prints the server error for an object it refuses, and goes on with the rest', async () => {
    const run = await cluster.run(
      ['apply', '-f', '-'],
      `apiVersion: v1
kind: Service
metadata: {name: lost, namespace: nowhere}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Namespace
metadata: {name: later}
`,
    );
    assert.equal(run.code, 1);
    assert.equal(run.stdout, 'namespace/later created\n');
    assert.match(
      run.stderr,
      /^Error from server \(NotFound\): error when applying "STDIN": namespaces "nowhere" not found\n$/,
    );
  });
});
