/**
 * Cluster DNS as kubeadm installs it: a Deployment in kube-system whose pods
 * run the DNS server (`strata dns`, src/dns, in place of CoreDNS), labelled
 * `k8s-app: kube-dns`, behind the Service `kube-dns` at the tenth address
 * of the service CIDR (10.96.0.10 for 10.96.0.0/16), ports 53/UDP and
 * 53/TCP. Agents put that address in every pod's resolv.conf
 * (`--cluster-dns`). The objects are ordinary API objects: `strata get
 * pods -n kube-system` shows the DNS pods, and their traffic goes through
 * the Service data path like any other.
 */
import type { KubeObject } from '../api/types.js';
import { formatIp, type IpAddress, parsePrefix } from '../netaddr/ip.js';

export const clusterDomain = 'cluster.local';
export const dnsNamespace = 'kube-system';
export const dnsServiceName = 'kube-dns';
export const dnsDeploymentName = 'strata-dns';
/** The DNS server's readiness endpoint in its pod (CoreDNS's ready plugin port). */
export const dnsReadyPort = 8181;

/** kubeadm's choice: the service CIDR's tenth address. */
export function clusterDnsAddress(serviceCidr: string): string {
  const prefix = parsePrefix(serviceCidr);
  if (!prefix) throw new Error(`not a CIDR: ${serviceCidr}`);
  const address: IpAddress = { ...prefix.address, value: prefix.address.value + 10n };
  return formatIp(address);
}

export interface DnsAddonOptions {
  serviceCidr: string;
  /** The API server's unix socket, which the DNS pods watch Services through. */
  apiSocket: string;
  /** How the DNS pods start strata: [node, dist/bin/strata]. */
  strata: readonly [string, string];
  replicas?: number;
}

/** The Service and Deployment, in the order they are created. */
export function dnsAddonObjects(options: DnsAddonOptions): KubeObject[] {
  const labels = { 'k8s-app': 'kube-dns' };
  const service: KubeObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: dnsServiceName,
      namespace: dnsNamespace,
      labels: { ...labels, 'kubernetes.io/name': 'strata-dns' },
    },
    spec: {
      selector: labels,
      clusterIP: clusterDnsAddress(options.serviceCidr),
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP', targetPort: 53 },
        { name: 'dns-tcp', port: 53, protocol: 'TCP', targetPort: 53 },
      ],
    },
  };
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: dnsDeploymentName, namespace: dnsNamespace, labels },
    spec: {
      replicas: options.replicas ?? 2,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          // The DNS pods answer from the API, not from DNS: they must not depend on themselves.
          dnsPolicy: 'Default',
          containers: [
            {
              name: 'dns',
              image: 'strata',
              command: [
                ...options.strata,
                'dns',
                '--api',
                options.apiSocket,
                '--domain',
                clusterDomain,
                '--listen',
                '0.0.0.0:53',
                '--ready-port',
                String(dnsReadyPort),
              ],
              ports: [
                { name: 'dns', containerPort: 53, protocol: 'UDP' },
                { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
              ],
              readinessProbe: {
                httpGet: { path: '/ready', port: dnsReadyPort },
                periodSeconds: 1,
              },
            },
          ],
        },
      },
    },
  };
  return [service, deployment];
}
