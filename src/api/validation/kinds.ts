/** Which rules belong to which kind: the table the registry looks kinds up in. */
import type { FieldError, KubeObject } from '../types.js';
import { deploymentRules } from './deployment.js';
import { gatewayRules } from './gatewayapi/gateway.js';
import { httpRouteRules } from './gatewayapi/httproute.js';
import { destinationRuleRules } from './istio/destinationrule.js';
import { istioGatewayRules } from './istio/gateway.js';
import {
  authorizationPolicyRules,
  peerAuthenticationRules,
  requestAuthenticationRules,
} from './istio/security.js';
import { virtualServiceRules } from './istio/virtualservice.js';
import { endpointSliceRules } from './endpointslice.js';
import { namespaceRules } from './namespace.js';
import { networkPolicyRules } from './networkpolicy.js';
import { nodeRules } from './node.js';
import { podRules } from './pod.js';
import { serviceRules } from './service.js';

export interface KindRules {
  applyDefaults?: (object: KubeObject) => void;
  validate?: (object: KubeObject, old?: KubeObject) => FieldError[];
}

export const ruleTable: readonly { group: string; kind: string; rules: KindRules }[] = [
  { group: '', kind: 'Namespace', rules: namespaceRules },
  { group: '', kind: 'Node', rules: nodeRules },
  { group: '', kind: 'Pod', rules: podRules },
  { group: '', kind: 'Service', rules: serviceRules },
  { group: 'discovery.k8s.io', kind: 'EndpointSlice', rules: endpointSliceRules },
  { group: 'apps', kind: 'Deployment', rules: deploymentRules },
  { group: 'networking.k8s.io', kind: 'NetworkPolicy', rules: networkPolicyRules },
  { group: 'networking.istio.io', kind: 'VirtualService', rules: virtualServiceRules },
  { group: 'networking.istio.io', kind: 'DestinationRule', rules: destinationRuleRules },
  { group: 'networking.istio.io', kind: 'Gateway', rules: istioGatewayRules },
  { group: 'security.istio.io', kind: 'PeerAuthentication', rules: peerAuthenticationRules },
  { group: 'security.istio.io', kind: 'AuthorizationPolicy', rules: authorizationPolicyRules },
  { group: 'security.istio.io', kind: 'RequestAuthentication', rules: requestAuthenticationRules },
  { group: 'gateway.networking.k8s.io', kind: 'Gateway', rules: gatewayRules },
  { group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', rules: httpRouteRules },
];
