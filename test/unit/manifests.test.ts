// Manifests read as `kubectl apply -f` reads them (cli-runtime's resource
// builder: files, directories, stdin, YAML streams, JSON streams, Lists),
// and every problem the server would report, named by file, document,
// object and field before anything is sent.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resourceForKind } from '../../src/api/registry.js';
import type { FieldError, KubeObject, ResourceType } from '../../src/api/types.js';
import { validateObjectEnvelope } from '../../src/api/validation/meta.js';
import {
  type LoadedManifest,
  type ValidateOptions,
  ManifestSourceError,
  formatProblem,
  loadManifests,
  parseFieldPath,
  parseManifests,
  validateManifests,
} from '../../src/cli/manifests.js';

let dir = '';

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-manifests-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * The served kinds with only the checks every kind shares (meta.ts): exact
 * expectations here stay about this module, whatever the kinds' own rules
 * in src/api/validation/ come to report. The real rules get their own tests.
 */
const envelopeOnly: ValidateOptions = {
  resourceForKind(apiVersion, kind) {
    const resource = resourceForKind(apiVersion, kind);
    return (
      resource && {
        ...resource,
        applyDefaults: () => undefined,
        validate: (object) => validateObjectEnvelope(resource, object),
      }
    );
  },
};

/** The formatted problems of a text, as the CLI prints them. */
function problems(file: string, text: string, options: ValidateOptions = envelopeOnly): string[] {
  return validateManifests(parseManifests(file, text), options).map(formatProblem);
}

function summary(manifests: LoadedManifest[]) {
  return manifests.map(({ file, document, listItem, line, object }) => ({
    file,
    document,
    ...(listItem === undefined ? {} : { listItem }),
    line,
    name: (object as KubeObject).metadata.name,
  }));
}

const policies = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web
spec:
  podSelector: {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
spec:
  podSelector: {}
  ingress:
  - ports:
    - port: 70000
`;

const podYaml = (name: string) => `apiVersion: v1
kind: Pod
metadata:
  name: ${name}
spec:
  containers:
  - name: web
    image: web
`;

describe('loadManifests', () => {
  it('reads every document of a multi-document YAML file, skipping empty ones as kubectl does', () => {
    const file = write(
      'stream.yaml',
      `# leading comment\n---\n${podYaml('a')}---\n# only a comment\n---\n${podYaml('b')}---\n`,
    );
    assert.deepEqual(summary(loadManifests(file)), [
      { file, document: 1, line: 3, name: 'a' },
      // document 2 is the comment-only one; numbers follow the file, not the survivors
      { file, document: 3, line: 14, name: 'b' },
    ]);
  });

  it('reads a JSON object, and a stream of concatenated JSON objects (`jq .items[]` output)', () => {
    const single = write(
      'pod.json',
      JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'j' } }, null, 2),
    );
    assert.deepEqual(summary(loadManifests(single)), [
      { file: single, document: 1, line: 1, name: 'j' },
    ]);

    const stream = write(
      'stream.json',
      '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x{\\"}"}}\n' +
        '{\n\t"apiVersion": "v1",\n\t"kind": "Pod",\n\t"metadata": {"name": "y"}\n}\n',
    );
    const loaded = loadManifests(stream);
    assert.deepEqual(summary(loaded), [
      { file: stream, document: 1, line: 1, name: 'x{"}' },
      { file: stream, document: 2, line: 2, name: 'y' },
    ]);
    assert.equal(loaded[1]?.lineOf('metadata.name'), 5);
  });

  it('reads a directory’s .json/.yaml/.yml files in name order, subdirectories only with recursive', () => {
    const root = join(dir, 'tree');
    mkdirSync(join(root, 'b-sub'), { recursive: true });
    writeFileSync(join(root, 'c.yml'), podYaml('c'));
    writeFileSync(join(root, 'a.yaml'), podYaml('a'));
    writeFileSync(
      join(root, 'b.json'),
      JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'b' } }),
    );
    writeFileSync(join(root, 'notes.txt'), 'not a manifest');
    writeFileSync(join(root, 'upper.YAML'), podYaml('upper')); // kubectl matches extensions case-sensitively
    writeFileSync(join(root, 'b-sub', 'd.yaml'), podYaml('d'));

    const names = (manifests: LoadedManifest[]) =>
      manifests.map((m) => [m.file, (m.object as KubeObject).metadata.name]);
    assert.deepEqual(names(loadManifests(root)), [
      [join(root, 'a.yaml'), 'a'],
      [join(root, 'b.json'), 'b'],
      [join(root, 'c.yml'), 'c'],
    ]);
    assert.deepEqual(names(loadManifests(root, undefined, { recursive: true })), [
      [join(root, 'a.yaml'), 'a'],
      [join(root, 'b-sub', 'd.yaml'), 'd'],
      [join(root, 'b.json'), 'b'],
      [join(root, 'c.yml'), 'c'],
    ]);
    // A file named on the command line is read whatever its extension.
    const txt = write('pod.txt', podYaml('t'));
    assert.deepEqual(names(loadManifests(txt)), [[txt, 't']]);
  });

  it('reads stdin for "-", named STDIN', () => {
    let reads = 0;
    const loaded = loadManifests('-', () => {
      reads++;
      return podYaml('from-stdin');
    });
    assert.equal(reads, 1);
    assert.deepEqual(summary(loaded), [
      { file: 'STDIN', document: 1, line: 1, name: 'from-stdin' },
    ]);
  });

  it('expands a List into its items, each knowing where it sat', () => {
    const file = write(
      'list.yaml',
      `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata:
    name: web
- apiVersion: v1
  kind: List
  items:
  - apiVersion: v1
    kind: Pod
    metadata:
      name: nested
---
apiVersion: v1
kind: List
items: []
`,
    );
    assert.deepEqual(summary(loadManifests(file)), [
      { file, document: 1, listItem: 'items[0]', line: 4, name: 'web' },
      { file, document: 1, listItem: 'items[1].items[0]', line: 11, name: 'nested' },
    ]);
  });

  it('reads YAML 1.1 scalars as go-yaml v2 does, timestamps staying strings', () => {
    const [manifest] = parseManifests(
      'scalars.yaml',
      'a: yes\nb: on\nc: 0644\nd: 2024-01-01T00:00:00Z\ne: 1:20\nf: "yes"\ng: ~\n',
    );
    assert.deepEqual(manifest?.object, {
      a: true,
      b: true,
      c: 420,
      d: '2024-01-01T00:00:00Z',
      e: '1:20',
      f: 'yes',
      g: null,
    });
  });

  it('gives a field’s line, or its nearest ancestor’s', () => {
    const [manifest] = parseManifests(
      'p.yaml',
      'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels:\n    app.kubernetes.io/name: web\nspec:\n  containers:\n  - name: a\n  - name: b\n    ports:\n    - containerPort: 80\n',
    );
    assert.ok(manifest);
    assert.equal(manifest.lineOf('metadata.labels[app.kubernetes.io/name]'), 6);
    assert.equal(manifest.lineOf('spec.containers[1].ports[0].containerPort'), 12);
    assert.equal(manifest.lineOf('spec.containers[1].image'), 10); // absent: its container
    assert.equal(manifest.lineOf('status.podIP'), 1); // absent: the document
    assert.deepEqual(parseFieldPath('spec.ingress[0].ports[1].port'), [
      'spec',
      'ingress',
      0,
      'ports',
      1,
      'port',
    ]);
  });

  it('fails on a path that does not exist, before reading anything', () => {
    const missing = join(dir, 'nope.yaml');
    assert.throws(
      () => loadManifests(missing),
      (error: unknown) =>
        error instanceof ManifestSourceError &&
        error.code === 'STRATA_ERR_MANIFEST_SOURCE' &&
        error.message === `the path "${missing}" does not exist`,
    );
  });
});

describe('validateManifests', () => {
  it('reports a YAML syntax error with its line, and still checks the other documents', () => {
    const text = `${podYaml('ok')}---
apiVersion: v1
kind: Pod
metadata:
  name: dup
  name: again
---
apiVersion: v1
kind: Pod
metadata: {}
`;
    const found = validateManifests(parseManifests('broken.yaml', text), envelopeOnly);
    assert.deepEqual(found.map(formatProblem), [
      'error: broken.yaml document 2: yaml: line 14, column 3: Map keys must be unique',
      'error: broken.yaml document 3 (Pod default/<no name>): metadata.name: Required value: name or generateName is required',
    ]);
    assert.equal(found[0]?.line, 14);
    assert.equal(found[0]?.reason, 'SyntaxError');
    assert.equal(found[1]?.line, 18); // metadata.name is absent: the line of metadata
  });

  it('reports a JSON syntax error with its line', () => {
    const found = validateManifests(
      parseManifests('bad.json', '{\n  "apiVersion": "v1",\n  "kind": "Pod",\n}\n'),
    );
    assert.equal(found.length, 1);
    assert.equal(found[0]?.reason, 'SyntaxError');
    assert.equal(found[0]?.line, 4);
    assert.match(
      formatProblem(found[0] ?? assert.fail()),
      /^error: bad\.json document 1: json: line 4, column 1: \S/,
    );
  });

  it('reports documents that are not objects', () => {
    assert.deepEqual(problems('x.yaml', '- a\n- b\n---\njust text\n'), [
      'error: x.yaml document 1: a manifest is an object with apiVersion, kind and metadata, not a list',
      'error: x.yaml document 2: a manifest is an object with apiVersion, kind and metadata, not a string ("just text")',
    ]);
  });

  it('reports a missing or mistyped apiVersion and kind', () => {
    const text = 'metadata:\n  name: x\n---\napiVersion: 1\nkind: Pod\nmetadata:\n  name: x2\n';
    assert.deepEqual(problems('m.yaml', text), [
      'error: m.yaml document 1: apiVersion: Required value: every manifest sets apiVersion, for example "v1" or "apps/v1"',
      'error: m.yaml document 1: kind: Required value: every manifest sets kind, for example "Pod" or "NetworkPolicy"',
      'error: m.yaml document 2 (Pod x2): apiVersion: Invalid value: 1: must be a string',
    ]);
  });

  it('reports a kind strata does not serve, saying what it does serve', () => {
    const docs = [
      'apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n  name: reviews\n',
      'apiVersion: v1\nkind: pod\nmetadata:\n  name: lower\n',
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n',
      'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: shop\n',
    ];
    const found = validateManifests(parseManifests('kinds.yaml', docs.join('---\n')));
    assert.deepEqual(found.map(formatProblem).slice(0, 3), [
      'error: kinds.yaml document 1 (VirtualService reviews): kind: no kind "VirtualService" is served in version "networking.istio.io/v1alpha3"; strata serves VirtualService as networking.istio.io/v1',
      'error: kinds.yaml document 2 (pod lower): kind: no kind "pod" is served in version "v1"; did you mean Pod?',
      'error: kinds.yaml document 3 (ConfigMap settings): kind: no kind "ConfigMap" is served in version "v1"; strata serves v1 Namespace, Node, Pod, Service',
    ]);
    assert.match(
      formatProblem(found[3] ?? assert.fail()),
      /^error: kinds\.yaml document 4 \(Widget shop\/w\): kind: no kind "Widget" is served in version "example\.com\/v1"; strata serves v1: Namespace, Node, Pod, Service; .*apps\/v1: Deployment; .*networking\.k8s\.io\/v1: NetworkPolicy/,
    );
    assert.deepEqual(
      found.map((p) => [p.reason, p.field, p.line]),
      [
        ['UnknownKind', 'kind', 2],
        ['UnknownKind', 'kind', 7],
        ['UnknownKind', 'kind', 12],
        ['UnknownKind', 'kind', 17],
      ],
    );
  });

  it('reports metadata fields that do not exist, suggesting the one meant', () => {
    const text =
      'apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  lables:\n    app: web\n  namespce: shop\n  owner: me\n';
    const found = validateManifests(parseManifests('typo.yaml', text), envelopeOnly);
    assert.deepEqual(found.map(formatProblem), [
      'error: typo.yaml document 1 (Service default/web): metadata.lables: Forbidden: unknown field; did you mean "labels"?',
      'error: typo.yaml document 1 (Service default/web): metadata.namespce: Forbidden: unknown field; did you mean "namespace"?',
      'error: typo.yaml document 1 (Service default/web): metadata.owner: Forbidden: unknown field',
    ]);
    assert.deepEqual(
      found.map((p) => p.line),
      [5, 7, 8],
    );
  });

  it('reports metadata values of the wrong type as the server’s decoder would, once per field', () => {
    const text = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: 123
  labels:
    version: 1.0
    enabled: yes
  annotations: note
  finalizers: [a, 2]
  generation: 1.5
  ownerReferences:
  - {apiVersion: v1, kind: Pod, name: p, uid: u, controller: "true"}
`;
    const object = '(Deployment default/<no name>)';
    assert.deepEqual(problems('types.yaml', text), [
      `error: types.yaml document 1 ${object}: metadata.name: Invalid value: 123: must be a string (quote it)`,
      `error: types.yaml document 1 ${object}: metadata.labels[version]: Invalid value: 1: must be a string (quote it)`,
      `error: types.yaml document 1 ${object}: metadata.labels[enabled]: Invalid value: true: must be a string (quote it)`,
      `error: types.yaml document 1 ${object}: metadata.annotations: Invalid value: "note": must be a map of strings`,
      `error: types.yaml document 1 ${object}: metadata.finalizers[1]: Invalid value: 2: must be a string (quote it)`,
      `error: types.yaml document 1 ${object}: metadata.generation: Invalid value: 1.5: must be an integer`,
      `error: types.yaml document 1 ${object}: metadata.ownerReferences[0].controller: Invalid value: "true": must be a boolean`,
    ]);
  });

  it('reports a missing name and bad labels through the kinds’ shared validation', () => {
    const text = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  namespace: prod
  labels:
    app: -web-
    bad key: x
spec:
  podSelector: {}
---
apiVersion: v1
kind: Namespace
metadata:
  name: Team_A
  namespace: default
`;
    assert.deepEqual(problems('meta.yaml', text), [
      'error: meta.yaml document 1 (NetworkPolicy prod/<no name>): metadata.name: Required value: name or generateName is required',
      'error: meta.yaml document 1 (NetworkPolicy prod/<no name>): metadata.labels[app]: Invalid value: "-web-": a label value must be at most 63 alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric',
      'error: meta.yaml document 1 (NetworkPolicy prod/<no name>): metadata.labels: Invalid value: "bad key": a key must be a qualified name: an optional DNS subdomain prefix and "/", then at most 63 alphanumerics, "-", "_" or "."',
      'error: meta.yaml document 2 (Namespace default/Team_A): metadata.name: Invalid value: "Team_A": a lowercase RFC 1123 subdomain must consist of lower case alphanumerics, "-" or ".", and start and end with an alphanumeric',
      'error: meta.yaml document 2 (Namespace default/Team_A): metadata.namespace: Forbidden: Namespace is not namespaced',
    ]);
  });

  describe('with a kind’s own rules', () => {
    const networkPolicy = resourceForKind('networking.k8s.io/v1', 'NetworkPolicy') ?? assert.fail();
    const seen: KubeObject[] = [];
    // Stand-in rules shaped like upstream's: policyTypes defaulted, then ports checked.
    const withRules: ResourceType = {
      ...networkPolicy,
      applyDefaults(object) {
        object.spec = { policyTypes: ['Ingress'], ...object.spec };
      },
      validate(object) {
        seen.push(object);
        const errors: FieldError[] = validateObjectEnvelope(withRules, object);
        const ingress = (object.spec?.ingress ?? []) as { ports?: { port?: number }[] }[];
        ingress.forEach((rule, i) => {
          (rule.ports ?? []).forEach((port, j) => {
            if (port.port !== undefined && (port.port < 1 || port.port > 65535)) {
              errors.push({
                field: `spec.ingress[${i}].ports[${j}].port`,
                type: 'Invalid',
                value: port.port,
                detail: 'must be between 1 and 65535, inclusive',
              });
            }
          });
        });
        if (!Array.isArray(object.spec?.policyTypes)) {
          errors.push({ field: 'spec.policyTypes', type: 'Required', detail: 'not defaulted' });
        }
        return errors;
      },
    };
    const options: ValidateOptions = {
      resourceForKind: (apiVersion, kind) =>
        kind === 'NetworkPolicy' ? withRules : envelopeOnly.resourceForKind?.(apiVersion, kind),
    };

    it('reports its FieldErrors on a defaulted copy, leaving the manifest as written', () => {
      const manifests = parseManifests('policies.yaml', policies);
      const found = validateManifests(manifests, options);
      assert.deepEqual(found.map(formatProblem), [
        'error: policies.yaml document 2 (NetworkPolicy default/deny-all): spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive',
      ]);
      assert.equal(found[0]?.line, 16);
      assert.equal(found[0]?.reason, 'Invalid');
      assert.deepEqual(seen.at(-1)?.spec?.policyTypes, ['Ingress']);
      assert.equal((manifests[1]?.object as KubeObject).spec?.policyTypes, undefined);
    });

    it('names the List item and the namespace the object goes to', () => {
      const list = `apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata:
    name: deny-all
  spec:
    ingress:
    - ports:
      - port: 0
`;
      assert.deepEqual(problems('list.yaml', list, { ...options, namespace: 'shop' }), [
        'error: list.yaml document 1 items[0] (NetworkPolicy shop/deny-all): spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive',
      ]);
    });

    it('reports a validator that fails instead of crashing, unless a type error explains it', () => {
      const throwing: ValidateOptions = {
        resourceForKind: () => ({
          ...networkPolicy,
          validate: () => {
            throw new TypeError('rule.ports is not iterable');
          },
        }),
      };
      assert.deepEqual(problems('p.yaml', policies.split('---\n')[0] ?? '', throwing), [
        'error: p.yaml document 1 (NetworkPolicy default/allow-web): cannot validate this NetworkPolicy: rule.ports is not iterable',
      ]);
      const badLabels =
        'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: x\n  labels: [a]\n';
      assert.deepEqual(problems('p.yaml', badLabels, throwing), [
        'error: p.yaml document 1 (NetworkPolicy default/x): metadata.labels: Invalid value: ["a"]: must be a map of strings',
      ]);
    });
  });

  it('rejects an object in another namespace than the one given with -n, as kubectl does', () => {
    const text = 'apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: prod\n';
    assert.deepEqual(
      problems('svc.yaml', text, { ...envelopeOnly, namespace: 'prod', enforceNamespace: true }),
      [],
    );
    assert.deepEqual(problems('svc.yaml', text, { ...envelopeOnly, namespace: 'dev' }), []);
    assert.deepEqual(
      problems('svc.yaml', text, { ...envelopeOnly, namespace: 'dev', enforceNamespace: true }),
      [
        'error: svc.yaml document 1 (Service prod/web): metadata.namespace: the namespace from the provided object "prod" does not match the namespace "dev"; pass --namespace=prod to apply it',
      ],
    );
  });

  it('reports a List without items', () => {
    assert.deepEqual(problems('l.yaml', 'apiVersion: v1\nkind: List\n'), [
      'error: l.yaml document 1 (List <no name>): items: Required value: a List carries its objects in items',
    ]);
  });

  // The kinds' real rules (src/api/validation/): what they report is theirs to
  // test; here, that their reports reach the user placed and formatted.
  describe('against the registry’s rules', () => {
    it('finds nothing wrong with valid manifests, kubectl-generated nulls included', () => {
      const text = `${podYaml('web')}---
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
  creationTimestamp: null
spec: {}
status: {}
---
${policies}`.replace('port: 70000', 'port: 8080');
      assert.deepEqual(validateManifests(parseManifests('ok.yaml', text)).map(formatProblem), []);
    });

    it('places the kind’s own FieldErrors at their field', () => {
      const found = validateManifests(parseManifests('policies.yaml', policies));
      const port = found.find((p) => p.field === 'spec.ingress[0].ports[0].port');
      assert.ok(port, JSON.stringify(found));
      assert.equal(port.document, 2);
      assert.equal(port.line, 16);
      assert.equal(port.object, 'NetworkPolicy default/deny-all');
      assert.match(
        formatProblem(port),
        /^error: policies\.yaml document 2 \(NetworkPolicy default\/deny-all\): spec\.ingress\[0\]\.ports\[0\]\.port: Invalid value: 70000: /,
      );
    });

    it('reports unknown and mistyped fields of a kind without crashing', () => {
      const text = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
specs: {}
spec: three
`;
      const found = validateManifests(parseManifests('deploy.yaml', text));
      assert.ok(
        found.some((p) => p.field === 'specs' && p.line === 5),
        JSON.stringify(found),
      );
      assert.ok(
        found.some((p) => p.field === 'spec' && p.line === 6),
        JSON.stringify(found),
      );
      assert.ok(
        found.every((p) => p.reason !== 'ValidatorFailed'),
        JSON.stringify(found),
      );
    });
  });
});
