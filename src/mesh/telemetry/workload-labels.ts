/**
 * What Istio's standard metrics call a pod: its workload name and canonical
 * service, derived the way istiod derives them for ztunnel
 * (pilot/pkg/serviceregistry/kube/controller/ambient: `workloadName` is
 * pkg/kube GetWorkloadMetaFromPod, and the canonical service is
 * pkg/kube/labels CanonicalService). Pure: the pod object in, names out.
 */
import type { KubeObject } from '../../api/types.js';

/** The names the metrics and the access log use for one pod. */
export interface WorkloadLabels {
  /** metadata.name: the access log's `src.workload` / `dst.workload`. */
  pod: string;
  namespace: string;
  /** The controlling workload's name (a Deployment, CronJob, StatefulSet, ...), or the pod's own. */
  workload: string;
  /** `*_canonical_service`, and `*_app` in ztunnel's metrics. */
  canonicalService: string;
  /** `*_canonical_revision`, and `*_version` in ztunnel's metrics. */
  canonicalRevision: string;
}

/** label.ServiceWorkloadName: overrides the heuristic below. */
export const workloadNameLabel = 'service.istio.io/workload-name';

/** The labels a canonical name is read from, first present wins (kubelabels nameLabels). */
export const canonicalNameLabels = [
  'service.istio.io/canonical-name',
  'app.kubernetes.io/name',
  'app',
] as const;

/** The labels a canonical revision is read from, first present wins (kubelabels revisionLabels). */
export const canonicalRevisionLabels = [
  'service.istio.io/canonical-revision',
  'app.kubernetes.io/version',
  'version',
] as const;

/** The revision of a workload with none of the revision labels. */
export const defaultCanonicalRevision = 'latest';

// A Job a CronJob made is named `<cronjob>-<scheduled time in minutes>`:
// GetDeployMetaFromPod's cronJobNameRegexp.
const cronJobJobName = /^(.+)-\d{8,10}$/;

/** The workload name and canonical service of `pod`, as istiod sends them to ztunnel. */
export function workloadLabels(pod: KubeObject): WorkloadLabels {
  const labels = pod.metadata.labels ?? {};
  const workload = labels[workloadNameLabel] ?? controllingWorkloadName(pod);
  return {
    pod: pod.metadata.name ?? '',
    namespace: pod.metadata.namespace ?? '',
    workload,
    canonicalService: firstPresent(labels, canonicalNameLabels) ?? workload,
    canonicalRevision: firstPresent(labels, canonicalRevisionLabels) ?? defaultCanonicalRevision,
  };
}

/**
 * GetDeployMetaFromPod's heuristic. Only a pod whose name was generated is
 * looked into: its controller's name, except that a ReplicaSet named
 * `<deployment>-<pod-template-hash>` stands for its Deployment (and the same
 * for an Argo Rollout's ReplicaSet), an OpenShift DeploymentConfig's
 * ReplicationController for the DeploymentConfig, and a CronJob's Job for the
 * CronJob. strata's Deployments own their pods directly, so the controller's
 * name is already the Deployment's.
 */
function controllingWorkloadName(pod: KubeObject): string {
  const name = pod.metadata.name ?? '';
  if (!pod.metadata.generateName) return name;
  const controller = pod.metadata.ownerReferences?.find((ref) => ref.controller === true);
  if (controller === undefined) return name;
  const labels = pod.metadata.labels ?? {};
  const templateHash = labels['pod-template-hash'] ?? '';
  const rolloutHash = labels['rollouts-pod-template-hash'] ?? '';
  const deploymentConfig = labels.deploymentconfig ?? '';
  let workload = controller.name;
  if (controller.kind === 'ReplicaSet' && templateHash !== '' && workload.endsWith(templateHash)) {
    workload = trimSuffix(workload, `-${templateHash}`);
  } else if (
    controller.kind === 'ReplicaSet' &&
    rolloutHash !== '' &&
    workload.endsWith(rolloutHash)
  ) {
    workload = trimSuffix(workload, `-${rolloutHash}`);
  } else if (controller.kind === 'ReplicationController' && deploymentConfig !== '') {
    workload = deploymentConfig;
  } else if (controller.kind === 'Job') {
    workload = cronJobJobName.exec(workload)?.[1] ?? workload;
  }
  return workload === '' ? name : workload;
}

// Go's strings.TrimSuffix.
function trimSuffix(value: string, suffix: string): string {
  return value.endsWith(suffix) ? value.slice(0, value.length - suffix.length) : value;
}

// kubelabels lookupLabelValue: a label that is present counts even when empty.
function firstPresent(labels: Record<string, string>, keys: readonly string[]): string | undefined {
  for (const key of keys) {
    const value = labels[key];
    if (value !== undefined) return value;
  }
  return undefined;
}
