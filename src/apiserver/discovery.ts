/**
 * Discovery documents, the legacy (unaggregated) form every client
 * understands: /api (APIVersions), /apis (APIGroupList), /apis/<group>
 * (APIGroup), /api/v1 and /apis/<group>/<version> (APIResourceList), and
 * /version. With these kubectl can map `kubectl get netpol` to a URL.
 */
import { resources } from '../api/registry.js';
import { type ResourceType, apiVersionOf } from '../api/types.js';
import { strataVersion } from '../version.js';

/** The Kubernetes API version strata's API follows (for clients' version-skew checks). */
export const kubernetesVersion = { major: '1', minor: '33' } as const;

const objectVerbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const statusVerbs = ['get', 'patch', 'update'];

export function apiVersions(serverAddress: string): unknown {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

interface GroupVersionForDiscovery {
  groupVersion: string;
  version: string;
}

function apiGroup(name: string): unknown {
  const versions: GroupVersionForDiscovery[] = [];
  for (const r of resources) {
    if (r.group === name && !versions.some((v) => v.version === r.version)) {
      versions.push({ groupVersion: apiVersionOf(r), version: r.version });
    }
  }
  return { name, versions, preferredVersion: versions[0] };
}

export function apiGroupDocument(name: string): unknown {
  return { kind: 'APIGroup', apiVersion: 'v1', ...(apiGroup(name) as object) };
}

/** Every group but the core one, in the registry's order. */
export function apiGroupList(): unknown {
  const names = [...new Set(resources.map((r) => r.group))].filter((g) => g !== '');
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: names.map(apiGroup) };
}

function describeResource(r: ResourceType): unknown[] {
  const main = {
    name: r.plural,
    singularName: r.singular,
    namespaced: r.namespaced,
    kind: r.kind,
    verbs: objectVerbs,
    ...(r.shortNames.length > 0 ? { shortNames: [...r.shortNames] } : {}),
  };
  const described: unknown[] = [main];
  // Subresources in name order, as upstream lists them.
  if (r.group === '' && r.kind === 'Pod') {
    described.push({
      name: 'pods/binding',
      singularName: '',
      namespaced: true,
      kind: 'Binding',
      verbs: ['create'],
    });
  }
  if (r.hasStatus) {
    described.push({
      name: `${r.plural}/status`,
      singularName: '',
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: statusVerbs,
    });
  }
  return described;
}

export function apiResourceList(group: string, version: string): unknown {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group === '' ? version : `${group}/${version}`,
    resources: resources
      .filter((r) => r.group === group && r.version === version)
      .flatMap(describeResource),
  };
}

/** /version, version.Info; gitVersion carries strata's own version as build metadata. */
export function versionInfo(): unknown {
  return {
    major: kubernetesVersion.major,
    minor: kubernetesVersion.minor,
    gitVersion: `v${kubernetesVersion.major}.${kubernetesVersion.minor}.0+strata-${strataVersion}`,
    gitCommit: '',
    gitTreeState: '',
    buildDate: '',
    goVersion: '',
    compiler: 'strata',
    platform: `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
  };
}
