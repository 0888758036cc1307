// How a pod becomes the workload and canonical service of Istio's metrics
// (src/mesh/telemetry/workload-labels.ts): istiod's rules for ztunnel, one
// case per rule, checked against the names upstream derives.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject, OwnerReference } from '../../src/api/types.js';
import { workloadLabels, type WorkloadLabels } from '../../src/mesh/telemetry/workload-labels.js';

interface PodShape {
  name: string;
  generateName?: string;
  labels?: Record<string, string>;
  owner?: Pick<OwnerReference, 'kind' | 'name'> & { controller?: boolean };
}

function pod(shape: PodShape): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: shape.name,
      namespace: 'shop',
      ...(shape.generateName === undefined ? {} : { generateName: shape.generateName }),
      ...(shape.labels === undefined ? {} : { labels: shape.labels }),
      ...(shape.owner === undefined
        ? {}
        : {
            ownerReferences: [
              {
                apiVersion: 'apps/v1',
                uid: 'c0ffee',
                controller: true,
                ...shape.owner,
              },
            ],
          }),
    },
  };
}

const cases: {
  name: string;
  pod: PodShape;
  want: Pick<WorkloadLabels, 'workload' | 'canonicalService' | 'canonicalRevision'>;
}[] = [
  {
    name: 'a bare pod is its own workload, revision "latest"',
    pod: { name: 'debug' },
    want: { workload: 'debug', canonicalService: 'debug', canonicalRevision: 'latest' },
  },
  {
    name: 'a ReplicaSet named <deployment>-<pod-template-hash> stands for its Deployment',
    pod: {
      name: 'reviews-v2-5b9f6d9c7b-x7k2p',
      generateName: 'reviews-v2-5b9f6d9c7b-',
      labels: { 'pod-template-hash': '5b9f6d9c7b' },
      owner: { kind: 'ReplicaSet', name: 'reviews-v2-5b9f6d9c7b' },
    },
    want: { workload: 'reviews-v2', canonicalService: 'reviews-v2', canonicalRevision: 'latest' },
  },
  {
    name: "strata's Deployment owns its pods directly: its name is the workload",
    pod: {
      name: 'web-7f4669bdd9-dg7vn',
      generateName: 'web-7f4669bdd9-',
      labels: { 'pod-template-hash': '7f4669bdd9' },
      owner: { kind: 'Deployment', name: 'web' },
    },
    want: { workload: 'web', canonicalService: 'web', canonicalRevision: 'latest' },
  },
  {
    name: 'a ReplicaSet without the hash suffix keeps its own name',
    pod: {
      name: 'cache-q2w3e',
      generateName: 'cache-',
      labels: { 'pod-template-hash': '5b9f6d9c7b' },
      owner: { kind: 'ReplicaSet', name: 'cache' },
    },
    want: { workload: 'cache', canonicalService: 'cache', canonicalRevision: 'latest' },
  },
  {
    name: "an Argo Rollout's ReplicaSet stands for the Rollout",
    pod: {
      name: 'canary-6d8f9b7c5-abcde',
      generateName: 'canary-6d8f9b7c5-',
      labels: { 'rollouts-pod-template-hash': '6d8f9b7c5' },
      owner: { kind: 'ReplicaSet', name: 'canary-6d8f9b7c5' },
    },
    want: { workload: 'canary', canonicalService: 'canary', canonicalRevision: 'latest' },
  },
  {
    name: "a DeploymentConfig's ReplicationController stands for the DeploymentConfig",
    pod: {
      name: 'legacy-3-zx9yq',
      generateName: 'legacy-3-',
      labels: { deploymentconfig: 'legacy' },
      owner: { kind: 'ReplicationController', name: 'legacy-3' },
    },
    want: { workload: 'legacy', canonicalService: 'legacy', canonicalRevision: 'latest' },
  },
  {
    name: "a CronJob's Job (<cronjob>-<8 to 10 digits>) stands for the CronJob",
    pod: {
      name: 'nightly-28421760-m5n6b',
      generateName: 'nightly-28421760-',
      owner: { kind: 'Job', name: 'nightly-28421760' },
    },
    want: { workload: 'nightly', canonicalService: 'nightly', canonicalRevision: 'latest' },
  },
  {
    name: 'a Job with no timestamp suffix is its own workload',
    pod: {
      name: 'migrate-db-8h7g6',
      generateName: 'migrate-db-',
      owner: { kind: 'Job', name: 'migrate-db' },
    },
    want: { workload: 'migrate-db', canonicalService: 'migrate-db', canonicalRevision: 'latest' },
  },
  {
    name: 'a StatefulSet pod takes the StatefulSet name',
    pod: {
      name: 'db-0',
      generateName: 'db-',
      owner: { kind: 'StatefulSet', name: 'db' },
    },
    want: { workload: 'db', canonicalService: 'db', canonicalRevision: 'latest' },
  },
  {
    name: 'owners are not looked at when the pod name was not generated',
    pod: { name: 'db-0', owner: { kind: 'StatefulSet', name: 'db' } },
    want: { workload: 'db-0', canonicalService: 'db-0', canonicalRevision: 'latest' },
  },
  {
    name: 'only the controller owner counts',
    pod: {
      name: 'web-abcde',
      generateName: 'web-',
      owner: { kind: 'Deployment', name: 'web', controller: false },
    },
    want: { workload: 'web-abcde', canonicalService: 'web-abcde', canonicalRevision: 'latest' },
  },
  {
    name: 'service.istio.io/workload-name overrides the heuristic',
    pod: {
      name: 'web-7f4669bdd9-dg7vn',
      generateName: 'web-7f4669bdd9-',
      labels: { 'service.istio.io/workload-name': 'storefront' },
      owner: { kind: 'Deployment', name: 'web' },
    },
    want: { workload: 'storefront', canonicalService: 'storefront', canonicalRevision: 'latest' },
  },
  {
    name: 'the canonical name is service.istio.io/canonical-name first',
    pod: {
      name: 'p',
      labels: {
        'service.istio.io/canonical-name': 'checkout',
        'app.kubernetes.io/name': 'checkout-k8s',
        app: 'checkout-app',
      },
    },
    want: { workload: 'p', canonicalService: 'checkout', canonicalRevision: 'latest' },
  },
  {
    name: 'then app.kubernetes.io/name, before app',
    pod: { name: 'p', labels: { 'app.kubernetes.io/name': 'checkout-k8s', app: 'checkout-app' } },
    want: { workload: 'p', canonicalService: 'checkout-k8s', canonicalRevision: 'latest' },
  },
  {
    name: 'then app',
    pod: { name: 'p', labels: { app: 'checkout-app' } },
    want: { workload: 'p', canonicalService: 'checkout-app', canonicalRevision: 'latest' },
  },
  {
    name: 'the canonical revision is service.istio.io/canonical-revision first',
    pod: {
      name: 'p',
      labels: {
        'service.istio.io/canonical-revision': 'r3',
        'app.kubernetes.io/version': '1.2.0',
        version: 'v1',
      },
    },
    want: { workload: 'p', canonicalService: 'p', canonicalRevision: 'r3' },
  },
  {
    name: 'then app.kubernetes.io/version, before version',
    pod: { name: 'p', labels: { 'app.kubernetes.io/version': '1.2.0', version: 'v1' } },
    want: { workload: 'p', canonicalService: 'p', canonicalRevision: '1.2.0' },
  },
  {
    name: 'then version',
    pod: { name: 'p', labels: { version: 'v1' } },
    want: { workload: 'p', canonicalService: 'p', canonicalRevision: 'v1' },
  },
  {
    name: 'a present but empty label still wins (upstream looks labels up by presence)',
    pod: { name: 'p', labels: { 'app.kubernetes.io/name': '', app: 'checkout-app' } },
    want: { workload: 'p', canonicalService: '', canonicalRevision: 'latest' },
  },
  {
    name: 'bookinfo: reviews-v2 with app and version labels',
    pod: {
      name: 'reviews-v2-5b9f6d9c7b-x7k2p',
      generateName: 'reviews-v2-5b9f6d9c7b-',
      labels: { app: 'reviews', version: 'v2', 'pod-template-hash': '5b9f6d9c7b' },
      owner: { kind: 'ReplicaSet', name: 'reviews-v2-5b9f6d9c7b' },
    },
    want: { workload: 'reviews-v2', canonicalService: 'reviews', canonicalRevision: 'v2' },
  },
];

describe('workloadLabels', () => {
  for (const c of cases) {
    it(c.name, () => {
      const labels = workloadLabels(pod(c.pod));
      assert.deepEqual(labels, { pod: c.pod.name, namespace: 'shop', ...c.want });
    });
  }
});
