/**
 * A model-only NetworkPolicy workload for the benchmark: pods are IPs and
 * labels (no processes), spread over two nodes, and policies of the shapes
 * clusters really carry — default deny per namespace, app-to-app allows by
 * pod selector, namespace selectors, ipBlocks with excepts, named ports and
 * port ranges, egress to a shared namespace.
 *
 * Deterministic: the same sizes give the same objects, so runs compare.
 */
import type { PolicyInput } from '../src/policy/model.js';
import type { NetworkPolicy, PolicyNamespace, PolicyPod } from '../src/policy/types.js';

export interface WorkloadSize {
  pods: number;
  policies: number;
  namespaces: number;
  /** Node names; pods are placed at random (seeded). */
  nodes: readonly string[];
  /**
   * `typical` (default): cross-namespace rules name one namespace (shared
   * services, monitoring), as most clusters write them. `broad`: they select
   * every namespace with a label (a third of them) or all but the dev ones,
   * so each such rule's peers are hundreds of pods: the heavy case.
   */
  shape?: 'typical' | 'broad';
}

const tiers = ['web', 'api', 'db', 'cache', 'worker'];

/** A small seeded generator (mulberry32): the same workload on every run. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pod i's address: a /16 per node, as if each node had a large pod CIDR. */
function podIp(index: number, nodeIndex: number): string {
  const host = index + 2;
  return `10.${100 + nodeIndex}.${Math.floor(host / 250)}.${(host % 250) + 1}`;
}

export function policyWorkload(size: WorkloadSize): PolicyInput {
  const namespaces: PolicyNamespace[] = [];
  for (let n = 0; n < size.namespaces; n++) {
    namespaces.push({
      name: `ns-${n}`,
      labels: { team: `team-${n % 7}`, env: n % 3 === 0 ? 'prod' : 'dev' },
    });
  }
  const pods: PolicyPod[] = [];
  const random = mulberry32(42);
  for (let i = 0; i < size.pods; i++) {
    const nodeIndex = Math.floor(random() * size.nodes.length);
    const namespace = `ns-${i % size.namespaces}`;
    pods.push({
      namespace,
      name: `pod-${i}`,
      labels: {
        app: `app-${Math.floor(random() * 4)}`,
        tier: tiers[Math.floor(random() * tiers.length)] ?? 'web',
      },
      ips: [podIp(i, nodeIndex)],
      node: size.nodes[nodeIndex] ?? '',
      containerPorts: [
        { name: 'http', port: 8080, protocol: 'TCP' },
        { name: 'metrics', port: 9090, protocol: 'TCP' },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
    });
  }
  const policies: NetworkPolicy[] = [];
  for (let p = 0; p < size.policies; p++) policies.push(policyAt(p, size));
  const nodes = size.nodes.map((name, i) => ({ name, ips: [`192.168.${i}.1`] }));
  return { policies, pods, namespaces, nodes };
}

/** How many policy shapes policyAt() rotates through: policy p has shape p % policyShapes. */
export const policyShapes = 6;

/** The p-th policy: shapes rotate so every feature is exercised at scale. */
export function policyAt(p: number, size: WorkloadSize, variant = 0): NetworkPolicy {
  const namespace = `ns-${p % size.namespaces}`;
  const metadata = { name: `policy-${p}`, namespace };
  const app = `app-${(p + variant) % 4}`;
  const broad = size.shape === 'broad';
  const tier = tiers[(p + variant) % tiers.length] ?? 'web';
  switch (p % policyShapes) {
    case 0:
      return { metadata, spec: { podSelector: {}, policyTypes: ['Ingress'] } };
    case 1:
      return {
        metadata,
        spec: {
          podSelector: { matchLabels: { app } },
          ingress: [
            {
              from: [{ podSelector: { matchLabels: { tier: 'web' } } }],
              ports: [{ port: 'http' }, { port: 443 }],
            },
          ],
        },
      };
    case 2:
      return {
        metadata,
        spec: {
          podSelector: {
            matchExpressions: [{ key: 'tier', operator: 'In', values: [tier, 'db'] }],
          },
          ingress: [
            {
              from: [
                {
                  namespaceSelector: { matchLabels: { team: `team-${p % 7}` } },
                  podSelector: { matchLabels: { tier: 'api' } },
                },
              ],
              ports: [{ protocol: 'TCP', port: 5432, endPort: 5440 + (variant % 5) }],
            },
          ],
        },
      };
    case 3:
      return {
        metadata,
        spec: {
          podSelector: { matchLabels: { tier } },
          policyTypes: ['Egress'],
          egress: [
            {
              to: [
                {
                  namespaceSelector: {
                    matchLabels: broad
                      ? { env: 'prod' }
                      : { 'kubernetes.io/metadata.name': 'ns-0' },
                  },
                },
              ],
              ports: [{ protocol: 'UDP', port: 'dns' }, { port: 8080 }],
            },
            { to: [{ ipBlock: { cidr: '172.16.0.0/12', except: ['172.16.5.0/24'] } }] },
          ],
        },
      };
    case 4:
      return {
        metadata,
        spec: {
          podSelector: { matchLabels: { app } },
          ingress: [
            {
              from: [
                {
                  ipBlock: {
                    cidr: `10.${100 + (p % 2)}.0.0/16`,
                    except: [`10.${100 + (p % 2)}.${p % 4}.0/24`],
                  },
                },
                {
                  namespaceSelector: broad
                    ? { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev'] }] }
                    : { matchLabels: { 'kubernetes.io/metadata.name': 'ns-1' } },
                },
              ],
              ports: [{ port: 9090 }, { protocol: 'UDP', port: 53 }],
            },
          ],
        },
      };
    default:
      return {
        metadata,
        spec: {
          podSelector: { matchLabels: { tier } },
          ingress: [{ from: [{ podSelector: {} }] }],
          egress: [{ to: [{ podSelector: { matchLabels: { app } } }] }],
          policyTypes: ['Ingress', 'Egress'],
        },
      };
  }
}
