/**
 * kubectl's table columns for each kind strata serves, cell by cell as
 * k8s.io/kubernetes/pkg/printers/internalversion/printers.go computes them,
 * and its AGE format (apimachinery's duration.HumanDuration).
 */
import type { KubeObject, ResourceType } from '../api/types.js';
import { networkPolicy } from '../policy/input.js';
import { effectivePolicyTypes, policyKey } from '../policy/model.js';

/** The columns of one kind after NAME; AGE sits among them where kubectl puts it. */
export interface KindColumns {
  headers: readonly string[];
  wideHeaders: readonly string[];
  row(object: KubeObject, now: number): { cells: string[]; wideCells: string[] };
}

/** What some columns need beyond the object itself, computed by the caller from other objects. */
export interface ColumnContext {
  /**
   * Per NetworkPolicy (`namespace/name`), the pods it selects (`namespace/name`):
   * PolicyModel.selected, for `get networkpolicies -o wide`.
   */
  selectedPods?: ReadonlyMap<string, readonly string[]>;
  /** Per NetworkPolicy, the packets dropped at the pods it isolates (every node's counters). */
  droppedPackets?: (policy: string) => number;
}

/* Reading fields of objects whose spec and status are not typed here. */

type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function at(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) current = isFields(current) ? current[key] : undefined;
  return current;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? (value as unknown[]) : [];
}

/* AGE */

/**
 * A duration as kubectl's AGE column shows it: 45s, 3m12s, 17m, 5h, 5h30m,
 * 30h, 2d, 3d4h, 400d, 2y30d, 9y (duration.HumanDuration).
 */
export function humanDuration(milliseconds: number): string {
  const seconds = Math.trunc(milliseconds / 1000);
  // "Allow deviation no more than 2 seconds(excluded) to tolerate machine time inconsistence."
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return hours % 24 === 0 ? `${days}d` : `${days}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`;
  return `${years}y`;
}

/** The AGE of an RFC 3339 timestamp at `now`; `<unknown>` without one, as kubectl prints. */
export function formatAge(timestamp: unknown, now: number): string {
  const time = typeof timestamp === 'string' ? Date.parse(timestamp) : NaN;
  return Number.isNaN(time) ? '<unknown>' : humanDuration(now - time);
}

function age(object: KubeObject, now: number): string {
  return formatAge(object.metadata.creationTimestamp, now);
}

/* Selectors */

/** A label map as labels.FormatLabels prints it: `a=1,b=2` by key, `<none>` when empty. */
export function formatLabels(labels: unknown): string {
  const entries = isFields(labels) ? Object.entries(labels) : [];
  if (entries.length === 0) return '<none>';
  return entries
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${String(value)}`)
    .join(',');
}

/**
 * A LabelSelector as metav1.FormatLabelSelector prints it: requirements by
 * key, `k=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`; `<none>` when it
 * selects everything.
 */
export function formatLabelSelector(selector: unknown): string {
  const requirements: [string, string][] = [];
  for (const [key, value] of Object.entries(at(selector, 'matchLabels') ?? {})) {
    requirements.push([key, `${key}=${String(value)}`]);
  }
  for (const expression of list(at(selector, 'matchExpressions'))) {
    const key = String(at(expression, 'key'));
    const values = list(at(expression, 'values')).map(String).sort().join(',');
    switch (at(expression, 'operator')) {
      case 'In':
        requirements.push([key, `${key} in (${values})`]);
        break;
      case 'NotIn':
        requirements.push([key, `${key} notin (${values})`]);
        break;
      case 'Exists':
        requirements.push([key, key]);
        break;
      case 'DoesNotExist':
        requirements.push([key, `!${key}`]);
        break;
      default:
        return '<error>';
    }
  }
  const formatted = requirements
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, requirement]) => requirement)
    .join(',');
  return formatted === '' ? '<none>' : formatted;
}

/* Pods */

/** The last termination time of containers that restarted, for RESTARTS' "(5m ago)". */
function lastRestart(statuses: unknown[]): number | undefined {
  const times = statuses
    .map((s) => at(s, 'lastState', 'terminated', 'finishedAt'))
    .map((t) => (typeof t === 'string' ? Date.parse(t) : NaN))
    .filter((t) => !Number.isNaN(t));
  return times.length === 0 ? undefined : Math.max(...times);
}

function terminatedReason(terminated: unknown, prefix: string): string {
  const reason = text(at(terminated, 'reason'));
  if (reason !== undefined) return `${prefix}${reason}`;
  const signal = count(at(terminated, 'signal'));
  return signal !== 0
    ? `${prefix}Signal:${signal}`
    : `${prefix}ExitCode:${count(at(terminated, 'exitCode'))}`;
}

/** READY, STATUS and RESTARTS as kubectl's printPod derives them from the pod's status. */
export function podSummary(
  pod: KubeObject,
  now: number,
): { ready: string; status: string; restarts: string } {
  const initStatuses = list(at(pod, 'status', 'initContainerStatuses'));
  const statuses = list(at(pod, 'status', 'containerStatuses'));
  const total = list(at(pod, 'spec', 'containers')).length || statuses.length;
  // The API server sets Pending when it creates a pod.
  let reason = text(at(pod, 'status', 'reason')) ?? text(at(pod, 'status', 'phase')) ?? 'Pending';
  let restarts = 0;
  let readyContainers = 0;

  let initializing = false;
  const initTotal = list(at(pod, 'spec', 'initContainers')).length || initStatuses.length;
  for (const [i, status] of initStatuses.entries()) {
    restarts += count(at(status, 'restartCount'));
    const terminated = at(status, 'state', 'terminated');
    const waiting = text(at(status, 'state', 'waiting', 'reason'));
    if (terminated !== undefined && count(at(terminated, 'exitCode')) === 0) continue;
    initializing = true;
    if (terminated !== undefined) reason = terminatedReason(terminated, 'Init:');
    else if (waiting !== undefined && waiting !== 'PodInitializing') reason = `Init:${waiting}`;
    else reason = `Init:${i}/${initTotal}`;
    break;
  }

  if (!initializing) {
    let hasRunning = false;
    for (const status of [...statuses].reverse()) {
      restarts += count(at(status, 'restartCount'));
      const waiting = text(at(status, 'state', 'waiting', 'reason'));
      const terminated = at(status, 'state', 'terminated');
      if (waiting !== undefined) {
        reason = waiting;
      } else if (terminated !== undefined) {
        reason = terminatedReason(terminated, '');
      } else if (at(status, 'ready') === true && at(status, 'state', 'running') !== undefined) {
        hasRunning = true;
        readyContainers++;
      }
    }
    // A pod whose finished containers completed but one still runs is running.
    if (reason === 'Completed' && hasRunning) {
      const conditions = list(at(pod, 'status', 'conditions'));
      const podReady = conditions.some(
        (c) => at(c, 'type') === 'Ready' && at(c, 'status') === 'True',
      );
      reason = podReady ? 'Running' : 'NotReady';
    }
  }

  if (pod.metadata.deletionTimestamp !== undefined) {
    reason = at(pod, 'status', 'reason') === 'NodeLost' ? 'Unknown' : 'Terminating';
  }
  const restarted = restarts > 0 ? lastRestart([...initStatuses, ...statuses]) : undefined;
  return {
    ready: `${readyContainers}/${total}`,
    status: reason,
    restarts:
      restarted === undefined
        ? `${restarts}`
        : `${restarts} (${humanDuration(now - restarted)} ago)`,
  };
}

const pods: KindColumns = {
  headers: ['READY', 'STATUS', 'RESTARTS', 'AGE'],
  wideHeaders: ['IP', 'NODE'],
  row(pod, now) {
    const { ready, status, restarts } = podSummary(pod, now);
    return {
      cells: [ready, status, restarts, age(pod, now)],
      wideCells: [
        text(at(pod, 'status', 'podIP')) ?? '<none>',
        text(at(pod, 'spec', 'nodeName')) ?? '<none>',
      ],
    };
  },
};

const deployments: KindColumns = {
  headers: ['READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE'],
  wideHeaders: ['CONTAINERS', 'IMAGES', 'SELECTOR'],
  row(deployment, now) {
    const replicas = at(deployment, 'spec', 'replicas');
    const desired = typeof replicas === 'number' ? replicas : 1; // spec.replicas defaults to 1
    const containers = list(at(deployment, 'spec', 'template', 'spec', 'containers'));
    return {
      cells: [
        `${count(at(deployment, 'status', 'readyReplicas'))}/${desired}`,
        `${count(at(deployment, 'status', 'updatedReplicas'))}`,
        `${count(at(deployment, 'status', 'availableReplicas'))}`,
        age(deployment, now),
      ],
      wideCells: [
        containers.map((c) => text(at(c, 'name')) ?? '').join(','),
        containers.map((c) => text(at(c, 'image')) ?? '').join(','),
        formatLabelSelector(at(deployment, 'spec', 'selector')),
      ],
    };
  },
};

// loadBalancerWidth: a load balancer's addresses are cut to 16 characters unless wide.
function loadBalancerAddresses(service: KubeObject, wide: boolean): string {
  const ingress = list(at(service, 'status', 'loadBalancer', 'ingress'));
  const joined = ingress
    .map((i) => text(at(i, 'ip')) ?? text(at(i, 'hostname')))
    .filter((a) => a !== undefined)
    .join(',');
  return !wide && joined.length > 16 ? `${joined.slice(0, 13)}...` : joined;
}

/** EXTERNAL-IP as kubectl's getServiceExternalIP reads it for each Service type. */
function serviceExternalIp(service: KubeObject, wide: boolean): string {
  const externalIps = list(at(service, 'spec', 'externalIPs')).map(String);
  switch (text(at(service, 'spec', 'type')) ?? 'ClusterIP') {
    case 'ClusterIP':
    case 'NodePort':
      return externalIps.length > 0 ? externalIps.join(',') : '<none>';
    case 'LoadBalancer': {
      const balancers = loadBalancerAddresses(service, wide);
      const all = [...(balancers === '' ? [] : balancers.split(',')), ...externalIps];
      return all.length > 0 ? all.join(',') : '<pending>';
    }
    case 'ExternalName':
      return text(at(service, 'spec', 'externalName')) ?? '';
    default:
      return '<unknown>';
  }
}

function servicePorts(service: KubeObject): string {
  const ports = list(at(service, 'spec', 'ports')).map((port) => {
    const protocol = text(at(port, 'protocol')) ?? 'TCP';
    const nodePort = count(at(port, 'nodePort'));
    const number = count(at(port, 'port'));
    return nodePort > 0 ? `${number}:${nodePort}/${protocol}` : `${number}/${protocol}`;
  });
  return ports.length > 0 ? ports.join(',') : '<none>';
}

function servicesColumns(wide: boolean): KindColumns {
  return {
    headers: ['TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)', 'AGE'],
    wideHeaders: ['SELECTOR'],
    row(service, now) {
      return {
        cells: [
          text(at(service, 'spec', 'type')) ?? 'ClusterIP',
          text(at(service, 'spec', 'clusterIP')) ?? '<none>',
          serviceExternalIp(service, wide),
          servicePorts(service),
          age(service, now),
        ],
        wideCells: [formatLabels(at(service, 'spec', 'selector'))],
      };
    },
  };
}

/** At most `limit` entries, then "+ N more...", `empty` for none (kubectl's listWithMoreString). */
function listWithMore(entries: readonly string[], limit = 3, empty = '<unset>'): string {
  if (entries.length > limit) {
    return `${entries.slice(0, limit).join(',')} + ${entries.length - limit} more...`;
  }
  return entries.length === 0 ? empty : entries.join(',');
}

const endpointSlices: KindColumns = {
  headers: ['ADDRESSTYPE', 'PORTS', 'ENDPOINTS', 'AGE'],
  wideHeaders: [],
  row(slice, now) {
    const ports = list(at(slice, 'ports')).map((port) => {
      const number = at(port, 'port');
      return typeof number === 'number' ? `${number}` : (text(at(port, 'name')) ?? '*');
    });
    const addresses = list(at(slice, 'endpoints')).flatMap((e) =>
      list(at(e, 'addresses')).map(String),
    );
    return {
      cells: [
        text(at(slice, 'addressType')) ?? '',
        listWithMore(ports),
        listWithMore(addresses),
        age(slice, now),
      ],
      wideCells: [],
    };
  },
};

/** ROLES from `node-role.kubernetes.io/<role>` label keys and `kubernetes.io/role` values. */
function nodeRoles(node: KubeObject): string {
  const roles = new Set<string>();
  for (const [key, value] of Object.entries(node.metadata.labels ?? {})) {
    if (key.startsWith('node-role.kubernetes.io/')) {
      const role = key.slice('node-role.kubernetes.io/'.length);
      if (role !== '') roles.add(role);
    } else if (key === 'kubernetes.io/role' && value !== '') {
      roles.add(value);
    }
  }
  return roles.size === 0 ? '<none>' : [...roles].sort().join(',');
}

function nodeStatus(node: KubeObject): string {
  const ready = list(at(node, 'status', 'conditions')).find((c) => at(c, 'type') === 'Ready');
  const status = [
    ready === undefined ? 'Unknown' : at(ready, 'status') === 'True' ? 'Ready' : 'NotReady',
  ];
  if (at(node, 'spec', 'unschedulable') === true) status.push('SchedulingDisabled');
  return status.join(',');
}

const nodes: KindColumns = {
  headers: ['STATUS', 'ROLES', 'AGE', 'VERSION'],
  wideHeaders: ['INTERNAL-IP', 'POD-CIDR'],
  row(node, now) {
    const internal = list(at(node, 'status', 'addresses')).find(
      (a) => at(a, 'type') === 'InternalIP',
    );
    const podCidrs = list(at(node, 'spec', 'podCIDRs')).map(String);
    return {
      cells: [
        nodeStatus(node),
        nodeRoles(node),
        age(node, now),
        text(at(node, 'status', 'nodeInfo', 'kubeletVersion')) ?? '<none>',
      ],
      wideCells: [
        text(at(internal, 'address')) ?? '<none>',
        podCidrs.length > 0 ? podCidrs.join(',') : (text(at(node, 'spec', 'podCIDR')) ?? '<none>'),
      ],
    };
  },
};

const namespaces: KindColumns = {
  headers: ['STATUS', 'AGE'],
  wideHeaders: [],
  row(namespace, now) {
    // The API server sets Active when it creates a namespace.
    return {
      cells: [text(at(namespace, 'status', 'phase')) ?? 'Active', age(namespace, now)],
      wideCells: [],
    };
  },
};

/** The pods a policy selects, by name (all are in its namespace); `<unknown>` without a model. */
function selectedPodsCell(policy: KubeObject, context: ColumnContext): string {
  const keys = context.selectedPods?.get(policyKey(networkPolicy(policy)));
  if (keys === undefined) return '<unknown>';
  const names = keys.map((key) => key.slice(key.indexOf('/') + 1)).sort();
  return listWithMore(names, 5, '<none>');
}

/**
 * kubectl's NAME, POD-SELECTOR, AGE; `-o wide` is strata's own: the policy
 * types in effect (defaulted as the API server defaults them) and the pods
 * selected now, from the same model the nftables compiler reads.
 */
function networkPolicyColumns(context: ColumnContext): KindColumns {
  return {
    headers: ['POD-SELECTOR', 'AGE'],
    wideHeaders: ['POLICY-TYPES', 'SELECTED-PODS', 'DROPPED'],
    row(policy, now) {
      const types = isFields(policy.spec) ? effectivePolicyTypes(networkPolicy(policy)) : [];
      return {
        cells: [formatLabelSelector(at(policy, 'spec', 'podSelector')), age(policy, now)],
        wideCells: [
          types.length > 0 ? types.join(',') : '<none>',
          selectedPodsCell(policy, context),
          context.droppedPackets
            ? String(context.droppedPackets(policyKey(networkPolicy(policy))))
            : '<unknown>',
        ],
      };
    },
  };
}

const nameAndAge: KindColumns = {
  headers: ['AGE'],
  wideHeaders: [],
  row: (object, now) => ({ cells: [age(object, now)], wideCells: [] }),
};

/** The columns kubectl prints for a kind; AGE alone for kinds it has no printer for. */
export function columnsFor(
  resource: ResourceType,
  wide = false,
  context: ColumnContext = {},
): KindColumns {
  switch (`${resource.group}/${resource.kind}`) {
    case '/Pod':
      return pods;
    case 'apps/Deployment':
      return deployments;
    case '/Service':
      return servicesColumns(wide);
    case 'discovery.k8s.io/EndpointSlice':
      return endpointSlices;
    case '/Node':
      return nodes;
    case '/Namespace':
      return namespaces;
    case 'networking.k8s.io/NetworkPolicy':
      return networkPolicyColumns(context);
    default:
      return nameAndAge;
  }
}
