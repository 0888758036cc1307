/**
 * The mesh policy model's inputs: pods, namespaces, PeerAuthentications and
 * AuthorizationPolicies reduced to what ambient mode reads, with upstream's
 * field names (security.istio.io/v1, security/v1beta1/*.proto). API objects
 * are read here and nowhere else in the model; the API server has already
 * validated them (src/api/validation/istio/security.ts), so the reducers only
 * guard against shapes that validation let through as absent.
 */
import type { KubeObject } from '../../api/types.js';
import { operationFields, sourceFields } from '../../api/validation/istio/security.js';

/** The mesh root namespace when none is configured (MeshConfig.rootNamespace). */
export const defaultRootNamespace = 'istio-system';

/** Settings the whole mesh shares. */
export interface MeshPolicyOptions {
  /** Policies here without a selector apply mesh-wide; `istio-system` by default. */
  rootNamespace?: string;
}

/** A pod as the mesh sees it. */
export interface MeshPod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** spec.serviceAccountName, `default` when unset (the admission plugin's default). */
  serviceAccount: string;
  hostNetwork: boolean;
}

export interface MeshNamespace {
  name: string;
  labels: Record<string, string>;
}

/** type.v1beta1.WorkloadSelector. */
export interface WorkloadSelector {
  matchLabels?: Record<string, string>;
}

/** type.v1beta1.PolicyTargetReference. */
export interface PolicyTargetReference {
  group?: string;
  kind: string;
  name: string;
  namespace?: string;
}

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

/** security.istio.io PeerAuthentication. */
export interface MeshPeerAuthentication {
  namespace: string;
  name: string;
  /** metadata.creationTimestamp (RFC 3339); the oldest policy wins a tie. */
  creationTimestamp?: string;
  selector?: WorkloadSelector;
  /** spec.mtls.mode; UNSET when absent. */
  mtls: MtlsMode;
  /** spec.portLevelMtls, keyed by the workload's port number. */
  portLevelMtls: Map<number, MtlsMode>;
}

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

/** security.v1beta1.Source. */
export interface Source {
  principals?: string[];
  notPrincipals?: string[];
  requestPrincipals?: string[];
  notRequestPrincipals?: string[];
  namespaces?: string[];
  notNamespaces?: string[];
  ipBlocks?: string[];
  notIpBlocks?: string[];
  remoteIpBlocks?: string[];
  notRemoteIpBlocks?: string[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
}

/** security.v1beta1.Operation. */
export interface Operation {
  hosts?: string[];
  notHosts?: string[];
  ports?: string[];
  notPorts?: string[];
  methods?: string[];
  notMethods?: string[];
  paths?: string[];
  notPaths?: string[];
}

/** security.v1beta1.Condition. */
export interface Condition {
  key: string;
  values?: string[];
  notValues?: string[];
}

/** security.v1beta1.Rule. */
export interface Rule {
  from?: { source: Source }[];
  to?: { operation: Operation }[];
  when?: Condition[];
}

/** security.istio.io AuthorizationPolicy. */
export interface MeshAuthorizationPolicy {
  namespace: string;
  name: string;
  selector?: WorkloadSelector;
  /** spec.targetRefs, with the deprecated spec.targetRef folded in. */
  targetRefs: PolicyTargetReference[];
  /** ALLOW when absent (the proto's default). */
  action: AuthorizationAction;
  provider?: { name: string };
  /** Absent is not the same as empty: neither matches anything, as upstream. */
  rules?: Rule[];
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, v] of Object.entries(record(value))) {
    if (typeof v === 'string') out[key] = v;
  }
  return out;
}

/** A list of strings, or undefined when the field is absent (so "unset" stays distinguishable). */
function strings(value: unknown): string[] | undefined {
  if (!Array.isArray(value)) return undefined;
  return value.filter((v): v is string => typeof v === 'string');
}

function selectorOf(spec: Record<string, unknown>): WorkloadSelector | undefined {
  if (spec.selector === undefined || spec.selector === null) return undefined;
  const selector = record(spec.selector);
  return selector.matchLabels === undefined ? {} : { matchLabels: stringMap(selector.matchLabels) };
}

const mtlsModes = new Set<string>(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']);

function modeOf(value: unknown): MtlsMode {
  const mode = record(value).mode;
  return typeof mode === 'string' && mtlsModes.has(mode) ? (mode as MtlsMode) : 'UNSET';
}

/** A pod's metadata and the spec fields the mesh reads. */
export function meshPod(pod: KubeObject): MeshPod {
  const spec = pod.spec ?? {};
  const account = spec.serviceAccountName ?? spec.serviceAccount;
  return {
    namespace: pod.metadata.namespace ?? 'default',
    name: pod.metadata.name ?? '',
    labels: { ...(pod.metadata.labels ?? {}) },
    annotations: { ...(pod.metadata.annotations ?? {}) },
    serviceAccount: typeof account === 'string' && account !== '' ? account : 'default',
    hostNetwork: spec.hostNetwork === true,
  };
}

export function meshNamespace(namespace: KubeObject): MeshNamespace {
  return { name: namespace.metadata.name ?? '', labels: { ...(namespace.metadata.labels ?? {}) } };
}

export function meshPeerAuthentication(object: KubeObject): MeshPeerAuthentication {
  const spec = object.spec ?? {};
  const portLevelMtls = new Map<number, MtlsMode>();
  for (const [port, mtls] of Object.entries(record(spec.portLevelMtls))) {
    if (/^\d+$/.test(port)) portLevelMtls.set(Number(port), modeOf(mtls));
  }
  const selector = selectorOf(spec);
  return {
    namespace: object.metadata.namespace ?? 'default',
    name: object.metadata.name ?? '',
    ...(object.metadata.creationTimestamp !== undefined
      ? { creationTimestamp: object.metadata.creationTimestamp }
      : {}),
    ...(selector ? { selector } : {}),
    mtls: modeOf(spec.mtls),
    portLevelMtls,
  };
}

const actions = new Set<string>(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']);

function targetRef(value: unknown): PolicyTargetReference | undefined {
  const ref = record(value);
  if (typeof ref.kind !== 'string' || typeof ref.name !== 'string') return undefined;
  return {
    ...(typeof ref.group === 'string' ? { group: ref.group } : {}),
    kind: ref.kind,
    name: ref.name,
    ...(typeof ref.namespace === 'string' ? { namespace: ref.namespace } : {}),
  };
}

/** Copies the listed string-array fields that are present. */
function pick<K extends string>(
  value: unknown,
  fields: readonly K[],
): Partial<Record<K, string[]>> {
  const from = record(value);
  const out: Partial<Record<K, string[]>> = {};
  for (const field of fields) {
    const list = strings(from[field]);
    if (list !== undefined) out[field] = list;
  }
  return out;
}

function rule(value: unknown): Rule {
  const r = record(value);
  const out: Rule = {};
  if (Array.isArray(r.from)) {
    out.from = r.from.map((entry) => ({ source: pick(record(entry).source, sourceFields) }));
  }
  if (Array.isArray(r.to)) {
    out.to = r.to.map((entry) => ({ operation: pick(record(entry).operation, operationFields) }));
  }
  if (Array.isArray(r.when)) {
    out.when = r.when.map((entry) => {
      const c = record(entry);
      return {
        key: typeof c.key === 'string' ? c.key : '',
        ...pick(c, ['values', 'notValues'] as const),
      };
    });
  }
  return out;
}

export function meshAuthorizationPolicy(object: KubeObject): MeshAuthorizationPolicy {
  const spec = object.spec ?? {};
  const action =
    typeof spec.action === 'string' && actions.has(spec.action) ? spec.action : 'ALLOW';
  const refs: unknown[] = Array.isArray(spec.targetRefs) ? spec.targetRefs : [];
  const targetRefs = [spec.targetRef, ...refs].flatMap((ref) => targetRef(ref) ?? []);
  const provider = record(spec.provider).name;
  const selector = selectorOf(spec);
  return {
    namespace: object.metadata.namespace ?? 'default',
    name: object.metadata.name ?? '',
    ...(selector ? { selector } : {}),
    targetRefs,
    action: action as AuthorizationAction,
    ...(typeof provider === 'string' ? { provider: { name: provider } } : {}),
    ...(Array.isArray(spec.rules) ? { rules: spec.rules.map(rule) } : {}),
  };
}

/** Whether every matchLabels entry is among `labels` (WorkloadSelector semantics). */
export function selectsLabels(
  matchLabels: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  return Object.entries(matchLabels).every(
    ([key, value]) => Object.hasOwn(labels, key) && labels[key] === value,
  );
}
