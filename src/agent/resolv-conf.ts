/**
 * A pod's resolv.conf, as kubelet writes it (pkg/kubelet/network/dns):
 *
 * - dnsPolicy ClusterFirst (the default, and ClusterFirstWithHostNet for a
 *   pod that is not on the host network): the cluster DNS servers, the
 *   search path `<namespace>.svc.<domain> svc.<domain> <domain>` and
 *   `options ndots:5`. Without a cluster DNS server kubelet falls back to
 *   Default, and so does this.
 * - Default: the node's own resolv.conf, as it is.
 * - None: only what the pod's dnsConfig says.
 * - dnsConfig is merged over the policy's result: nameservers and searches
 *   appended without duplicates (at most 3 nameservers, 32 search
 *   domains), options merged by name with the pod's value winning.
 *
 * Unlike kubelet, ClusterFirst does not append the node's own search
 * domains: a pod's short name should never leave the cluster by accident.
 *
 * `ip netns exec <pod>` binds /etc/netns/<pod>/resolv.conf over
 * /etc/resolv.conf for the processes it starts, which is how containers,
 * exec probes and `ip netns exec` users see it.
 */
import type { KubeObject } from '../api/types.js';

export interface DnsSettings {
  clusterDns: readonly string[];
  clusterDomain: string;
}

export interface ResolvConf {
  nameservers: string[];
  searches: string[];
  /** `name` or `name:value`, in order. */
  options: string[];
}

const maxNameservers = 3;
const maxSearches = 32;

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** Reads a resolv.conf's nameserver, search/domain and options lines. */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], searches: [], options: [] };
  for (const line of text.split('\n')) {
    const words = line
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    const [keyword, ...rest] = words;
    if (keyword === 'nameserver' && rest[0]) conf.nameservers.push(rest[0]);
    else if (keyword === 'search' || keyword === 'domain') conf.searches = rest;
    else if (keyword === 'options') conf.options.push(...rest);
  }
  return conf;
}

function optionName(option: string): string {
  const colon = option.indexOf(':');
  return colon < 0 ? option : option.slice(0, colon);
}

function mergeDnsConfig(base: ResolvConf, config: Record<string, unknown>): ResolvConf {
  const nameservers = [...new Set([...base.nameservers, ...strings(config.nameservers)])];
  const searches = [...new Set([...base.searches, ...strings(config.searches)])];
  const options = new Map(base.options.map((o) => [optionName(o), o]));
  for (const item of Array.isArray(config.options) ? config.options : []) {
    const option = item as { name?: unknown; value?: unknown };
    if (typeof option.name !== 'string' || option.name === '') continue;
    options.set(
      option.name,
      typeof option.value === 'string' ? `${option.name}:${option.value}` : option.name,
    );
  }
  return {
    nameservers: nameservers.slice(0, maxNameservers),
    searches: searches.slice(0, maxSearches),
    options: [...options.values()],
  };
}

/**
 * The pod's resolver configuration, or undefined when the pod simply sees
 * the node's (Default with no dnsConfig). `nodeResolvConf` reads the node's
 * file, for Default merged with a dnsConfig.
 */
export function podResolvConf(
  pod: KubeObject,
  settings: DnsSettings,
  nodeResolvConf: () => string,
): ResolvConf | undefined {
  const spec = pod.spec ?? {};
  const config =
    spec.dnsConfig !== null && typeof spec.dnsConfig === 'object'
      ? (spec.dnsConfig as Record<string, unknown>)
      : undefined;
  let policy = typeof spec.dnsPolicy === 'string' ? spec.dnsPolicy : 'ClusterFirst';
  if (policy === 'ClusterFirstWithHostNet') policy = 'ClusterFirst';
  if (policy === 'ClusterFirst' && settings.clusterDns.length === 0) policy = 'Default';
  let base: ResolvConf;
  if (policy === 'None') {
    base = { nameservers: [], searches: [], options: [] };
  } else if (policy === 'ClusterFirst') {
    const namespace = pod.metadata.namespace ?? 'default';
    const domain = settings.clusterDomain;
    base = {
      nameservers: [...settings.clusterDns],
      searches: [`${namespace}.svc.${domain}`, `svc.${domain}`, domain],
      options: ['ndots:5'],
    };
  } else {
    if (!config) return undefined;
    base = parseResolvConf(nodeResolvConf());
  }
  return config ? mergeDnsConfig(base, config) : base;
}

export function formatResolvConf(conf: ResolvConf): string {
  const lines: string[] = [];
  if (conf.searches.length > 0) lines.push(`search ${conf.searches.join(' ')}`);
  for (const server of conf.nameservers) lines.push(`nameserver ${server}`);
  if (conf.options.length > 0) lines.push(`options ${conf.options.join(' ')}`);
  return lines.join('\n') + '\n';
}
