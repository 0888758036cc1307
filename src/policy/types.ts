/**
 * networking.k8s.io/v1 NetworkPolicy as the policy model reads it (upstream's
 * field names), and the inputs the model is computed from: pods and
 * namespaces reduced to what NetworkPolicy looks at.
 */
import type { LabelSelectorSpec } from '../apiserver/selectors.js';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type PolicyType = 'Ingress' | 'Egress';

export interface IpBlock {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelectorSpec;
  namespaceSelector?: LabelSelectorSpec;
  ipBlock?: IpBlock;
}

export interface NetworkPolicyPort {
  /** TCP when absent (SetDefaults_NetworkPolicyPort). */
  protocol?: Protocol;
  /** A number or an IANA_SVC_NAME naming a container port; all ports when absent. */
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyIngressRule {
  ports?: NetworkPolicyPort[];
  from?: NetworkPolicyPeer[];
}

export interface NetworkPolicyEgressRule {
  ports?: NetworkPolicyPort[];
  to?: NetworkPolicyPeer[];
}

export interface NetworkPolicySpec {
  podSelector: LabelSelectorSpec;
  ingress?: NetworkPolicyIngressRule[];
  egress?: NetworkPolicyEgressRule[];
  policyTypes?: PolicyType[];
}

export interface NetworkPolicy {
  metadata: { name?: string; namespace?: string };
  spec: NetworkPolicySpec;
}

export interface ContainerPort {
  name?: string;
  port: number;
  protocol?: Protocol;
}

/** A pod as NetworkPolicy sees it. */
export interface PolicyPod {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** Pod IPs (status.podIPs), one per family at most. */
  ips: string[];
  /** The node it runs on (spec.nodeName). */
  node: string;
  containerPorts: ContainerPort[];
}

export interface PolicyNamespace {
  name: string;
  labels: Record<string, string>;
  /** Drops at this namespace's pods are logged (annotation strata.io/log-policy-drops: "true"). */
  logDrops?: boolean;
}

export interface PolicyNode {
  name: string;
  /** The node's own addresses: traffic from them to its pods is always allowed. */
  ips: string[];
}
