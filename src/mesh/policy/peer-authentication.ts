/**
 * The mutual TLS mode in force for a destination workload and port, from
 * its PeerAuthentications, as istiod computes it for ztunnel
 * (pilot/pkg/serviceregistry/kube/controller/ambient/authorization.go,
 * convertedSelectorPeerAuthentications and convertPeerAuthentication):
 * - a policy without a selector (or with no matchLabels) is mesh-wide in the
 *   root namespace and namespace-wide elsewhere; one with matchLabels is a
 *   workload policy for the pods of its namespace it selects. Workload
 *   policies in the root namespace are skipped;
 * - precedence workload > namespace > mesh, and a level whose mode is UNSET
 *   inherits from the level above; with nothing set the mode is PERMISSIVE
 *   (istio.io/latest/docs/concepts/security/#peer-authentication);
 * - among several policies at one level the oldest wins: by
 *   creationTimestamp, then name, then namespace, as
 *   pilot/pkg/model sortConfigByCreationTime orders them. A missing
 *   timestamp counts as the oldest (Go's zero time);
 * - portLevelMtls applies only on a workload policy, to the port the
 *   workload listens on (the container port a Service's targetPort names),
 *   and an UNSET port mode inherits the workload's.
 *
 * What ztunnel enforces: only STRICT refuses plaintext. "As ztunnel and HBONE
 * implies the use of mTLS, it is not possible to use the DISABLE mode in a
 * policy" (istio.io/latest/docs/ambient/usage/l4-policy/, Peer
 * authentication); istiod treats DISABLE as not-STRICT, so it acts as
 * PERMISSIVE. The mode is still reported as written, with a warning.
 */
import {
  type MeshPeerAuthentication,
  type MeshPolicyOptions,
  type MtlsMode,
  defaultRootNamespace,
  selectsLabels,
} from './types.js';

export type EffectiveMtlsMode = Exclude<MtlsMode, 'UNSET'>;
export type MtlsLevel = 'mesh' | 'namespace' | 'workload';

/** The policy, level and (for portLevelMtls) port that set the mode; `default` when none did. */
export type MtlsSource =
  'default' | { level: MtlsLevel; namespace: string; name: string; port?: number };

export interface EffectiveMtls {
  mode: EffectiveMtlsMode;
  source: MtlsSource;
  /** Whether the destination's ztunnel accepts a plaintext connection: all but STRICT do. */
  acceptsPlaintext: boolean;
  /** Policies that select the workload but do not act as written under ztunnel. */
  warnings: string[];
}

/** The workload a connection is for: its namespace and labels. */
export interface MtlsWorkload {
  namespace: string;
  labels: Readonly<Record<string, string>>;
}

function hasMatchLabels(policy: MeshPeerAuthentication): boolean {
  return Object.keys(policy.selector?.matchLabels ?? {}).length > 0;
}

function created(policy: MeshPeerAuthentication): number {
  const time = policy.creationTimestamp === undefined ? NaN : Date.parse(policy.creationTimestamp);
  return Number.isNaN(time) ? -Infinity : time;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The oldest policy (creationTimestamp, then name, then namespace), or undefined. */
function oldest(policies: readonly MeshPeerAuthentication[]): MeshPeerAuthentication | undefined {
  let best: MeshPeerAuthentication | undefined;
  for (const policy of policies) {
    if (!best) {
      best = policy;
      continue;
    }
    const order =
      created(policy) - created(best) ||
      compareText(policy.name, best.name) ||
      compareText(policy.namespace, best.namespace);
    if (order < 0) best = policy;
  }
  return best;
}

function key(policy: MeshPeerAuthentication): string {
  return `${policy.namespace}/${policy.name}`;
}

/** The mTLS mode for connections to `workload` on `port` (the workload's own port). */
export function effectiveMtls(
  workload: MtlsWorkload,
  port: number | undefined,
  policies: readonly MeshPeerAuthentication[],
  options: MeshPolicyOptions = {},
): EffectiveMtls {
  const root = options.rootNamespace ?? defaultRootNamespace;
  const warnings: string[] = [];
  const mesh = oldest(policies.filter((p) => p.namespace === root && !hasMatchLabels(p)));
  const namespace =
    workload.namespace === root
      ? undefined
      : oldest(policies.filter((p) => p.namespace === workload.namespace && !hasMatchLabels(p)));
  const selecting = policies.filter(
    (p) =>
      p.namespace === workload.namespace &&
      hasMatchLabels(p) &&
      selectsLabels(p.selector?.matchLabels ?? {}, workload.labels),
  );
  for (const p of selecting.filter((p) => p.namespace === root)) {
    warnings.push(
      `PeerAuthentication ${key(p)} selects workloads in the root namespace ${root}; ztunnel skips workload policies there (istiod ambient), so it has no effect`,
    );
  }
  const workloadPolicy = oldest(selecting.filter((p) => p.namespace !== root));

  let mode: EffectiveMtlsMode = 'PERMISSIVE';
  let source: MtlsSource = 'default';
  const levels: [MtlsLevel, MeshPeerAuthentication | undefined][] = [
    ['mesh', mesh],
    ['namespace', namespace],
    ['workload', workloadPolicy],
  ];
  for (const [level, policy] of levels) {
    if (!policy || policy.mtls === 'UNSET') continue;
    mode = policy.mtls;
    source = { level, namespace: policy.namespace, name: policy.name };
  }
  for (const policy of [mesh, namespace]) {
    if (policy && policy.portLevelMtls.size > 0) {
      warnings.push(
        `PeerAuthentication ${key(policy)} has portLevelMtls without a selector; upstream applies port-level mTLS only on workload policies, so it is ignored`,
      );
    }
  }
  if (workloadPolicy && port !== undefined) {
    const portMode = workloadPolicy.portLevelMtls.get(port);
    if (portMode !== undefined && portMode !== 'UNSET') {
      mode = portMode;
      source = {
        level: 'workload',
        namespace: workloadPolicy.namespace,
        name: workloadPolicy.name,
        port,
      };
    }
  }
  if (mode === 'DISABLE' && source !== 'default') {
    warnings.push(
      `PeerAuthentication ${source.namespace}/${source.name} sets DISABLE: ztunnel always uses mTLS between enrolled pods, so it acts as PERMISSIVE; take the namespace out of ambient mode to turn mTLS off`,
    );
  }
  return { mode, source, acceptsPlaintext: mode !== 'STRICT', warnings };
}
