/**
 * The DNS zone bench:services serves from both servers, and the queries it sends.
 *
 * 200 ClusterIP Services `svc<i>.ns<i % 10>.svc.cluster.local` (cluster IP
 * 10.96.10.<i + 1>, named port http TCP 80, so `_http._tcp.<service>` has an SRV record)
 * and 5 headless Services `hl<k>.ns<k>.svc.cluster.local` with 5 ready pods each
 * (10.244.60+k.2-6; an A record per pod under the Service's name and under the pod's own
 * `10-244-60-2.hl0...` name, one SRV per pod). strata gets them as Service and
 * EndpointSlice objects (as the API server would hold them); dnsmasq gets the same names
 * as `--host-record` and `--srv-host` options, so both answer the same records.
 */
import type { KubeObject } from '../src/api/types.js';
import type { ClusterObjects } from '../src/dns/records.js';

export const dnsDomain = 'cluster.local';
const clusterIpServices = 200;
const headlessServices = 5;
const podsPerHeadless = 5;

const fqdn = (name: string, namespace: string): string => `${name}.${namespace}.svc.${dnsDomain}`;
const serviceIp = (i: number): string => `10.96.10.${i + 1}`;
const podIp = (k: number, m: number): string => `10.244.${60 + k}.${2 + m}`;
const podName = (k: number, m: number): string =>
  `${podIp(k, m).replace(/\./g, '-')}.${fqdn(`hl${k}`, `ns${k}`)}`;

function service(name: string, namespace: string, clusterIp: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: {
      type: 'ClusterIP',
      clusterIP: clusterIp,
      clusterIPs: [clusterIp],
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    },
  };
}

function slice(name: string, namespace: string, addresses: string[]): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `${name}-abcde`, namespace, labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    endpoints: addresses.map((address) => ({
      addresses: [address],
      conditions: { ready: true, serving: true, terminating: false },
    })),
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
  };
}

/** The Services and EndpointSlices strata's server is given. */
export function zoneObjects(): ClusterObjects {
  const services: KubeObject[] = [];
  const endpointSlices: KubeObject[] = [];
  for (let i = 0; i < clusterIpServices; i++) {
    services.push(service(`svc${i}`, `ns${i % 10}`, serviceIp(i)));
  }
  for (let k = 0; k < headlessServices; k++) {
    services.push(service(`hl${k}`, `ns${k}`, 'None'));
    const pods = Array.from({ length: podsPerHeadless }, (_, m) => podIp(k, m));
    endpointSlices.push(slice(`hl${k}`, `ns${k}`, pods));
  }
  return { services, endpointSlices };
}

/** The same records as dnsmasq options. */
export function dnsmasqRecordOptions(): string[] {
  const options: string[] = [];
  for (let i = 0; i < clusterIpServices; i++) {
    const name = fqdn(`svc${i}`, `ns${i % 10}`);
    options.push(`--host-record=${name},${serviceIp(i)}`);
    options.push(`--srv-host=_http._tcp.${name},${name},80,0,100`);
  }
  const weight = Math.floor(100 / podsPerHeadless);
  for (let k = 0; k < headlessServices; k++) {
    const name = fqdn(`hl${k}`, `ns${k}`);
    for (let m = 0; m < podsPerHeadless; m++) {
      options.push(`--host-record=${name},${podIp(k, m)}`);
      options.push(`--host-record=${podName(k, m)},${podIp(k, m)}`);
      options.push(`--srv-host=_http._tcp.${name},${podName(k, m)},80,0,${weight}`);
    }
  }
  return options;
}

export interface QueryFile {
  /** dnsperf's input: `name type` per line. */
  lines: string[];
  /** Share of the lines whose answer is NXDOMAIN. */
  nxdomainShare: number;
}

/** 2,000 queries: 90 % A of existing names (a ninth of them headless), 5 % SRV, 5 % NXDOMAIN. */
export function queryFile(): QueryFile {
  const lines: string[] = [];
  let nxdomain = 0;
  for (let n = 0; n < 2000; n++) {
    if (n % 20 === 0) {
      const k = n / 20;
      lines.push(
        k % 4 === 0
          ? `_http._tcp.${fqdn(`hl${k % headlessServices}`, `ns${k % headlessServices}`)} SRV`
          : `_http._tcp.${fqdn(`svc${k % clusterIpServices}`, `ns${k % 10}`)} SRV`,
      );
    } else if (n % 20 === 10) {
      lines.push(`nosuch-${n}.ns${n % 10}.svc.${dnsDomain} A`);
      nxdomain++;
    } else if (n % 9 === 4) {
      const k = n % headlessServices;
      lines.push(`${fqdn(`hl${k}`, `ns${k}`)} A`);
    } else {
      const i = (n * 7) % clusterIpServices;
      lines.push(`${fqdn(`svc${i}`, `ns${i % 10}`)} A`);
    }
  }
  return { lines, nxdomainShare: nxdomain / lines.length };
}

/** What `dig` must get from either server before any figure counts. */
export interface DigCase {
  name: string;
  type: 'A' | 'SRV';
  status: 'NOERROR' | 'NXDOMAIN';
  /** `TYPE data` of each answer, sorted. */
  answers: string[];
}

export function digCases(): DigCase[] {
  const svc = fqdn('svc7', 'ns7');
  const headless = fqdn('hl1', 'ns1');
  return [
    { name: svc, type: 'A', status: 'NOERROR', answers: [`A ${serviceIp(7)}`] },
    {
      name: `_http._tcp.${svc}`,
      type: 'SRV',
      status: 'NOERROR',
      answers: [`SRV 0 100 80 ${svc}.`],
    },
    {
      name: headless,
      type: 'A',
      status: 'NOERROR',
      answers: Array.from({ length: podsPerHeadless }, (_, m) => `A ${podIp(1, m)}`).sort(),
    },
    { name: `nosuch.ns3.svc.${dnsDomain}`, type: 'A', status: 'NXDOMAIN', answers: [] },
  ];
}
