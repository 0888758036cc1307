/** The kinds the controller reads and writes, from the API registry. */
import { resourceForKind } from '../api/registry.js';
import type { ResourceType } from '../api/types.js';

function registered(apiVersion: string, kind: string): ResourceType {
  const resource = resourceForKind(apiVersion, kind);
  if (!resource) throw new Error(`The API registry has no ${apiVersion} ${kind}`);
  return resource;
}

export const nodes = registered('v1', 'Node');
export const pods = registered('v1', 'Pod');
export const services = registered('v1', 'Service');
export const deployments = registered('apps/v1', 'Deployment');
export const endpointSlices = registered('discovery.k8s.io/v1', 'EndpointSlice');
