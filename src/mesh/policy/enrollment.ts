/**
 * Whether ambient mode captures a pod: upstream's switches, so upstream
 * manifests behave the same here.
 *
 * Upstream, istio-cni decides (cni/pkg/util/podutil.go PodRedirectionEnabled,
 * and "Pod selection logic for ambient and sidecar modes" on
 * istio.io/latest/docs/ambient/usage/add-workloads/), in this order:
 * - namespaces in istio-cni's `excludeNamespaces` are skipped (the chart's
 *   default is `[kube-system]`, manifests/charts/istio-cni/values.yaml);
 * - the namespace or the pod must carry `istio.io/dataplane-mode=ambient`
 *   (the pod label enrolls a pod in a namespace that is not enrolled: the
 *   chart's default enablementSelectors);
 * - a pod with a sidecar (annotation `sidecar.istio.io/status`) is not
 *   captured: "the sidecar mode currently takes precedence";
 * - the pod label `istio.io/dataplane-mode=none` opts a pod out;
 * - hostNetwork pods are never captured (the rules would land in the node's
 *   own namespace).
 *
 * strata has no sidecar injector yet, so no pod carries the status
 * annotation unless a user wrote it. A pod that upstream's injector would
 * give a sidecar is treated as having one, so it stays out of ambient as it
 * would upstream. The injector's documented rule ("Controlling the injection
 * policy", istio.io/latest/docs/setup/additional-setup/sidecar-injection/):
 * injection is off when either the namespace label `istio-injection` or the
 * pod's `sidecar.istio.io/inject` says disabled, on when either says enabled.
 * The pod label wins over the legacy annotation of the same name. The
 * revision label `istio.io/rev` is not counted: ambient namespaces carry it
 * too, to pick their control plane (istio.io/latest/docs/ambient/upgrade/helm/).
 */
import type { MeshNamespace, MeshPod } from './types.js';

export const dataplaneModeLabel = 'istio.io/dataplane-mode';
export const sidecarStatusAnnotation = 'sidecar.istio.io/status';
export const sidecarInjectLabel = 'sidecar.istio.io/inject';
export const namespaceInjectionLabel = 'istio-injection';

export interface EnrollmentOptions {
  /** istio-cni's excludeNamespaces: never captured. `['kube-system']` by default. */
  excludeNamespaces?: readonly string[];
}

/** Whether a pod is in the ambient mesh, and why (the sentence `strata explain` prints). */
export type Enrollment =
  | { enrolled: true; via: 'namespace-label' | 'pod-label'; reason: string }
  | {
      enrolled: false;
      why: 'excluded-namespace' | 'not-labelled' | 'sidecar' | 'opted-out' | 'host-network';
      reason: string;
    };

/** The label or annotation that asks for a sidecar, or undefined when none does. */
function sidecarRequest(pod: MeshPod, namespace: MeshNamespace): string | undefined {
  if (pod.hostNetwork) return undefined; // the injector skips hostNetwork pods too
  const podLabel = pod.labels[sidecarInjectLabel];
  const podSetting = podLabel ?? pod.annotations[sidecarInjectLabel];
  const podSource = podLabel !== undefined ? 'label' : 'annotation';
  const namespaceSetting = namespace.labels[namespaceInjectionLabel];
  if (podSetting === 'false' || namespaceSetting === 'disabled') return undefined;
  if (podSetting === 'true') return `${podSource} ${sidecarInjectLabel}=true`;
  if (namespaceSetting === 'enabled') {
    return `namespace label ${namespaceInjectionLabel}=enabled on ${namespace.name}`;
  }
  return undefined;
}

/** Whether ambient mode captures `pod` (in `namespace`), with the reason. */
export function isEnrolled(
  pod: MeshPod,
  namespace: MeshNamespace | undefined,
  options: EnrollmentOptions = {},
): Enrollment {
  const ns = namespace ?? { name: pod.namespace, labels: {} };
  const who = `pod ${pod.namespace}/${pod.name}`;
  if ((options.excludeNamespaces ?? ['kube-system']).includes(pod.namespace)) {
    return {
      enrolled: false,
      why: 'excluded-namespace',
      reason: `namespace ${pod.namespace} is excluded from ambient capture (istio-cni excludeNamespaces)`,
    };
  }
  const podMode = pod.labels[dataplaneModeLabel];
  const namespaceAmbient = ns.labels[dataplaneModeLabel] === 'ambient';
  if (podMode !== 'ambient' && !namespaceAmbient) {
    return {
      enrolled: false,
      why: 'not-labelled',
      reason: `neither namespace ${ns.name} nor ${who} has the label ${dataplaneModeLabel}=ambient`,
    };
  }
  if (Object.hasOwn(pod.annotations, sidecarStatusAnnotation)) {
    return {
      enrolled: false,
      why: 'sidecar',
      reason: `${who} has a sidecar (annotation ${sidecarStatusAnnotation}); ambient mode does not capture pods with sidecars`,
    };
  }
  const request = sidecarRequest(pod, ns);
  if (request !== undefined) {
    return {
      enrolled: false,
      why: 'sidecar',
      reason: `${who} asks for a sidecar (${request}), which takes precedence over ambient mode upstream; strata has no sidecar mode yet, so the pod is outside the mesh`,
    };
  }
  if (podMode === 'none') {
    return {
      enrolled: false,
      why: 'opted-out',
      reason: `${who} opts out with the label ${dataplaneModeLabel}=none`,
    };
  }
  if (pod.hostNetwork) {
    return {
      enrolled: false,
      why: 'host-network',
      reason: `${who} uses the host's network; ambient mode never captures hostNetwork pods`,
    };
  }
  return podMode === 'ambient'
    ? {
        enrolled: true,
        via: 'pod-label',
        reason: `${who} has the label ${dataplaneModeLabel}=ambient`,
      }
    : {
        enrolled: true,
        via: 'namespace-label',
        reason: `namespace ${ns.name} has the label ${dataplaneModeLabel}=ambient`,
      };
}
