/**
 * The peer ruleset for scale: the same Services laid out as kube-proxy's nftables mode
 * lays them out (pkg/proxy/nftables/proxier.go), with one chain per endpoint. kube-proxy
 * itself cannot be installed here, so this generated ruleset stands in for what it would
 * load: the `service-ips` verdict map and the `services` dispatch are the same as
 * strata's; then a chain per service port spreads connections with
 * `numgen random mod N vmap { i : goto <endpoint chain> }`, and a chain per endpoint
 * marks hairpin traffic and DNATs (`ip saddr X jump mark-for-masquerade; meta l4proto tcp
 * dnat ip to X:port`). ClientIP affinity as kube-proxy does it: a timed set per endpoint,
 * looked up in the service chain and updated in the endpoint chain.
 * strata instead DNATs through one `numgen random mod N map { i : address . port }` per
 * service port, so it has no endpoint chains unless affinity needs them.
 */
import { type EndpointInput, servicePortKey, usableEndpoints } from '../src/services/input.js';
import { type WorkloadService, benchNode, endpointsFor } from './services-workload.js';

export const kubeProxyStyleTable = 'inet kube_proxy_style';

export interface PeerRuleset {
  script: string;
  chains: number;
  /** Elements of `service-ips`, for the check after loading. */
  serviceIps: number;
}

/** nft identifiers take letters, digits and `/ \ _ . -`. */
function readable(text: string): string {
  return text.replace(/[^A-Za-z0-9/_.-]/g, '.');
}

export function kubeProxyStyleRuleset(services: readonly WorkloadService[]): PeerRuleset {
  const t = kubeProxyStyleTable;
  const cidr = benchNode.clusterCidrs[0] ?? '10.244.0.0/16';
  const declarations = [
    `add table ${t}`,
    `delete table ${t}`,
    `add table ${t}`,
    `add map ${t} service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }`,
    `add map ${t} service-nodeports { type inet_proto . inet_service : verdict; }`,
    `add chain ${t} nat-prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ${t} nat-output { type nat hook output priority -100; policy accept; }`,
    `add chain ${t} nat-postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add chain ${t} services`,
    `add chain ${t} mark-for-masquerade`,
    `add chain ${t} masquerading`,
  ];
  const rules = [
    `add rule ${t} nat-prerouting jump services`,
    `add rule ${t} nat-output jump services`,
    `add rule ${t} nat-postrouting jump masquerading`,
    `add rule ${t} services ip daddr . meta l4proto . th dport vmap @service-ips`,
    `add rule ${t} services fib daddr type local meta l4proto . th dport vmap @service-nodeports`,
    `add rule ${t} mark-for-masquerade meta mark set meta mark | 0x4000`,
    `add rule ${t} masquerading meta mark & 0x4000 == 0 return`,
    `add rule ${t} masquerading meta mark set meta mark ^ 0x4000`,
    `add rule ${t} masquerading masquerade fully-random`,
  ];
  const serviceIps: string[] = [];
  const nodePorts: string[] = [];
  let chains = 6;
  for (const ws of services) {
    const { service } = ws;
    const all = endpointsFor(ws);
    for (const port of service.ports) {
      const label = readable(
        `${service.namespace}/${service.name}/${port.protocol.toLowerCase()}/${port.name}`,
      );
      const endpoints: EndpointInput[] = usableEndpoints(
        all.get(servicePortKey(service, port)) ?? [],
        4,
      );
      if (endpoints.length === 0) continue;
      const serviceChain = `service-${label}`;
      declarations.push(`add chain ${t} ${serviceChain}`);
      chains++;
      const vip = service.clusterIps[0] ?? '';
      const l4 = port.protocol.toLowerCase();
      rules.push(
        `add rule ${t} ${serviceChain} ip daddr ${vip} ${l4} dport ${port.port} ip saddr != ${cidr} jump mark-for-masquerade`,
      );
      const endpointChains = endpoints.map((e) => `endpoint-${label}__${e.address}/${e.port}`);
      endpoints.forEach((e, n) => {
        const chain = endpointChains[n] ?? '';
        declarations.push(`add chain ${t} ${chain}`);
        chains++;
        rules.push(`add rule ${t} ${chain} ip saddr ${e.address} jump mark-for-masquerade`);
        if (service.affinitySeconds !== undefined) {
          const set = `affinity-${label}__${e.address}/${e.port}`;
          declarations.push(
            `add set ${t} ${set} { type ipv4_addr; flags dynamic,timeout; timeout ${service.affinitySeconds}s; }`,
          );
          rules.push(`add rule ${t} ${serviceChain} ip saddr @${set} goto ${chain}`);
          rules.push(`add rule ${t} ${chain} update @${set} { ip saddr }`);
        }
        rules.push(`add rule ${t} ${chain} meta l4proto ${l4} dnat ip to ${e.address}:${e.port}`);
      });
      const vmap = endpointChains.map((chain, n) => `${n} : goto ${chain}`).join(', ');
      rules.push(
        `add rule ${t} ${serviceChain} numgen random mod ${endpoints.length} vmap { ${vmap} }`,
      );
      serviceIps.push(`${vip} . ${l4} . ${port.port} : goto ${serviceChain}`);
      if (port.nodePort !== undefined) {
        const external = `external-${label}`;
        declarations.push(`add chain ${t} ${external}`);
        chains++;
        rules.push(`add rule ${t} ${external} jump mark-for-masquerade`);
        rules.push(`add rule ${t} ${external} goto ${serviceChain}`);
        nodePorts.push(`${l4} . ${port.nodePort} : goto ${external}`);
      }
    }
  }
  const elements: string[] = [];
  for (let i = 0; i < serviceIps.length; i += 256) {
    elements.push(`add element ${t} service-ips { ${serviceIps.slice(i, i + 256).join(', ')} }`);
  }
  if (nodePorts.length > 0)
    elements.push(`add element ${t} service-nodeports { ${nodePorts.join(', ')} }`);
  const script = [...declarations, ...rules, ...elements].join('\n') + '\n';
  return { script, chains, serviceIps: serviceIps.length };
}
