/**
 * Services → one node's nftables table, laid out as kube-proxy's nftables
 * mode lays out its own (pkg/proxy/nftables/proxier.go), in one `inet`
 * table, `inet strata_services`:
 *
 * - `services` (jumped to from nat prerouting and nat output, priority
 *   dstnat, before NetworkPolicy's dstnat+10 so policy judges the real pod
 *   address) looks the packet up in one verdict map per family keyed by
 *   `daddr . l4proto . dport`, and, for the node's own addresses
 *   (`fib daddr type local`), in the NodePort map keyed by `l4proto . dport`;
 * - a chain per Service port and family spreads new connections over its
 *   endpoint chains with `numgen random mod N` (after any ClientIP affinity
 *   match), and an endpoint chain DNATs to its address and port;
 * - packets are marked for masquerade where replies would otherwise miss
 *   the node: a pod reaching itself through its Service (hairpin), traffic
 *   to a cluster IP from outside the cluster CIDR, NodePort traffic with
 *   externalTrafficPolicy Cluster; nat postrouting masquerades marked ones;
 * - a Service port with no usable endpoint is in the no-endpoint maps, and
 *   new connections to it are rejected at once (TCP reset, else ICMP port
 *   unreachable) in filter chains just after DNAT (dstnat+5), as are connections
 *   to a cluster IP on a port it does not serve.
 *
 * The chain names carry a hash and the readable service port name, as
 * kube-proxy names them: `svc-<hash>-<ns>/<name>/<proto>/<port>` and
 * `ep-<hash>-<ns>/<name>/<proto>/<port>__<address>/<port>`.
 */
import { createHash } from 'node:crypto';
import { familyOf, type IpFamily } from '../netaddr/ip.js';
import {
  type EndpointInput,
  type ServiceInput,
  type ServicePortInput,
  serviceKey,
  servicePortKey,
  usableEndpoints,
} from './input.js';
import { emptyTableState, type NftChain, type NftSet, type NftTableState } from './nft-state.js';

export const servicesTable = 'strata_services';
/** The packet mark bit asking nat postrouting to masquerade (kube-proxy's 0x4000). */
export const masqueradeMark = 0x4000;

export interface ServiceNode {
  name: string;
  /** The cluster CIDR(s): traffic to a cluster IP from elsewhere is masqueraded. */
  clusterCidrs: readonly string[];
  /**
   * The service CIDR(s): a new connection to an address there that no
   * Service holds is dropped, as kube-proxy drops it, rather than routed on.
   */
  serviceCidrs?: readonly string[];
}

/** What the compiler is given: every Service, and every service port's endpoints (servicePortKey). */
export interface ServicesInput {
  services: Iterable<ServiceInput>;
  endpoints: ReadonlyMap<string, readonly EndpointInput[]>;
}

const families = [4, 6] as const;
const ipKeyword: Record<IpFamily, string> = { 4: 'ip', 6: 'ip6' };
const addressType: Record<IpFamily, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };
const nfproto: Record<IpFamily, string> = { 4: 'ipv4', 6: 'ipv6' };

const serviceIpsMap = (f: IpFamily): string => `service-ips-v${f}`;
const nodePortsMap = (f: IpFamily): string => `service-nodeports-v${f}`;
const noEndpointServicesMap = (f: IpFamily): string => `no-endpoint-services-v${f}`;
const noEndpointNodePortsMap = (f: IpFamily): string => `no-endpoint-nodeports-v${f}`;
const clusterIpsSet = (f: IpFamily): string => `cluster-ips-v${f}`;
const hairpinSet = (f: IpFamily): string => `hairpin-v${f}`;

/** nft's spelling of the protocol in a key (`tcp`, `udp`, `sctp`). */
function l4(protocol: ServicePortInput['protocol']): string {
  return protocol.toLowerCase();
}

/** Eight base32 characters of SHA-256, as kube-proxy's hashAndTruncate. */
function shortHash(text: string): string {
  const digest = createHash('sha256').update(text).digest();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 8) {
      out += alphabet.charAt((value >>> (bits - 5)) & 31);
      bits -= 5;
    }
    if (out.length === 8) break;
  }
  return out;
}

/** A readable part of a chain name: nft identifiers take letters, digits, `/ \ _ . -`. */
function readable(text: string): string {
  return text.replace(/[^A-Za-z0-9/_.-]/g, '.');
}

function portLabel(service: ServiceInput, port: ServicePortInput): string {
  return `${service.namespace}/${service.name}/${l4(port.protocol)}/${port.name}`;
}

function serviceChainName(service: ServiceInput, port: ServicePortInput, family: IpFamily): string {
  const label = portLabel(service, port);
  return `svc${family === 6 ? '6' : ''}-${shortHash(`${label}/v${family}`)}-${readable(label)}`;
}

function externalChainName(
  service: ServiceInput,
  port: ServicePortInput,
  family: IpFamily,
): string {
  const label = portLabel(service, port);
  return `ext${family === 6 ? '6' : ''}-${shortHash(`${label}/v${family}`)}-${readable(label)}`;
}

function endpointChainName(
  service: ServiceInput,
  port: ServicePortInput,
  endpoint: EndpointInput,
): string {
  const label = portLabel(service, port);
  const target = `${endpoint.address}/${endpoint.port}`;
  return `ep-${shortHash(`${label}__${target}`)}-${readable(label)}__${readable(target)}`;
}

function affinitySetName(endpointChain: string): string {
  return `affinity-${endpointChain.slice(3)}`;
}

function dnatTarget(endpoint: EndpointInput, family: IpFamily): string {
  return family === 4
    ? `${endpoint.address}:${endpoint.port}`
    : `[${endpoint.address}]:${endpoint.port}`;
}

/** A spread over chains: one goto, or numgen over all of them. */
function dispatchRule(chains: readonly string[]): string {
  if (chains.length === 1) return `goto ${chains[0]}`;
  const entries = chains.map((chain, i) => `${i} : goto ${chain}`).join(', ');
  return `numgen random mod ${chains.length} vmap { ${entries} }`;
}

function baseState(node: ServiceNode): NftTableState {
  const state = emptyTableState(`inet ${servicesTable}`);
  const { sets, chains } = state;
  const mark = `0x${masqueradeMark.toString(16)}`;
  for (const f of families) {
    const key = `${addressType[f]} . inet_proto . inet_service`;
    sets.set(serviceIpsMap(f), { declaration: `type ${key} : verdict;`, elements: new Map() });
    sets.set(noEndpointServicesMap(f), {
      declaration: `type ${key} : verdict;`,
      elements: new Map(),
    });
    sets.set(nodePortsMap(f), {
      declaration: 'type inet_proto . inet_service : verdict;',
      elements: new Map(),
    });
    sets.set(noEndpointNodePortsMap(f), {
      declaration: 'type inet_proto . inet_service : verdict;',
      elements: new Map(),
    });
    sets.set(clusterIpsSet(f), { declaration: `type ${addressType[f]};`, elements: new Map() });
    sets.set(hairpinSet(f), {
      declaration: `type ${addressType[f]} . ${addressType[f]};`,
      elements: new Map(),
    });
  }
  const hook = (text: string): NftChain => ({ hook: `${text} policy accept;`, rules: [] });
  chains.set('nat-prerouting', {
    ...hook('type nat hook prerouting priority dstnat;'),
    rules: ['jump services'],
  });
  chains.set('nat-output', {
    ...hook('type nat hook output priority -100;'),
    rules: ['jump services'],
  });
  chains.set('nat-postrouting', {
    ...hook('type nat hook postrouting priority srcnat;'),
    rules: ['jump masquerading'],
  });
  // Just after DNAT: what is still addressed to a cluster IP was not translated, because
  // the Service port has no endpoint or the cluster IP does not serve that port. New
  // connections to it are refused before NetworkPolicy (dstnat+10) or routing see them.
  const check = ['ct state new jump endpoints-check', 'ct state new jump cluster-ips-check'];
  chains.set('filter-prerouting', {
    ...hook('type filter hook prerouting priority dstnat + 5;'),
    rules: check,
  });
  chains.set('filter-output', {
    ...hook('type filter hook output priority -95;'),
    rules: check,
  });
  chains.set('services', {
    rules: [
      ...families.map(
        (f) => `${ipKeyword[f]} daddr . meta l4proto . th dport vmap @${serviceIpsMap(f)}`,
      ),
      ...families.map(
        (f) =>
          `fib daddr type local meta nfproto ${nfproto[f]} meta l4proto . th dport vmap @${nodePortsMap(f)}`,
      ),
    ],
  });
  chains.set('endpoints-check', {
    rules: [
      ...families.map(
        (f) => `${ipKeyword[f]} daddr . meta l4proto . th dport vmap @${noEndpointServicesMap(f)}`,
      ),
      ...families.map(
        (f) =>
          `fib daddr type local meta nfproto ${nfproto[f]} meta l4proto . th dport vmap @${noEndpointNodePortsMap(f)}`,
      ),
    ],
  });
  const unallocated = families.flatMap((f) => {
    const cidrs = (node.serviceCidrs ?? []).filter((c) => familyOf(c.split('/')[0] ?? '') === f);
    return cidrs.length === 0 ? [] : [`${ipKeyword[f]} daddr { ${cidrs.join(', ')} } drop`];
  });
  chains.set('cluster-ips-check', {
    rules: [
      ...families.map((f) => `${ipKeyword[f]} daddr @${clusterIpsSet(f)} goto reject-chain`),
      ...unallocated,
    ],
  });
  chains.set('reject-chain', {
    rules: ['meta l4proto tcp reject with tcp reset', 'reject with icmpx port-unreachable'],
  });
  chains.set('mark-for-masquerade', { rules: [`meta mark set meta mark | ${mark}`] });
  chains.set('masquerading', {
    rules: [
      // A pod that reached itself through a Service: its reply must come back through the node.
      ...families.map(
        (f) =>
          `ct status dnat ${ipKeyword[f]} saddr . ${ipKeyword[f]} daddr @${hairpinSet(f)} masquerade fully-random`,
      ),
      `meta mark & ${mark} == 0 return`,
      `meta mark set meta mark ^ ${mark}`,
      'masquerade fully-random',
    ],
  });
  return state;
}

/** What one Service adds to the table; fragments are kept between builds and rebuilt only when their Service changes. */
interface ServiceFragment {
  chains: [string, NftChain][];
  sets: [string, NftSet][];
  /** [set or map, key, value]. */
  elements: [string, string, string][];
  /** The UDP flows new packets may be DNATed to (flowKey): their conntrack entries go with them. */
  udpFlows: Set<string>;
}

/**
 * A UDP destination the table DNATs: what conntrack entries to delete when
 * it goes, as kube-proxy deletes them (conntrack would otherwise keep
 * sending a client's datagrams to a removed endpoint).
 */
export interface UdpFlow {
  /** `--orig-dst` for a cluster IP, or `--orig-port-dst` for a node port. */
  destination: { address: string } | { nodePort: number };
  endpoint: string;
}

function flowKey(flow: UdpFlow): string {
  const to =
    'address' in flow.destination ? flow.destination.address : `:${flow.destination.nodePort}`;
  return `${to} ${flow.endpoint}`;
}

function parseFlowKey(key: string): UdpFlow {
  const [to = '', endpoint = ''] = key.split(' ');
  return {
    destination: to.startsWith(':') ? { nodePort: Number(to.slice(1)) } : { address: to },
    endpoint,
  };
}

/** An endpoint as a DNAT map value: `address . port`. */
function endpointKey(endpoint: EndpointInput): string {
  return `${endpoint.address} . ${endpoint.port}`;
}

/** The Service's chains, sets and map elements on this node. */
function compileService(
  service: ServiceInput,
  endpoints: ReadonlyMap<string, readonly EndpointInput[]>,
  node: ServiceNode,
): ServiceFragment {
  const fragment: ServiceFragment = { chains: [], sets: [], elements: [], udpFlows: new Set() };
  const udp = (destination: UdpFlow['destination'], endpoints: readonly EndpointInput[]) => {
    for (const e of endpoints) fragment.udpFlows.add(flowKey({ destination, endpoint: e.address }));
  };
  const declared = new Set<string>();
  const element = (set: string, key: string, value = '') =>
    fragment.elements.push([set, key, value]);
  for (const port of service.ports) {
    const all = endpoints.get(servicePortKey(service, port)) ?? [];
    const protocol = l4(port.protocol);
    for (const f of families) {
      const vips = service.clusterIps.filter((ip) => familyOf(ip) === f);
      if (vips.length === 0) continue;
      const ip = ipKeyword[f];
      // The rules that send a new connection to one of the endpoints.
      const spread = (chosen: readonly EndpointInput[]): string[] => {
        for (const endpoint of chosen)
          element(hairpinSet(f), `${endpoint.address} . ${endpoint.address}`);
        if (service.affinitySeconds === undefined) {
          const targets = chosen.map((e, i) => `${i} : ${endpointKey(e)}`).join(', ');
          return [
            `meta l4proto ${protocol} dnat ${ip} to numgen random mod ${chosen.length} map { ${targets} }`,
          ];
        }
        // ClientIP affinity, as kube-proxy does it: a chain and a timed set of clients per endpoint.
        const names = chosen.map((endpoint) => {
          const name = endpointChainName(service, port, endpoint);
          if (!declared.has(name)) {
            declared.add(name);
            const affinity = affinitySetName(name);
            fragment.sets.push([
              affinity,
              {
                declaration: `type ${addressType[f]}; flags dynamic,timeout; timeout ${service.affinitySeconds}s;`,
                elements: new Map(),
              },
            ]);
            fragment.chains.push([
              name,
              {
                rules: [
                  `update @${affinity} { ${ip} saddr }`,
                  `meta l4proto ${protocol} dnat ${ip} to ${dnatTarget(endpoint, f)}`,
                ],
              },
            ]);
          }
          return name;
        });
        return [
          ...names.map((name) => `${ip} saddr @${affinitySetName(name)} goto ${name}`),
          dispatchRule(names),
        ];
      };
      for (const vip of vips) element(clusterIpsSet(f), vip);
      const clusterEndpoints = usableEndpoints(
        all,
        f,
        service.internalTrafficPolicy === 'Local' ? node.name : undefined,
      );
      const vipKey = (vip: string) => `${vip} . ${protocol} . ${port.port}`;
      const serviceChain = serviceChainName(service, port, f);
      if (clusterEndpoints.length === 0) {
        for (const vip of vips) element(noEndpointServicesMap(f), vipKey(vip), 'goto reject-chain');
      } else {
        const masqueradeOutsiders = node.clusterCidrs
          .filter((cidr) => familyOf(cidr.split('/')[0] ?? '') === f)
          .flatMap((cidr) =>
            vips.map((vip) => `${ip} daddr ${vip} ${ip} saddr != ${cidr} jump mark-for-masquerade`),
          );
        fragment.chains.push([
          serviceChain,
          { rules: [...masqueradeOutsiders, ...spread(clusterEndpoints)] },
        ]);
        for (const vip of vips) element(serviceIpsMap(f), vipKey(vip), `goto ${serviceChain}`);
        if (port.protocol === 'UDP')
          for (const vip of vips) udp({ address: vip }, clusterEndpoints);
      }
      if (port.nodePort === undefined) continue;
      const nodePortKey = `${protocol} . ${port.nodePort}`;
      const local = service.externalTrafficPolicy === 'Local';
      const externalEndpoints = local ? usableEndpoints(all, f, node.name) : clusterEndpoints;
      if (externalEndpoints.length === 0) {
        // Upstream drops, rather than rejects, a Local NodePort with no endpoint on this node.
        element(noEndpointNodePortsMap(f), nodePortKey, local ? 'drop' : 'goto reject-chain');
        continue;
      }
      const external = externalChainName(service, port, f);
      fragment.chains.push([
        external,
        {
          rules: local
            ? spread(externalEndpoints)
            : ['jump mark-for-masquerade', `goto ${serviceChain}`],
        },
      ]);
      element(nodePortsMap(f), nodePortKey, `goto ${external}`);
      if (port.protocol === 'UDP') udp({ nodePort: port.nodePort }, externalEndpoints);
    }
  }
  return fragment;
}

/**
 * One node's compiler, kept for the agent's lifetime: Services and their
 * endpoints are set as they change, and build() recompiles only the
 * Services touched since the last build, then assembles the table.
 */
export class NodeServiceCompiler {
  readonly #services = new Map<string, ServiceInput>();
  readonly #endpoints = new Map<string, ReadonlyMap<string, readonly EndpointInput[]>>();
  readonly #fragments = new Map<string, ServiceFragment>();
  readonly #dirty = new Set<string>();

  constructor(readonly node: ServiceNode) {}

  /** The Service (`namespace/name`) as it now is, or undefined once it is gone. */
  setService(key: string, service: ServiceInput | undefined): void {
    if (service) this.#services.set(key, service);
    else this.#services.delete(key);
    this.#dirty.add(key);
  }

  /** The Service's endpoints per service port name (endpointsOf), or undefined for none. */
  setEndpoints(
    key: string,
    endpoints: ReadonlyMap<string, readonly EndpointInput[]> | undefined,
  ): void {
    if (endpoints) this.#endpoints.set(key, endpoints);
    else this.#endpoints.delete(key);
    this.#dirty.add(key);
  }

  get serviceCount(): number {
    return this.#services.size;
  }

  /**
   * The table for everything set so far. `staleUdpFlows` receives the UDP
   * flows the table no longer DNATs to, to delete from conntrack once the
   * table is applied.
   */
  build(staleUdpFlows?: UdpFlow[]): NftTableState {
    for (const key of this.#dirty) {
      const service = this.#services.get(key);
      const before = this.#fragments.get(key);
      const after = service
        ? compileService(service, this.#endpoints.get(key) ?? new Map(), this.node)
        : undefined;
      if (after) this.#fragments.set(key, after);
      else this.#fragments.delete(key);
      for (const flow of before?.udpFlows ?? []) {
        if (!after?.udpFlows.has(flow)) staleUdpFlows?.push(parseFlowKey(flow));
      }
    }
    this.#dirty.clear();
    const state = baseState(this.node);
    for (const fragment of this.#fragments.values()) {
      for (const [name, set] of fragment.sets) state.sets.set(name, set);
      for (const [name, chain] of fragment.chains) state.chains.set(name, chain);
      for (const [set, key, value] of fragment.elements)
        state.sets.get(set)?.elements.set(key, value);
    }
    return state;
  }
}

/** The node's table for the given Services and endpoints, in one go. */
export function compileServiceState(input: ServicesInput, node: ServiceNode): NftTableState {
  const compiler = new NodeServiceCompiler(node);
  for (const service of input.services) {
    const key = serviceKey(service.namespace, service.name);
    compiler.setService(key, service);
    const endpoints = new Map<string, readonly EndpointInput[]>();
    for (const port of service.ports) {
      const list = input.endpoints.get(servicePortKey(service, port));
      if (list) endpoints.set(servicePortKey(service, port), list);
    }
    compiler.setEndpoints(key, endpoints);
  }
  return compiler.build();
}
