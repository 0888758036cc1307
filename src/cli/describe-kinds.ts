/**
 * kubectl describe's sections for the kinds it has describers for
 * (k8s.io/kubectl/pkg/describe/describe.go: describePod,
 * describeDeployment, describeService, describeNode, describeNamespace),
 * with the fields strata's objects have.
 */
import { resourceForKind } from '../api/registry.js';
import type { KubeObject, ResourceType } from '../api/types.js';
import type { ApiClient } from '../client/index.js';
import { lastAppliedAnnotation } from './apply-patch.js';
import { formatAge } from './printers.js';
import { type DescribeText, describeMetadata, describeTime } from './describe-text.js';

type Fields = Record<string, unknown>;

function fields(value: unknown): Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Fields)
    : {};
}

function items(value: unknown): Fields[] {
  return Array.isArray(value) ? (value as unknown[]).map(fields) : [];
}

function text(value: unknown, absent = '<none>'): string {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return absent;
}

function kind(apiVersion: string, name: string): ResourceType {
  const resource = resourceForKind(apiVersion, name);
  if (!resource) throw new Error(`the registry has no ${apiVersion} ${name}`);
  return resource;
}

/** A list of strings joined by commas, `<none>` when empty. */
function joined(value: unknown): string {
  const values = Array.isArray(value) ? (value as unknown[]).map((v) => text(v, '')) : [];
  return values.length === 0 ? '<none>' : values.join(',');
}

function selectorText(selector: unknown): string {
  const labels = Object.entries(fields(fields(selector).matchLabels ?? selector));
  return labels.length === 0 ? '<none>' : labels.map(([k, v]) => `${k}=${text(v, '')}`).join(',');
}

function conditions(d: DescribeText, status: Fields, columns: readonly string[]): void {
  const list = items(status.conditions);
  if (list.length === 0) {
    d.line(0, 'Conditions:', '<none>');
    return;
  }
  d.line(0, 'Conditions:');
  d.line(1, ...columns);
  d.line(1, ...columns.map((c) => '-'.repeat(c.length)));
  for (const condition of list) {
    const cells: Record<string, string> = {
      Type: text(condition.type),
      Status: text(condition.status),
      LastHeartbeatTime: describeTime(condition.lastHeartbeatTime),
      LastTransitionTime: describeTime(condition.lastTransitionTime),
      Reason: text(condition.reason, ''),
      Message: text(condition.message, ''),
    };
    d.line(1, ...columns.map((c) => cells[c] ?? ''));
  }
}

function ports(container: Fields): string {
  const list = items(container.ports);
  if (list.length === 0) return '<none>';
  return list.map((p) => `${text(p.containerPort)}/${text(p.protocol, 'TCP')}`).join(', ');
}

function containerState(d: DescribeText, level: number, title: string, state: Fields): void {
  const [name, detail] = Object.entries(state)[0] ?? [];
  if (name === undefined) {
    d.line(level, `${title}:`, 'Waiting');
    return;
  }
  const info = fields(detail);
  d.line(level, `${title}:`, `${name.charAt(0).toUpperCase()}${name.slice(1)}`);
  if (info.reason !== undefined) d.line(level + 1, 'Reason:', text(info.reason));
  if (info.exitCode !== undefined) d.line(level + 1, 'Exit Code:', text(info.exitCode));
  if (info.startedAt !== undefined) d.line(level + 1, 'Started:', describeTime(info.startedAt));
  if (info.finishedAt !== undefined) d.line(level + 1, 'Finished:', describeTime(info.finishedAt));
}

function environment(d: DescribeText, level: number, container: Fields): void {
  const env = items(container.env);
  if (env.length === 0) {
    d.line(level, 'Environment:', '<none>');
    return;
  }
  d.line(level, 'Environment:');
  for (const variable of env) {
    const fieldRef = fields(fields(variable.valueFrom).fieldRef);
    const value =
      variable.value !== undefined
        ? text(variable.value, '')
        : `(${text(fieldRef.apiVersion, 'v1')}:${text(fieldRef.fieldPath)})`;
    d.line(level + 1, `${text(variable.name)}:`, value);
  }
}

/** The containers of a pod (or a pod template), with their statuses when there are any. */
function containers(
  d: DescribeText,
  level: number,
  spec: Fields,
  status: Fields | undefined,
): void {
  d.line(level, 'Containers:');
  const statuses = new Map(items(status?.containerStatuses).map((s) => [s.name, s]));
  for (const container of items(spec.containers)) {
    d.line(level + 1, `${text(container.name)}:`);
    const inner = level + 2;
    if (container.image !== undefined) d.line(inner, 'Image:', text(container.image));
    d.line(inner, 'Port:', ports(container));
    for (const [title, key] of [
      ['Command', 'command'],
      ['Args', 'args'],
    ] as const) {
      const words = Array.isArray(container[key]) ? (container[key] as unknown[]) : [];
      if (words.length === 0) continue;
      d.line(inner, `${title}:`);
      for (const word of words) d.line(inner + 1, text(word, '""'));
    }
    const containerStatus = statuses.get(container.name);
    if (status !== undefined) {
      containerState(d, inner, 'State', fields(containerStatus?.state));
      const last = fields(containerStatus?.lastState);
      if (Object.keys(last).length > 0) containerState(d, inner, 'Last State', last);
      d.line(inner, 'Ready:', containerStatus?.ready === true ? 'True' : 'False');
      d.line(inner, 'Restart Count:', text(containerStatus?.restartCount, '0'));
    }
    environment(d, inner, container);
  }
}

function controlledBy(object: KubeObject): string | undefined {
  const owner = object.metadata.ownerReferences?.find((o) => o.controller === true);
  return owner && `${owner.kind}/${owner.name}`;
}

async function describePod(d: DescribeText, pod: KubeObject): Promise<void> {
  const spec = fields(pod.spec);
  const status = fields(pod.status);
  d.line(0, 'Name:', pod.metadata.name ?? '');
  d.line(0, 'Namespace:', pod.metadata.namespace ?? '');
  const node = text(spec.nodeName, '');
  d.line(0, 'Node:', node === '' ? '<none>' : `${node}/${text(status.hostIP, '')}`);
  if (status.startTime !== undefined) d.line(0, 'Start Time:', describeTime(status.startTime));
  d.map(0, 'Labels', pod.metadata.labels);
  d.map(0, 'Annotations', pod.metadata.annotations, [lastAppliedAnnotation]);
  if (pod.metadata.deletionTimestamp !== undefined) {
    d.line(
      0,
      'Status:',
      `Terminating (lasts ${text(pod.metadata.deletionGracePeriodSeconds, '0')}s)`,
    );
    d.line(0, 'Termination Grace Period:', `${text(spec.terminationGracePeriodSeconds, '30')}s`);
  } else {
    d.line(0, 'Status:', text(status.phase, 'Pending'));
  }
  d.line(0, 'IP:', text(status.podIP, ''));
  const ips = items(status.podIPs);
  if (ips.length === 0) d.line(0, 'IPs:', '<none>');
  else {
    d.line(0, 'IPs:');
    for (const ip of ips) d.line(1, 'IP:', text(ip.ip));
  }
  const owner = controlledBy(pod);
  if (owner !== undefined) d.line(0, 'Controlled By:', owner);
  containers(d, 0, spec, status);
  conditions(d, status, ['Type', 'Status']);
  d.line(0, 'Events:', '<none>');
  await Promise.resolve();
}

async function describeDeployment(d: DescribeText, deployment: KubeObject): Promise<void> {
  const spec = fields(deployment.spec);
  const status = fields(deployment.status);
  describeMetadata(d, deployment, true);
  d.line(0, 'CreationTimestamp:', describeTime(deployment.metadata.creationTimestamp));
  d.line(0, 'Selector:', selectorText(spec.selector));
  const n = (value: unknown): string => text(value, '0');
  const unavailable = n(status.unavailableReplicas);
  d.line(
    0,
    'Replicas:',
    `${n(spec.replicas)} desired | ${n(status.updatedReplicas)} updated | ${n(status.replicas)} total | ${n(status.availableReplicas)} available | ${unavailable} unavailable`,
  );
  d.line(0, 'StrategyType:', text(fields(spec.strategy).type, 'RollingUpdate'));
  const template = fields(spec.template);
  d.line(0, 'Pod Template:');
  d.map(1, 'Labels', fields(template.metadata).labels as Record<string, string> | undefined);
  containers(d, 1, fields(template.spec), undefined);
  conditions(d, status, ['Type', 'Status', 'Reason']);
  d.line(0, 'Events:', '<none>');
  await Promise.resolve();
}

async function describeService(
  d: DescribeText,
  service: KubeObject,
  client: ApiClient,
): Promise<void> {
  const spec = fields(service.spec);
  describeMetadata(d, service, true);
  d.line(0, 'Selector:', selectorText(spec.selector));
  d.line(0, 'Type:', text(spec.type, 'ClusterIP'));
  d.line(0, 'IP Family Policy:', text(spec.ipFamilyPolicy));
  d.line(0, 'IP Families:', joined(spec.ipFamilies));
  d.line(0, 'IP:', text(spec.clusterIP));
  d.line(0, 'IPs:', joined(spec.clusterIPs));
  const slices = await client.list(kind('discovery.k8s.io/v1', 'EndpointSlice'), {
    namespace: service.metadata.namespace,
    labelSelector: { 'kubernetes.io/service-name': service.metadata.name ?? '' },
  });
  for (const port of items(spec.ports)) {
    const name = text(port.name, '<unset>');
    d.line(0, 'Port:', name, `${text(port.port)}/${text(port.protocol, 'TCP')}`);
    d.line(
      0,
      'TargetPort:',
      `${text(port.targetPort, text(port.port))}/${text(port.protocol, 'TCP')}`,
    );
    const endpoints = slices.items.flatMap((slice) => {
      const slicePort = items(slice.ports).find((p) => text(p.name, '') === text(port.name, ''));
      if (!slicePort) return [];
      return items(slice.endpoints)
        .filter((e) => fields(e.conditions).ready !== false)
        .flatMap((e) => (Array.isArray(e.addresses) ? (e.addresses as unknown[]) : []))
        .map((address) => `${text(address)}:${text(slicePort.port)}`);
    });
    d.line(0, 'Endpoints:', endpoints.length === 0 ? '<none>' : endpoints.join(','));
  }
  d.line(0, 'Session Affinity:', text(spec.sessionAffinity, 'None'));
  d.line(0, 'Events:', '<none>');
}

async function describeNode(d: DescribeText, node: KubeObject, client: ApiClient): Promise<void> {
  const spec = fields(node.spec);
  const status = fields(node.status);
  d.line(0, 'Name:', node.metadata.name ?? '');
  d.line(0, 'Roles:', '<none>');
  d.map(0, 'Labels', node.metadata.labels);
  d.map(0, 'Annotations', node.metadata.annotations);
  d.line(0, 'CreationTimestamp:', describeTime(node.metadata.creationTimestamp));
  conditions(d, status, ['Type', 'Status', 'LastHeartbeatTime', 'Reason', 'Message']);
  d.line(0, 'Addresses:');
  for (const address of items(status.addresses)) {
    d.line(1, `${text(address.type)}:`, text(address.address));
  }
  d.line(0, 'PodCIDR:', text(spec.podCIDR));
  d.line(0, 'PodCIDRs:', joined(spec.podCIDRs));
  const pods = await client.list(kind('v1', 'Pod'), {
    fieldSelector: { 'spec.nodeName': node.metadata.name ?? '' },
  });
  const running = pods.items.filter(
    (pod) => !['Succeeded', 'Failed'].includes(text(pod.status?.phase, '')),
  );
  d.line(0, `Non-terminated Pods:`, `(${running.length} in total)`);
  if (running.length > 0) {
    d.line(1, 'Namespace', 'Name', 'Age');
    d.line(1, '---------', '----', '---');
    for (const pod of running) {
      d.line(
        1,
        pod.metadata.namespace ?? '',
        pod.metadata.name ?? '',
        formatAge(pod.metadata.creationTimestamp, Date.now()),
      );
    }
  }
  d.line(0, 'Events:', '<none>');
}

async function describeNamespace(d: DescribeText, namespace: KubeObject): Promise<void> {
  describeMetadata(d, namespace, false);
  d.line(0, 'Status:', text(fields(namespace.status).phase, 'Active'));
  d.line(0, '');
  d.line(0, 'No resource quota.');
  d.line(0, '');
  d.line(0, 'No LimitRange resource.');
  await Promise.resolve();
}

type Describer = (d: DescribeText, object: KubeObject, client: ApiClient) => Promise<void>;

/** By `group/Kind`. */
export const describers: Record<string, Describer> = {
  '/Pod': describePod,
  'apps/Deployment': describeDeployment,
  '/Service': describeService,
  '/Node': describeNode,
  '/Namespace': describeNamespace,
};
